"""The served service writes one access line per request, refusals included, never the key or a body."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.testclient import TestClient

from bench.serving_bench import free_port, stop, wait_http
from core.settings import PROJECT_ROOT
from serving.access_log import ACCESS_LOGGER
from tests.conftest import SERVING_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

KEY = "k-access-9d2e"
MARKER = "body-marker-5eed"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_served_service_logs_each_request_with_its_version(champion_home: Path) -> None:
    # given the service started with an API key, its access logger captured
    from serving.service import PersonaService

    captured = _Lines()
    logging.getLogger(ACCESS_LOGGER).addHandler(captured)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in SERVING_ENV:
                patch.delenv(name, raising=False)
            patch.setenv("PERSONA_HOME", str(champion_home))
            patch.setenv("PERSONA_MODEL_POLL_SECONDS", "3600")
            patch.setenv("PERSONA_API_KEY", KEY)
            with TestClient(PersonaService.to_asgi(), raise_server_exceptions=False) as client:
                # when a good request, a keyed bad body and a request without the key come
                good = client.post("/predict", json={"customer_ids": [1]}, headers={"X-API-Key": KEY})
                bad = client.post("/predict", json={"customer_ids": [MARKER]},
                                  headers={"Authorization": f"Bearer {KEY}"})
                unkeyed = client.post("/predict", json={"customer_ids": [1]})
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(captured)
    # then each is one line with its status, request id and the served version
    records = [json.loads(line) for line in captured.lines if '"/predict"' in line]
    assert [(r["path"], r["status"]) for r in records] == [("/predict", 200), ("/predict", 400), ("/predict", 401)]
    assert records[0]["request_id"] == good.headers["X-Request-ID"] == good.json()["request_id"]
    assert records[0]["model_version"] == good.json()["model_version"]
    assert [bad.status_code, unkeyed.status_code] == [400, 401]
    # and the key and the body never appear
    text = "\n".join(captured.lines)
    assert KEY not in text
    assert MARKER not in text


@pytest.mark.slow
def test_persona_serve_writes_the_lines_to_its_output(champion_home: Path, tmp_path: Path) -> None:
    # given `persona serve` with an API key, its output in a file
    home = champion_home  # not a copy: a copied home's registry refuses to load (see test_serving_kill)
    env = {k: v for k, v in os.environ.items() if k not in SERVING_ENV}
    env.update({"PERSONA_HOME": str(home), "HF_HUB_OFFLINE": "1", "PERSONA_API_KEY": KEY})
    port, log = free_port(), tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("persona")), "serve", "--port", str(port),
                                 "--poll-seconds", "3600"], cwd=PROJECT_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(port, "/readyz", 300, proc)
        # when a keyed bad body, an unkeyed request and a head over the cap come
        with httpx.Client(timeout=30) as client:
            bad = client.post(f"http://127.0.0.1:{port}/predict", json={"customer_ids": [MARKER]},
                              headers={"X-API-Key": KEY})
            unkeyed = client.post(f"http://127.0.0.1:{port}/predict", json={"customer_ids": [1]})
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            head = sock.recv(100)
    finally:
        stop(proc)
    # then the served output holds one JSON access line for each, and neither the key nor the body
    assert [bad.status_code, unkeyed.status_code] == [400, 401]
    assert head.startswith(b"HTTP/1.1 431")
    text = log.read_text(errors="replace")
    records = [json.loads(line) for line in _access_lines(text)]
    assert [(r["path"], r["status"]) for r in records if r["status"] != 200] == [
        ("/predict", 400), ("/predict", 401), ("-", 431)], text[-3000:]
    assert KEY not in text
    assert MARKER not in text


def _access_lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        start = line.find('{"event":"access"')
        if start >= 0:
            yield line[start:]
