"""Optional API-key authentication as ASGI middleware.

The key comes from ``PERSONA_API_KEY`` (``Settings.api_key``). Clients send it as
``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. Health checks (``/livez``, ``/readyz``,
``/healthz``) and the API documentation stay open; every API answers 401 without the key.

Auth is on when a key is set, and always on in the production profile: starting there without a
key fails, unless ``PERSONA_SERVING_AUTH=off`` (``Settings.serving_auth``) says explicitly that something in front (a
gateway) authenticates instead.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from core.errors import PersonaError

if TYPE_CHECKING:
    from core.settings import Settings

PUBLIC_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/", "/docs.json", "/schema.json"})
PUBLIC_PREFIXES = ("/static_content/", "/assets/")
AUTH_ENV = "PERSONA_SERVING_AUTH"
_FROM_SETTINGS = object()


def resolve_api_key(settings: Settings) -> str | None:
    """The key to enforce, or None for open access.

    Raises:
        PersonaError: production profile without ``PERSONA_API_KEY`` (and auth not switched off).
    """
    mode = settings.serving_auth
    if mode == "off":
        return None
    key = (settings.api_key or "").strip() or None  # a key of spaces is no key
    if key is None and (mode == "on" or settings.profile == "prod"):
        raise PersonaError(
            f"the {settings.profile} profile serves only with an API key: set PERSONA_API_KEY "
            f"(or {AUTH_ENV}=off when a gateway in front authenticates)"
        )
    return key


def _unauthorized(message: str) -> tuple[dict, bytes]:
    body = json.dumps({"error": message, "field": "X-API-Key"}).encode()
    start = {
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="persona", charset="UTF-8"'),
        ],
    }
    return start, body


class ApiKeyMiddleware:
    """Answer 401 to API requests without the right key (see module docstring).

    Args:
        app: the wrapped ASGI app.
        api_key: the key; by default read from the settings (``PERSONA_API_KEY``) when the app is built.
    """

    def __init__(self, app: Any, api_key: str | None | object = _FROM_SETTINGS) -> None:
        self.app = app
        if api_key is _FROM_SETTINGS:
            from core.settings import load_settings

            api_key = resolve_api_key(load_settings())
        self._key = api_key.encode() if isinstance(api_key, str) else None

    @property
    def enabled(self) -> bool:
        """Whether requests need a key (False: open access)."""
        return self._key is not None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass public paths and requests with the key through; answer 401 to the rest."""
        if self._key is None or scope["type"] != "http" or _is_public(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        given = _presented_key(scope.get("headers") or [])
        if given is not None and hmac.compare_digest(given, self._key):
            await self.app(scope, receive, send)
            return
        message = "missing API key: send it in the X-API-Key header" if given is None else "invalid API key"
        start, body = _unauthorized(message)
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None
