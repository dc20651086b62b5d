"""What one client may hold of the served process: request-head size and time, connections.

BentoML 1.4 runs each HTTP worker on uvicorn with the ``httptools`` parser and no way to pass
uvicorn options from the service. That parser has no limit on the request head and no timeout
on reading it, so a client could hold memory and a connection forever (a 64 MB header was
answered 200; 100 clients each sending 2 MB of an unfinished header held 200 MB). So the served
process installs, before uvicorn is configured (:func:`install`, called from
:mod:`serving.service`):

- :class:`LimitedHttpToolsProtocol`: a request head (request line + headers) larger than
  ``Settings.serving_max_header_bytes`` is answered **431** and the connection closed; a head
  not complete within ``Settings.serving_header_timeout_seconds`` of the connection (or of the
  previous response) is answered **408** and closed (a connection that sent nothing is just
  closed).
- uvicorn's ``limit_concurrency`` = ``Settings.serving_max_connections``: beyond that many open
  connections or tasks, requests are answered **503**.
- The body read timeout (``Settings.serving_body_timeout_seconds``, **408**) is enforced by
  :class:`serving.guard.RequestGuardMiddleware`, which reads API bodies itself.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.access_log import log_refused

logger = logging.getLogger("persona.serving")

class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the cap."""


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def raw_error(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error response with a JSON body that closes the connection."""
    body = json.dumps({"error": message, "field": "headers" if status == 431 else None}).encode()
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, _REASONS.get(status, b"Error"), len(body))
    )
    return head + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head size cap and read timeout (see module)."""

    max_header_bytes = 16 * 1024
    header_timeout = 10.0

    def connection_made(self, transport: Any) -> None:
        """Start the head timer with the connection."""
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: Any = None
        self._too_large = False
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_started = time.perf_counter()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        self._in_head = False
        if not self.transport.is_closing():
            self.transport.write(raw_error(status, message))
            self.transport.close()
            log_refused(status, self._head_started)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes == 0:  # an idle connection: nothing to answer
            self.transport.close()
            return
        logger.info("request head not complete within %.0f s from %s; 408", self.header_timeout, self.client)
        self._refuse(408, f"request head not complete within {self.header_timeout:g} s")

    def data_received(self, data: bytes) -> None:
        """Feed the parser, refusing a head over the cap (uvicorn's own, plus the two limits)."""
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._too_large:
                self._too_large_answer()
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        # a head still incomplete after this chunk: the parser holds at most the cap plus one read
        if self._in_head and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._too_large_answer()

    def _too_large_answer(self) -> None:
        logger.info("request head over %d bytes from %s; 431", self.max_header_bytes, self.client)
        self._refuse(431, f"request head exceeds {self.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        """The head is in: stop the head timer; refuse it when it is over the cap (one read held it all)."""
        self._in_head = False
        self._disarm()
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + 16
        if size > self.max_header_bytes:
            self._too_large = True
            raise _HeadTooLarge(size)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """A kept-alive connection starts a new head (and its timer)."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._in_head = True
            self._head_bytes = 0
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)


def limited_protocol(max_header_bytes: int, header_timeout: float) -> type[LimitedHttpToolsProtocol]:
    """A :class:`LimitedHttpToolsProtocol` with these limits (uvicorn builds protocols from a class)."""
    return type(
        "PersonaHttpProtocol",
        (LimitedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout": header_timeout},
    )


def install() -> None:
    """Make uvicorn servers of this process use the limits of the settings (idempotent).

    The settings are read when uvicorn builds its config (in the worker), not here; options the
    caller passes explicitly win.
    """
    import uvicorn

    config_class: Any = uvicorn.Config
    if getattr(config_class.__init__, "_persona_limits", False):
        return
    original = config_class.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        from core.settings import load_settings

        settings = load_settings()
        kwargs.setdefault(
            "http", limited_protocol(settings.serving_max_header_bytes, settings.serving_header_timeout_seconds)
        )
        kwargs.setdefault("limit_concurrency", settings.serving_max_connections)
        kwargs.setdefault("h11_max_incomplete_event_size", settings.serving_max_header_bytes)
        original(self, *args, **kwargs)

    __init__._persona_limits = True  # type: ignore[attr-defined]
    config_class.__init__ = __init__
