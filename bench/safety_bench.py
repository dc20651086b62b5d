"""Lose nothing, answer every bad request with a 4xx, hold little memory under slow clients (issue 13).

Every figure comes from the real pieces a user runs:

* two ``ingest`` processes writing one table at the same moment (each its own file of distinct
  orders): rows sent minus rows stored;
* a real ``persona serve`` answering N requests, its worker SIGKILLed (its log flusher never
  runs) and restarted by the parent, then stopped: rows answered minus rows in the prediction log;
* the same server sent malformed requests (wrong types, bad JSON, huge ids, unknown fields):
  how many got a 5xx;
* 100 clients each sending a 2 MB header and holding their connection: the worker's extra RSS.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import row, scratch_home
from bench.serving_bench import free_port, stop, wait_http

ISSUE = 13
PERSONA = str(Path(sys.executable).with_name("persona"))

_INGEST = """
import json, sys
from core.settings import load_settings
from ingest.run import ingest_files
[report] = ingest_files(load_settings(), {"transactions": sys.argv[1]})
print(json.dumps([report.new_rows, report.already_present, report.quarantined]))
"""

# Bodies a careless or hostile client sends to /predict; each must get a 4xx.
MALFORMED = [
    b"", b"{", b"null", b"[]", b'"x"', b"{}", b'{"customer_ids": "x"}', b'{"customer_ids": [true]}',
    b'{"customer_ids": [1.5]}', b'{"customer_ids": [-1]}', b'{"customer_ids": [99999999999999999999999]}',
    b'{"customer_ids": [[1]]}', b'{"customer_ids": [{"a": 1}]}', b'{"customer_ids": []}',
    b'{"customer_ids": [1], "explain": "maybe"}', b'{"customer_ids": [1], "what_if": {"x": 1}}',
    b'{"customer_ids": [1], "what_if": {"recency_days": "NaN"}}', b'{"customer_ids": [1], "unknown": 1}',
    b'{"customer_ids": [1e309]}', b"\xff\xfe\x00", b'{"customer_ids": [' + b"1," * 200_000 + b"1]}",
]


def write_transactions(path: Path, first_customer: int, rows: int) -> Path:
    """A CSV of ``rows`` distinct orders (ids ``<first_customer>-<i>``) over 1,000 customers from ``first_customer``."""
    rng = np.random.default_rng(first_customer)
    pd.DataFrame({
        "customer_id": first_customer + np.arange(rows) % 1_000,
        "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 365 * 86_400, rows), unit="s"),
        "amount": np.round(rng.random(rows) * 200, 2),
        "order_id": [f"{first_customer}-{i}" for i in range(rows)],
    }).to_csv(path, index=False)
    return path


def concurrent_ingest_lost(base: Path, rows: int) -> tuple[int, int]:
    """``(rows sent, rows lost)`` when two ingest processes write one table at once."""
    from core.settings import PROJECT_ROOT, load_settings

    files = [write_transactions(base / "a.csv", 1_000, rows), write_transactions(base / "b.csv", 5_000, rows)]
    home = base / "ingest_home"
    env = {**os.environ, "PERSONA_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _INGEST, str(f)], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"ingest failed: {err.strip().splitlines()[-1:]}")
    stored = pd.read_parquet(load_settings(home=home).raw_dir / "transactions.parquet", columns=["order_id"])
    sent = set(pd.concat([pd.read_csv(f, usecols=["order_id"], dtype=str)["order_id"] for f in files]))
    return len(sent), len(sent - set(stored["order_id"]))


def serve_workers(proc: subprocess.Popen) -> list:
    """The BentoML worker processes of a running ``persona serve``."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        return [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "_bentoml_impl.worker.service" in " ".join(p.cmdline())]
    return []


def slow_clients_memory(port: int, worker) -> float:
    """Extra worker RSS (MiB) while 100 clients each push a 2 MB header and hold on."""
    before = worker.memory_info().rss
    sockets, chunk = [], b"a" * 65536
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sockets.append(sock)
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(2_000_000 // len(chunk)):
                    sock.sendall(chunk)
        time.sleep(1.0)
        return (worker.memory_info().rss - before) / 2**20
    finally:
        for sock in sockets:
            sock.close()


def malformed_5xx(url: str) -> tuple[int, int]:
    """``(requests sent, answers >= 500)`` for the malformed bodies."""
    import httpx

    with httpx.Client(timeout=60) as client:
        codes = [client.post(f"{url}/predict", content=body, headers={"Content-Type": "application/json"}).status_code
                 for body in MALFORMED]
    return len(codes), sum(code >= 500 for code in codes)


def sigkill_lost(url: str, port: int, proc: subprocess.Popen, home: Path, answered: int) -> int:
    """Rows answered minus rows logged after the worker is SIGKILLed, restarted and the server stopped.

    The answered requests name customers no earlier request named, so rows an earlier request left
    in the worker's buffer are not counted as these.
    """
    import httpx

    from serving.prediction_log import read_prediction_log

    ids = list(range(201, 201 + answered))
    with httpx.Client(timeout=30) as client:
        for customer in ids:
            if client.post(f"{url}/predict", json={"customer_ids": [customer]}).status_code != 200:
                raise RuntimeError("a valid request was refused")
    (worker,) = serve_workers(proc)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    wait_http(port, "/readyz", 300, proc)
    stop(proc)
    logged = read_prediction_log(home / "serving" / "prediction_log")
    return answered - int(logged["customer_id"].isin(ids).sum())


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for issue 13 (``quick``: 2 x 5k ingest rows instead of 2 x 50k)."""
    from tests.conftest import SERVING_ENV, build_champion_home

    rows: list[dict] = []
    with scratch_home("safety") as base:
        sent, lost = concurrent_ingest_lost(base, 5_000 if quick else 50_000)
        rows.append(row(ISSUE, "safety", f"rows lost, 2 ingest processes writing one table at once ({sent:,} rows)",
                        lost, "rows", "0", lost == 0, load_sensitive=False))

        home = build_champion_home(base / "home", customers=300)
        env = {k: v for k, v in os.environ.items() if k not in SERVING_ENV}
        env.update({"PERSONA_HOME": str(home), "HF_HUB_OFFLINE": "1",
                    "PERSONA_SERVING_HEADER_TIMEOUT_SECONDS": "2", "PERSONA_SERVING_BODY_TIMEOUT_SECONDS": "2"})
        port = free_port()
        with open(base / "serve.log", "wb") as out:
            proc = subprocess.Popen([PERSONA, "serve", "--port", str(port), "--poll-seconds", "3600"], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(port, "/readyz", 300, proc)
            (worker,) = serve_workers(proc)
            held = slow_clients_memory(port, worker)
            rows.append(row(ISSUE, "safety", "worker RSS held by 100 clients each sending a 2 MB header", held,
                            "MiB", "< 50", held < 50))
            count, errors = malformed_5xx(url)
            rows.append(row(ISSUE, "safety", f"5xx answers to {count} malformed /predict requests", errors,
                            "answers", "0", errors == 0, load_sensitive=False))
            answered = 40
            lost_rows = sigkill_lost(url, port, proc, home, answered)
            rows.append(row(ISSUE, "safety", f"prediction-log rows lost, worker SIGKILLed after {answered} answers",
                            lost_rows, "rows", "0", lost_rows == 0, load_sensitive=False))
        finally:
            stop(proc)
    return rows
