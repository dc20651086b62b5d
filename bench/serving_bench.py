"""Issue 5 figures: the served Bento against Feast's own feature server, on loopback.

Builds a home with a champion and an uplift champion (issue 15: ``/predict`` keeps its latency
target while it answers each offer's uplift and the next best action; :mod:`bench.uplift_home`),
starts ``bentoml serve serving.service:PersonaService`` and
``feast serve`` (same ``feature_store.yaml``, same home), then drives both with an open-loop
load generator at a fixed rate: each request is due at ``start + i / rate`` whether or not
earlier ones have answered, and its latency counts from that due time (no coordinated
omission). The two servers take turns in short slices so background load hits both alike.
Every run is bounded in request count and wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.common import row, scratch_home

if TYPE_CHECKING:
    from collections.abc import Iterator

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- load generator
@dataclass
class LoadResult:
    """Latencies (seconds, from each request's due time) and failures of one run."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0

    def extend(self, other: LoadResult) -> None:
        """Add another slice's answers to this one."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.sent += other.sent
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds (NaN without answers)."""
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return int(head[9:12])


def http_request(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A keep-alive HTTP/1.1 POST with a JSON body."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_loop(
    port: int,
    requests: list[bytes],
    rate: float,
    seconds: float,
    connections: int = 32,
    grace_seconds: float = 10.0,
) -> LoadResult:
    """Send ``rate * seconds`` requests at a fixed rate over a pool of keep-alive connections.

    Args:
        port: server port on 127.0.0.1.
        requests: raw HTTP requests, used round-robin.
        rate: requests per second.
        seconds: duration of the schedule.
        connections: connection pool size (a request waits for a free one; the wait counts).
        grace_seconds: after the schedule, answers still missing this long later are errors.
    """
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    result = LoadResult()
    count = int(rate * seconds)

    async def fire(due: float, request: bytes) -> None:
        conn = await pool.get()
        try:
            status = await _exchange(*conn, request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            conn[1].close()
            conn = await asyncio.open_connection("127.0.0.1", port)
            pool.put_nowait(conn)
            return
        pool.put_nowait(conn)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status != 200:
            result.errors += 1
            return
        result.latencies.append(time.perf_counter() - due)

    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(due, requests[i % len(requests)])))
        result.sent += 1
    done, pending = await asyncio.wait(tasks, timeout=grace_seconds) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    result.errors += len(pending)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return result


