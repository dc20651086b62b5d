"""The request-head limits on a real uvicorn socket (a tiny app; the served process is in test_serving_kill)."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

import pytest
import uvicorn

from bench.serving_bench import free_port
from serving.http_limits import install, limited_protocol
from tests.conftest import raw_exchange

if TYPE_CHECKING:
    from collections.abc import Iterator


async def _ok(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    number = free_port()
    config = uvicorn.Config(_ok, host="127.0.0.1", port=number, log_config=None, lifespan="off",
                            http=limited_protocol(4096, 0.5))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield number
    server.should_exit = True
    thread.join(10)



HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"


def test_a_small_head_is_served(port: int) -> None:
    assert raw_exchange(port, HEAD + b"Connection: close\r\n\r\n", wait=5.0).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("size", [5000, 65536, 1_000_000])
def test_a_head_over_the_cap_is_431_whether_it_arrives_whole_or_not(port: int, size: int) -> None:
    answer = raw_exchange(port, HEAD + b"X-Big: " + b"a" * size + b"\r\n\r\n", wait=5.0)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_an_unfinished_head_is_408_after_the_timeout_and_closed(port: int) -> None:
    started = time.monotonic()
    answer = raw_exchange(port, HEAD + b"X-Slow: 1\r\n", wait=5.0)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < 3


def test_an_idle_connection_is_closed_without_an_answer(port: int) -> None:
    assert raw_exchange(port, b"", wait=5.0) == b""


def test_install_configures_every_uvicorn_server_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_SERVING_MAX_HEADER_BYTES", "8192")
    monkeypatch.setenv("PERSONA_SERVING_MAX_CONNECTIONS", "7")
    install()
    config = uvicorn.Config(_ok)
    assert config.limit_concurrency == 7
    assert isinstance(config.http, type)
    assert config.http.max_header_bytes == 8192
    assert uvicorn.Config(_ok, limit_concurrency=3).limit_concurrency == 3  # explicit options win


def test_beyond_the_connection_limit_requests_get_503() -> None:
    # given a server limited to 3 connections, held by 3 idle clients
    number = free_port()
    config = uvicorn.Config(_ok, host="127.0.0.1", port=number, log_config=None, lifespan="off",
                            http=limited_protocol(4096, 30.0), limit_concurrency=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    idle = [socket.create_connection(("127.0.0.1", number), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.3)
        # when a fourth client sends a request
        answer = raw_exchange(number, HEAD + b"Connection: close\r\n\r\n", wait=5.0)
    finally:
        for sock in idle:
            sock.close()
        server.should_exit = True
        thread.join(10)
    # then it is refused with 503
    assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
