"""A real ``persona serve`` under attack: killed workers and parents, a busy port, slow and huge clients.

Figures (printed with ``-s``): rows lost on a worker SIGKILL, memory held by 100 slow clients.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

from bench.safety_bench import serve_workers, slow_clients_memory
from bench.serving_bench import free_port, stop, wait_http
from core.settings import PROJECT_ROOT
from tests.conftest import SERVING_ENV, copy_home, raw_exchange

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = PROJECT_ROOT
PERSONA = str(Path(sys.executable).with_name("persona"))
LIMITS = {
    "PERSONA_SERVING_HEADER_TIMEOUT_SECONDS": "2",
    "PERSONA_SERVING_BODY_TIMEOUT_SECONDS": "2",
    "PERSONA_SERVING_MAX_HEADER_BYTES": "16384",
}


class Served:
    """A running ``persona serve`` and how to reach it."""

    def __init__(self, proc: subprocess.Popen, port: int, home: Path, env: dict[str, str], log: Path) -> None:
        self.proc, self.port, self.home, self.env, self.log = proc, port, home, env, log
        self.url = f"http://127.0.0.1:{port}"

    def workers(self) -> list[psutil.Process]:
        return serve_workers(self.proc)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def _serve(champion_home: Path, folder: Path) -> Iterator[Served]:
    """A ``persona serve`` on a copy of the champion home in ``folder``, stopped (workers too) afterwards."""
    home = copy_home(champion_home, folder / "home")
    env = {k: v for k, v in os.environ.items() if k not in SERVING_ENV}
    env.update({"PERSONA_HOME": str(home), "HF_HUB_OFFLINE": "1", **LIMITS})
    port = free_port()
    log = folder / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([PERSONA, "serve", "--port", str(port), "--poll-seconds", "3600"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Served(proc, port, home, env, log)
    try:
        wait_http(port, "/readyz", 300, proc)
        yield server
    finally:
        survivors = server.workers()
        stop(proc)
        for worker in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()


@pytest.fixture
def served(champion_home: Path, tmp_path: Path) -> Iterator[Served]:
    """A server of its own, for a test that kills it."""
    with _serve(champion_home, tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def served_shared(champion_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests that leave it running (each starts in about 12 s)."""
    with _serve(champion_home, tmp_path_factory.mktemp("shared")) as server:
        yield server


def _logged(home: Path) -> int:
    from serving.prediction_log import read_prediction_log

    return len(read_prediction_log(home / "serving" / "prediction_log"))


def test_a_killed_worker_loses_no_answered_row_and_a_busy_port_fails_in_one_line(served: Served) -> None:
    # given N answered requests, one customer each
    answered = 40
    with httpx.Client(timeout=30) as client:
        for i in range(answered):
            assert client.post(f"{served.url}/predict", json={"customer_ids": [1 + i % 50]}).status_code == 200
    # when the worker is SIGKILLed (its log flusher had no chance to run) and restarted by the parent
    (worker,) = served.workers()
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    wait_http(served.port, "/readyz", 300, served.proc)
    # and a second `persona serve` is started on the same port
    second = subprocess.run([PERSONA, "serve", "--port", str(served.port)], cwd=ROOT, env=served.env,
                            capture_output=True, text=True, timeout=120, check=False)
    code = stop(served.proc)
    # then the second one fails in one line
    assert second.returncode == 1, second.stdout + second.stderr
    assert "already in use" in second.stderr + second.stdout
    assert len((second.stdout + second.stderr).strip().splitlines()) <= 2
    # and after the restart and a clean stop every answered row is in the log
    assert code is not None
    logged = _logged(served.home)
    print(f"\nworker SIGKILL: {answered} rows answered, {logged} logged, {answered - logged} lost")
    assert logged == answered, served.tail()


def test_a_killed_parent_takes_its_worker_with_it(served: Served) -> None:
    # given a served request and the worker's pid
    assert httpx.post(f"{served.url}/predict", json={"customer_ids": [1]}, timeout=30).status_code == 200
    (worker,) = served.workers()
    # when the parent (`persona serve`, exec'd into bentoml) is SIGKILLed
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(10)
    # then the worker exits too, and nothing serves the port any more
    worker.wait(30)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/livez", timeout=2)
    # and it stopped cleanly: the answered row is in the log
    assert _logged(served.home) == 1



def test_big_and_slow_heads_and_slow_bodies_are_cut_off(served_shared: Served) -> None:
    head = b"GET /livez HTTP/1.1\r\nHost: x\r\n"
    # when a 64 KB header is sent: 431
    big = raw_exchange(served_shared.port, head + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 431"), big[:200]
    # when a head stalls half-way: 408 after the header timeout, connection closed
    started = time.monotonic()
    slow = raw_exchange(served_shared.port, head + b"X-Slow: 1\r\n")
    assert slow.startswith(b"HTTP/1.1 408"), slow[:200]
    assert time.monotonic() - started < 8
    # when a body stalls half-way: 408 after the body timeout
    body = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"customer_ids\": [")
    stalled = raw_exchange(served_shared.port, body)
    assert stalled.startswith(b"HTTP/1.1 408"), stalled[:200]
    # and the server still answers
    assert httpx.get(f"{served_shared.url}/livez", timeout=5).status_code == 200


def test_one_hundred_slow_clients_hold_little_memory(served_shared: Served) -> None:
    # given the worker at rest
    (worker,) = served_shared.workers()
    # when 100 clients each try to send a 2 MB header (never finished) and hold their connection
    held = slow_clients_memory(served_shared.port, worker)
    # then the worker holds only a few MB for all of them (each was cut off at 16 KiB)
    print(f"\n100 slow 2 MB-header clients: worker RSS +{held:.1f} MiB")
    assert held < 50
    assert httpx.get(f"{served_shared.url}/livez", timeout=5).status_code == 200


def test_metrics_are_served_in_prometheus_text(served_shared: Served) -> None:
    # given one prediction and one bad request
    httpx.post(f"{served_shared.url}/predict", json={"customer_ids": [1]}, timeout=30)
    httpx.post(f"{served_shared.url}/predict", json={"customer_ids": "x"}, timeout=30)
    # when /metrics is read
    response = httpx.get(f"{served_shared.url}/metrics", timeout=5)
    # then it counts requests by path and status, and names the model version
    assert response.status_code == 200
    text = response.text
    assert 'persona_requests_total{path="/predict",status="200"} 1.0' in text
    assert 'persona_requests_total{path="/predict",status="400"} 1.0' in text
    assert 'persona_model_info{version="1"} 1.0' in text
    assert "persona_request_seconds_bucket" in text
