"""``GET /metrics``: Prometheus text for the served process (the OpenAPI document lists it).

BentoML's own metrics are off (they cost CPU on every request, see :mod:`serving.service`);
this middleware keeps a few cheap ones in its own registry:

- ``persona_requests_total{path, status}``: answered requests (API and health paths; other paths
  are counted as ``path="other"`` so a scanner cannot grow the label set);
- ``persona_request_seconds{path}``: latency histogram of the API paths;
- ``persona_model_info{version}``: 1 for the model version being served, 0 for earlier ones
  (set by the runtime).

It sits inside the API-key check, so ``/metrics`` needs the key when auth is on and 401s are
not counted.
"""

from __future__ import annotations

import functools
import time
from typing import Any

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRICS_PATH = "/metrics"


class ServingMetrics:
    """The process's serving metrics in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "persona_requests", "Answered HTTP requests", ["path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "persona_request_seconds", "Time to answer an API request", ["path"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.model = Gauge("persona_model_info", "The model version served (1)", ["version"], registry=self.registry)
        self._version: str | None = None

    def served_version(self, version: str) -> None:
        """Record the version now served (the previous one's series drops to 0).

        Not removed: BentoML runs prometheus_client in multi-process mode, which cannot remove a series.
        """
        if self._version is not None and self._version != version:
            self.model.labels(version=self._version).set(0)
        self._version = version
        self.model.labels(version=version).set(1)

    @property
    def version(self) -> str | None:
        """The model version now served (None before one is loaded); the access log reads it."""
        return self._version

    def text(self) -> bytes:
        """The Prometheus exposition text."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


@functools.cache
def serving_metrics() -> ServingMetrics:
    """The metrics of this process (created on first use, not at import)."""
    return ServingMetrics()


class MetricsMiddleware:
    """Count requests and answer ``GET /metrics`` (see module docstring).

    Args:
        app: the wrapped ASGI app.
        paths: paths counted by name (others count as ``other``).
        timed: paths whose latency is observed.
    """

    def __init__(self, app: Any, paths: tuple[str, ...] = (), timed: tuple[str, ...] = ()) -> None:
        self.app = app
        self.paths = frozenset(paths) | {METRICS_PATH}
        self.timed = frozenset(timed)
        self.metrics = serving_metrics()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer ``/metrics``; time and count everything else."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == METRICS_PATH and scope.get("method") == "GET":
            body = self.metrics.text()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]})
            await send({"type": "http.response.body", "body": body})
            self.metrics.requests.labels(path=path, status="200").inc()
            return
        status = [0]

        async def counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, counted)
        finally:
            name = path if path in self.paths else "other"
            self.metrics.requests.labels(path=name, status=str(status[0]) if status[0] else "none").inc()
            if path in self.timed:
                self.metrics.latency.labels(path=path).observe(time.perf_counter() - started)