def drive(port: int, requests: list[bytes], rate: float, seconds: float) -> LoadResult:
    """Synchronous wrapper of :func:`open_loop`."""
    return asyncio.run(open_loop(port, requests, rate, seconds))


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU time of a process and its children so far."""
    import psutil

    total = 0.0
    try:
        parent = psutil.Process(proc.pid)
        for member in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system
    except psutil.Error:
        pass
    return total


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(port: int, path: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``GET path`` answers 200 (raises TimeoutError, or RuntimeError if ``proc`` died)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"127.0.0.1:{port}{path} not ready after {timeout:.0f} s")


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, port: int, ready_path: str, timeout: float = 300.0
) -> Iterator[subprocess.Popen]:
    """Run a server subprocess (own process group) until the block ends, then stop it with SIGTERM."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            try:
                wait_http(port, ready_path, timeout, proc)
            except (TimeoutError, RuntimeError) as exc:  # say why: the log goes with the scratch home
                lines = [line for line in log.read_bytes().decode(errors="replace").splitlines()
                         if '"event":"access"' not in line]  # the readiness probes' own lines say nothing
                tail = "\n".join(lines[-40:])
                raise type(exc)(f"{exc}; last lines of {log.name} (access lines left out):\n{tail}") from None
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """SIGTERM the process group, SIGKILL it if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def bento_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:PersonaService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def feast_command(port: int, feature_store_yaml: Path) -> list[str]:
    feast = Path(sys.executable).with_name("feast")
    return [
        str(feast),
        "-c",
        "feature_repo",
        "-f",
        str(feature_store_yaml),
        "serve",
        "-p",
        str(port),
        "--no-access-log",
        "--workers",
        "1",
        "--max-requests",
        "10000000",
    ]


# --------------------------------------------------------------------------- benchmark
def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for the serving issue (``quick``: small data and short runs)."""
    import httpx

    from bench.uplift_home import register_uplift_champion
    from core.settings import load_settings
    from features.dataset import feature_refs
    from serving.prediction_log import read_prediction_log
    from tests.conftest import build_champion_home

    customers = 2_000 if quick else 20_000
    seconds = 12.0 if quick else 60.0
    slice_seconds = 6.0 if quick else 10.0
    rate = 200.0
    with scratch_home("serving") as base:
        home = Path(os.environ["PERSONA_HOME"])
        build_champion_home(
            home, customers=customers, days=120 if quick else 180, n_estimators=60 if quick else 300
        )
        settings = load_settings()
        register_uplift_champion(settings)
        env = {
            **os.environ,
            **settings.feast_env(),
            "HF_HUB_OFFLINE": "1",
            "PERSONA_MODEL_POLL_SECONDS": "10",
        }
        env.pop("PERSONA_API_KEY", None)
        ids = np.random.default_rng(0).integers(1, customers + 1, 4_000)
        ours = [http_request("/predict", json.dumps({"customer_ids": [int(i)]}).encode()) for i in ids]
        big = [
            http_request(
                "/predict", json.dumps({"customer_ids": [int(i) for i in ids[k : k + 1000]]}).encode()
            )
            for k in (0, 1000, 2000, 3000)
        ]
        bento_port, feast_port = free_port(), free_port()
        feast_cmd = feast_command(feast_port, settings.feature_store_yaml)
        with (
            running(bento_command(bento_port), env, base / "bento.log", bento_port, "/readyz") as bento,
            running(feast_cmd, env, base / "feast.log", feast_port, "/health") as feast_server,
        ):
            info = httpx.post(f"http://127.0.0.1:{bento_port}/model_info", json={}, timeout=30).json()
            uplift_version = (info.get("uplift") or {}).get("version")
            wanted = set(info["feature_columns"])
            refs = [
                r
                for r in feature_refs(settings, info.get("feature_service") or "churn_model_v2")
                if r.split(":")[1] in wanted
            ]
            theirs = [
                http_request(
                    "/get-online-features",
                    json.dumps({"features": refs, "entities": {"customer_id": [int(i)]}}).encode(),
                )
                for i in ids
            ]

            warm = drive(bento_port, ours, rate, 3.0)  # warm-up: page cache, connections, lazy imports
            drive(feast_port, theirs, rate, 3.0)
            mine, feast = LoadResult(), LoadResult()
            cpu_mine = cpu_feast = 0.0
            turns = max(1, int(round(seconds / slice_seconds)))
            for _ in range(turns):  # alternate so background load hits both servers alike
                before = cpu_seconds(bento)
                mine.extend(drive(bento_port, ours, rate, seconds / turns))
                cpu_mine += cpu_seconds(bento) - before
                before = cpu_seconds(feast_server)
                feast.extend(drive(feast_port, theirs, rate, seconds / turns))
                cpu_feast += cpu_seconds(feast_server) - before

            batch = LoadResult()
            for _ in range(3 if quick else 5):
                batch.extend(drive(bento_port, big, 4.0, 1.0))  # 4 requests of 1000 ids, 250 ms apart
            stop(bento)  # SIGTERM: the log must be complete afterwards
            log = read_prediction_log(settings.serving_dir / "prediction_log")
            logged = len(log)
            predicted = log["cold_start_reason"].isna()
            with_uplift = int((predicted & log.get("uplift_model_version", pd.Series(index=log.index)).notna()).sum())

    label = f"@{rate:.0f} rps x {seconds:.0f} s, uplift served"
    p50, p99, f50, f99 = mine.percentile(50), mine.percentile(99), feast.percentile(50), feast.percentile(99)
    ratio = p50 / f50 if f50 > 0 else float("nan")
    b50 = batch.percentile(50)
    served = warm.statuses.get(200, 0) + mine.statuses.get(200, 0) + 1000 * batch.statuses.get(200, 0)
    return [
        row(5, "serving", f"predict 1 customer p50 {label}", p50, "ms"),
        row(5, "serving", f"predict 1 customer p99 {label}", p99, "ms", "< 15", p99 < 15),
        row(5, "serving", f"predict errors {label}", float(mine.errors), "requests", "0", mine.errors == 0),
        row(5, "serving", f"feast get-online-features p50 {label}", f50, "ms"),
        row(5, "serving", f"feast get-online-features p99 {label}", f99, "ms"),
        row(5, "serving", f"feast errors {label}", float(feast.errors), "requests"),
        row(
            5,
            "serving",
            "p50 ratio: our full prediction / Feast features only",
            ratio,
            "x",
            "<= 1.0",
            ratio <= 1.0,
        ),
        row(
            5,
            "serving",
            "server CPU per request: ours (full prediction)",
            1000 * cpu_mine / max(mine.sent, 1),
            "ms",
        ),
        row(
            5,
            "serving",
            "server CPU per request: Feast (features only)",
            1000 * cpu_feast / max(feast.sent, 1),
            "ms",
        ),
        row(5, "serving", f"predict 1000 customers p50, uplift served (v{uplift_version})", b50, "ms", "< 100",
            b50 < 100),
        row(
            5,
            "serving",
            "predict 1000 customers max",
            max(batch.latencies, default=float("nan")) * 1000,
            "ms",
        ),
        row(
            5,
            "serving",
            "prediction log rows after SIGTERM",
            float(logged),
            "rows",
            f"= {served:,} served",
            logged == served,
        ),
        row(
            15,
            "serving",
            "predicted rows logged with the uplift served (per offer, next best action, uplift version)",
            with_uplift / max(int(predicted.sum()), 1),
            "share",
            "= 1",
            with_uplift == int(predicted.sum()) > 0,
            load_sensitive=False,
        ),
    ]


if __name__ == "__main__":  # pragma: no cover
    from bench.run import render

    print(render(run(quick="--quick" in sys.argv), "serving benchmark"))
