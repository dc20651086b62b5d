"""Structured access log: one JSON line per request on the served process's stderr.

BentoML's own access log is off (it costs CPU on the hot paths, see :mod:`serving.service`), and
it would not see what the other middlewares answer before BentoML runs. This middleware is the
outermost one, so it also logs the 401 of the API-key check, the 413/415/408/400 of the request
guard and the ``/metrics`` answers. Requests refused by the HTTP protocol itself, before any ASGI
app runs (431: head too large; 408: head too slow), are logged by :mod:`serving.http_limits`
through :func:`log_refused`, with the same fields.

A line holds ``method, path, status, latency_ms, request_id`` and ``model_version`` (the version
being served, when one is loaded). Never a header value (so never the API key or an
``Authorization`` header), never a query string (it could carry a key) and never a body.

The request id is the one the service put in ``X-Request-ID``; a response without one (a 401, a
413, a health check) gets one from this middleware, in the header and in the log line, so a client
can quote it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from typing import Any

ACCESS_LOGGER = "persona.access"
REQUEST_ID_HEADER = b"x-request-id"

logger = logging.getLogger(ACCESS_LOGGER)


def access_record(
    method: str, path: str, status: int, latency_ms: float, request_id: str, model_version: str | None
) -> str:
    """The JSON line of one request (pure: the fields named in the module docstring, nothing else)."""
    return json.dumps(
        {
            "event": "access",
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "request_id": request_id,
            "model_version": model_version,
        },
        separators=(",", ":"),
    )


def ensure_stderr_handler() -> None:
    """Write the access logger's records, message only, to stderr (idempotent).

    BentoML configures its own loggers, not ours; without a handler the lines would be lost.
    Not propagated, so a root handler does not print each line a second time.
    """
    if any(getattr(h, "_persona_access", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._persona_access = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class _RequestIds:
    """Ids for responses the service did not number: a random process prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = "a" + os.urandom(5).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):08d}"


_ids = _RequestIds()


def _served_version() -> str | None:
    from serving.metrics import serving_metrics

    return serving_metrics().version


def log_refused(status: int, started: float) -> None:
    """Log a request the HTTP protocol refused before its head was parsed (method and path unknown).

    Args:
        status: the status answered (431 or 408).
        started: ``time.perf_counter()`` when the connection or head began.
    """
    latency = (time.perf_counter() - started) * 1000
    logger.info(access_record("-", "-", status, latency, _ids.next(), _served_version()))


class AccessLogMiddleware:
    """Log every HTTP request as one JSON line (see module docstring).

    Args:
        app: the wrapped ASGI app.
        stderr: add the stderr handler (tests capture the logger instead).
    """

    def __init__(self, app: Any, stderr: bool = True) -> None:
        self.app = app
        if stderr:
            ensure_stderr_handler()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; log it when the response has been sent or the app failed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "request_id": None}

        async def logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers") or [])
                given = next((v for n, v in headers if n.lower() == REQUEST_ID_HEADER), None)
                if given is None:
                    given = _ids.next().encode()
                    message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, given)]}
                seen["request_id"] = given.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, logged)
        except Exception:
            seen["status"] = seen["status"] or 500  # the server answers 500 to an app that raised
            raise
        finally:
            latency = (time.perf_counter() - started) * 1000
            logger.info(
                access_record(
                    str(scope.get("method", "")),
                    str(scope.get("path", "")),
                    int(seen["status"]),
                    latency,
                    seen["request_id"] or _ids.next(),
                    _served_version(),
                )
            )
