"""The structured access log: one JSON line per request, including the other middlewares' refusals."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.access_log import ACCESS_LOGGER, AccessLogMiddleware, access_record, log_refused
from serving.auth import ApiKeyMiddleware
from serving.guard import RequestGuardMiddleware
from serving.metrics import MetricsMiddleware, ServingMetrics

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY = "s3cret-key-value-7f3a"
SECRET_BODY = "body-marker-c0ffee"
FIELDS = {"event", "method", "path", "status", "latency_ms", "request_id", "model_version"}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    handler = _Lines()
    log = logging.getLogger(ACCESS_LOGGER)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)
    log.setLevel(level)


async def _predict(request):
    await request.body()
    return JSONResponse({"error": "customer_ids[0]: bad"}, status_code=400, headers={"X-Request-ID": "svc-1"})


def _served_stack() -> AccessLogMiddleware:
    """The middlewares in the order serving.service installs them, around a tiny app."""
    metrics = MetricsMiddleware(Starlette(), paths=("/predict",), timed=("/predict",))
    metrics.metrics = ServingMetrics()
    guard = RequestGuardMiddleware(Starlette(routes=[Route("/predict", _predict, methods=["POST"])]),
                                   api_paths=("/predict",), max_body_bytes=1024)
    metrics.app = guard
    return AccessLogMiddleware(ApiKeyMiddleware(metrics, api_key=KEY), stderr=False)


def test_each_request_is_one_json_line_with_no_key_and_no_body(access_lines: list[str]) -> None:
    # given the served middleware stack with an API key
    client = TestClient(_served_stack())
    # when a keyed bad request, a request without the key, a too large body and a bearer request come
    bad = client.post("/predict", content=json.dumps({"customer_ids": [SECRET_BODY]}),
                      headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    unauthorized = client.post("/predict", json={"customer_ids": [SECRET_BODY]})
    too_large = client.post("/predict", content=json.dumps({"x": SECRET_BODY * 200}),
                            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    metrics = client.get("/metrics?key=" + KEY, headers={"X-API-Key": KEY})
    # then each has one line with the fields, the status answered and the request id the client saw
    assert [bad.status_code, unauthorized.status_code, too_large.status_code, metrics.status_code] == [
        400, 401, 413, 200]
    records = [json.loads(line) for line in access_lines]
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("POST", "/predict", 400), ("POST", "/predict", 401), ("POST", "/predict", 413), ("GET", "/metrics", 200)]
    assert all(set(r) == FIELDS for r in records)
    assert all(isinstance(r["latency_ms"], float) and r["latency_ms"] >= 0 for r in records)
    assert records[0]["request_id"] == "svc-1" == bad.headers["X-Request-ID"]
    assert records[1]["request_id"] == unauthorized.headers["X-Request-ID"]
    assert len({r["request_id"] for r in records}) == len(records)
    # and neither the key nor any body text appears anywhere in the log
    text = "\n".join(access_lines)
    assert KEY not in text
    assert SECRET_BODY not in text
    assert "Bearer" not in text


def test_the_served_model_version_is_logged_when_known(
    access_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a process serving version 7
    metrics = ServingMetrics()
    metrics.served_version("7")
    monkeypatch.setattr("serving.metrics.serving_metrics", lambda: metrics)
    # when the protocol refuses a head, and a health check is answered
    log_refused(431, time.perf_counter())
    TestClient(AccessLogMiddleware(Starlette(routes=[Route("/livez", lambda r: JSONResponse({}))]),
                                   stderr=False)).get("/livez")
    # then both lines name it
    records = [json.loads(line) for line in access_lines]
    assert [(r["status"], r["model_version"]) for r in records] == [(431, "7"), (200, "7")]


def test_an_app_that_raises_is_logged_as_500(access_lines: list[str]) -> None:
    async def broken(scope, receive, send) -> None:
        raise RuntimeError(SECRET_BODY)

    with pytest.raises(RuntimeError):
        TestClient(AccessLogMiddleware(broken, stderr=False)).get("/predict")
    assert json.loads(access_lines[0])["status"] == 500


def test_a_record_is_compact_json() -> None:
    line = access_record("GET", "/readyz", 200, 0.12345, "r-1", None)
    assert line == ('{"event":"access","method":"GET","path":"/readyz","status":200,"latency_ms":0.123,'
                    '"request_id":"r-1","model_version":null}')
