"""Request guard (ASGI middleware): content type, body size, and 400s that name the field.

- Only JSON reaches the API: a pickle body (``application/vnd.bentoml+pickle``) or any other
  non-JSON content type gets 415 before BentoML looks at it.
- A body larger than ``max_body_bytes`` gets 413 (checked on Content-Length, and while reading
  a chunked body).
- The body is read here, each chunk within ``body_timeout`` seconds
  (``Settings.serving_body_timeout_seconds``): a client that stalls gets 408 and the connection
  is closed, so slow bodies cannot pile up open connections. A client that disconnects mid-body
  is logged in one line (no traceback) and not answered.
- BentoML answers a request that fails its pydantic validation with a 400 whose message is
  ``"1 validation error for Input"``; this middleware rewrites that body so ``error`` names the
  field (``customer_ids[2]: Input should be a valid integer``), ``field`` holds its path and
  ``detail`` every error in one string (the OpenAPI schema's type).
"""

from __future__ import annotations

import asyncio
import json
import logging

logger = logging.getLogger("persona.serving")

MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TIMEOUT_SECONDS = 10.0
JSON_TYPES = ("application/json",)


def field_path(loc: list | tuple) -> str:
    """Pydantic ``loc`` -> ``rows[0].features.age`` (``body`` for the request as a whole)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def describe_error(error: dict) -> tuple[str, str]:
    """(field, message) of one pydantic error dict."""
    field = field_path(error.get("loc") or ())
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "json_invalid":
        field, message = "body", f"not valid JSON ({message})"
    elif kind == "model_type" and field == "body":
        message = "expected a JSON object"
    elif kind == "finite_number":
        message = "expected a finite number (NaN and infinity are refused)"
    return field, message


def _json_response(status: int, payload: dict, close: bool = False) -> tuple[dict, bytes]:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


class RequestGuardMiddleware:
    """See module docstring.

    Args:
        app: the wrapped ASGI app.
        api_paths: paths of the API routes (POST); other paths pass untouched.
        max_body_bytes: largest accepted request body.
        body_timeout: longest wait for the next body chunk (None: ``Settings.serving_body_timeout_seconds``).
    """

    def __init__(
        self,
        app,
        api_paths: tuple[str, ...] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.api_paths = frozenset(api_paths)
        self.max_body_bytes = max_body_bytes
        if body_timeout is None:
            from core.settings import load_settings

            body_timeout = load_settings().serving_body_timeout_seconds
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send) -> None:
        """Check API requests (media type, body size) before the app sees them; pass the rest."""
        if scope["type"] != "http" or scope.get("path") not in self.api_paths:
            await self.app(scope, receive, send)
            return
        content_type = length = None
        for name, value in scope.get("headers") or []:
            if name == b"content-type":
                content_type = value.decode("latin-1").split(";")[0].strip().lower()
            elif name == b"content-length":
                length = value
        if content_type and content_type not in JSON_TYPES:
            refused = (
                "pickle bodies are refused"
                if "pickle" in content_type
                else "only application/json is accepted"
            )
            await self._reply(
                send, 415, f"Content-Type {content_type}: {refused}; send application/json", "Content-Type"
            )
            return
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                await self._reply(send, 400, "Content-Length is not a number", "Content-Length")
                return
            if size > self.max_body_bytes:
                await self._reply(
                    send, 413, f"request body of {size} bytes exceeds {self.max_body_bytes}", "body"
                )
                return
        chunks, total = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                logger.info("%s: request body stalled for %.0f s; 408", scope.get("path"), self.body_timeout)
                await self._reply(
                    send, 408, f"request body not received within {self.body_timeout:g} s", "body", close=True
                )
                return
            if message["type"] == "http.disconnect":
                logger.info("%s: client disconnected before sending the whole body", scope.get("path"))
                return
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_body_bytes:
                await self._reply(send, 413, f"request body exceeds {self.max_body_bytes} bytes", "body")
                return
            if not message.get("more_body", False):
                break
        receive = _replay(b"".join(chunks), receive)
        await self.app(scope, receive, _NamedErrors(send))

    @staticmethod
    async def _reply(send, status: int, message: str, field: str, close: bool = False) -> None:
        start, body = _json_response(status, {"error": message, "field": field}, close)
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive):
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class _NamedErrors:
    """``send`` wrapper that rewrites BentoML's validation 400 bodies (others pass straight through)."""

    def __init__(self, send) -> None:
        self.send = send
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            if message.get("status") == 400:
                self.start = message
                return
            await self.send(message)
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(self.chunks)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if (
            isinstance(payload, dict)
            and isinstance(payload.get("detail"), list)
            and payload["detail"]
            and "field" not in payload
        ):
            field, text = describe_error(payload["detail"][0])
            extra = len(payload["detail"]) - 1
            rewritten = {  # ``detail`` is a string, as the OpenAPI schema (InvalidArgument) says
                "error": f"{field}: {text}" + (f" (and {extra} more)" if extra else ""),
                "field": field,
                "detail": "; ".join(
                    "{}: {}".format(*describe_error(e)) for e in payload["detail"] if isinstance(e, dict)
                ),
            }
            start, body = _json_response(400, rewritten)
            headers = [
                (k, v)
                for k, v in self.start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]
            start["headers"] = start["headers"] + headers
            await self.send(start)
        else:
            await self.send(self.start)
        await self.send({"type": "http.response.body", "body": body})
