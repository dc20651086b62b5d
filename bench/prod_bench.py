"""Production-profile figures: Redis online store, Postgres offline store and registry.

Three measurements, each in its own Postgres database and Feast project (Redis keys of that
project and the databases are removed afterwards):

1. ``persona features materialize`` of 1M behavior rows from Postgres into Redis (rows/s).
2. The same champion served by ``persona serve`` twice, once per profile (SQLite online store /
   Redis online store), driven over HTTP in alternating slices so background load hits both
   alike: single-customer and 100-customer predict latency, side by side.
3. A load test of the Redis-backed Bento: 20k requests at 300 requests/s (open loop), a mix of
   valid and invalid requests (:func:`bench.load.predict_mix`): answers per status class, 5xx
   (none allowed), answers that break the API's promises, latency of valid and invalid requests.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.common import row, scratch_home, timed
from bench.load import LoadRequest, LoadRun, drive, expect_predictions, predict_mix
from core import catalog

if TYPE_CHECKING:
    from collections.abc import Iterator

ISSUE = 7
AREA = "prod"
API_KEY = "persona-bench-key"


# --------------------------------------------------------------------------- prod namespace
def services_problem() -> str | None:
    """Why the production services cannot be used (None when Postgres and Redis answer)."""
    from app.services import unreachable
    from core.settings import load_settings

    return unreachable(load_settings(profile="prod"))


@contextlib.contextmanager
def restored_environ() -> Iterator[None]:
    """Give back ``os.environ`` as it was (Feast edges export PERSONA_* variables)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def delete_project_keys(settings) -> int:
    """Delete the Redis keys of the settings' Feast project (keys end with the project name)."""
    import redis

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    deleted, chunk = 0, []
    for key in client.scan_iter(match=b"*" + settings.project.encode(), count=10_000):
        chunk.append(key)
        if len(chunk) >= 10_000:
            deleted += client.unlink(*chunk)
            chunk = []
    if chunk:
        deleted += client.unlink(*chunk)
    return deleted


def count_project_keys(settings) -> int:
    """Number of Redis keys of the settings' Feast project."""
    import redis

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    return sum(1 for _ in client.scan_iter(match=b"*" + settings.project.encode(), count=10_000))


def redis_used_memory(settings) -> int:
    """Bytes Redis uses (INFO memory)."""
    import redis

    return int(redis.Redis(host=settings.redis_host, port=settings.redis_port).info("memory")["used_memory"])


def drop_databases(settings) -> None:
    """Drop the settings' Postgres databases (offline store + registry, MLflow backend)."""
    import psycopg

    from app.services import MLFLOW_DB_SUFFIX

    with psycopg.connect(f"host={settings.postgres_host} port={settings.postgres_port} "
                         f"user={settings.postgres_user} dbname=postgres", autocommit=True) as conn:
        for name in (settings.postgres_db, settings.postgres_db + MLFLOW_DB_SUFFIX):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def prod_namespace(name: str) -> Iterator[dict[str, str]]:
    """``PERSONA_PROFILE=prod`` with an own Postgres database and Feast project, removed afterwards.

    Yields:
        The environment variables set (profile, database, project).
    """
    from app.services import ensure_databases
    from core.settings import load_settings

    suffix = uuid.uuid4().hex[:8]
    env = {"PERSONA_PROFILE": "prod", "PERSONA_POSTGRES_DB": f"persona_{name}_{suffix}",
           "PERSONA_PROJECT": f"persona_{name}_{suffix}",
           # the prod profile signs and verifies versions with a key it never creates itself
           "PERSONA_MODEL_SIGNING_KEY": (os.environ.get("PERSONA_MODEL_SIGNING_KEY")
                                         or f"bench-signing-key-{suffix}-{suffix}")}
    with restored_environ():
        os.environ.update(env)
        settings = load_settings()
        ensure_databases(settings)
        try:
            yield env
        finally:
            delete_project_keys(settings)
            drop_databases(settings)


# --------------------------------------------------------------------------- 1. materialize into Redis
def materialize_into_redis(n: int) -> dict[str, float]:
    """Materialize ``n`` behavior rows (one per customer) from Postgres into Redis.

    Returns:
        ``seconds`` of ``materialize``, ``keys`` found in Redis afterwards, ``memory`` bytes they took.
    """
    from core.settings import load_settings
    from features.build import empty_text_frame
    from features.transforms.behavior import BEHAVIOR_FEATURES
    from store.offline import write_source
    from store.repo import apply_repo, materialize

    with scratch_home("prod-materialize"), prod_namespace("bench_mat"):
        settings = load_settings()
        rng = np.random.default_rng(0)
        t = pd.Timestamp("2025-06-01", tz="UTC")
        frame = pd.DataFrame({"customer_id": np.arange(n, dtype="int64"), "event_timestamp": t,
                              "created_timestamp": t})
        for name, kind in BEHAVIOR_FEATURES.items():
            frame[name] = rng.integers(0, 50, n) if kind == "int" else rng.normal(size=n).astype("float32")
        write_source(settings, "customer_behavior", frame)
        del frame
        profile = pd.DataFrame({"customer_id": [0], "event_timestamp": [t], "created_timestamp": [t],
                                "region": ["x"]})
        write_source(settings, "customer_profile", profile)
        write_source(settings, "customer_text", empty_text_frame())
        apply_repo(settings)
        before = redis_used_memory(settings)
        with timed() as t_mat:
            materialize(settings)
        memory = redis_used_memory(settings) - before
        keys = count_project_keys(settings)
    return {"seconds": t_mat[0], "keys": float(keys), "memory": float(memory)}


# --------------------------------------------------------------------------- 2. and 3. served
def serve_env(profile_env: dict[str, str], home: Path) -> dict[str, str]:
    """Environment of a ``persona serve`` child: this home, the profile's variables, the API key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    env.update(profile_env)
    env.update({"PERSONA_HOME": str(home), "PERSONA_API_KEY": API_KEY, "HF_HUB_OFFLINE": "1",
                "PERSONA_MODEL_POLL_SECONDS": "10"})
    return env


def persona_serve_command(port: int) -> list[str]:
    """``persona serve`` (it checks the home, then runs ``bentoml serve``)."""
    return [str(Path(sys.executable).with_name("persona")), "serve", "--host", "127.0.0.1", "--port", str(port)]


def known_customers(settings) -> list[int]:
    """Customers with a profile and a behavior row (the online store predicts them)."""
    from store.offline import read_source

    profile = read_source(settings, "customer_profile", ["customer_id"])["customer_id"]
    behavior = read_source(settings, "customer_behavior", ["customer_id"])["customer_id"]
    return sorted(set(profile.tolist()) & set(behavior.tolist()))


def _requests(ids: list[list[int]], known: set[int], kind: str) -> list[LoadRequest]:
    import json

    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    return [LoadRequest(kind, True, json.dumps({"customer_ids": batch}).encode(), headers,
                        check=expect_predictions(batch, known)) for batch in ids]


def _merge(runs: list[LoadRun]) -> tuple[np.ndarray, int]:
    """All latencies (seconds) of answered requests and the number of failed ones."""
    latencies = np.asarray([o.latency for r in runs for o in r.outcomes if o.status is not None])
    failed = sum(1 for r in runs for o in r.outcomes if o.problem is not None)
    return latencies, failed


def _pct(latencies: np.ndarray, q: float) -> float:
    return float(np.percentile(latencies, q) * 1000) if latencies.size else float("nan")


def _row(metric: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> dict:
    return row(ISSUE, AREA, metric, float(value), unit, target, None if ok is None else bool(ok))


def redis_memory_problem(rows: int, bytes_per_row: int = 600) -> str | None:
    """Why ``rows`` entity rows would not fit (Redis maxmemory or this machine's free memory), else None."""
    import psutil
    import redis

    from core.settings import load_settings

    settings = load_settings(profile="prod")
    info = redis.Redis(host=settings.redis_host, port=settings.redis_port).info("memory")
    need = rows * bytes_per_row
    limit, used = int(info.get("maxmemory", 0)), int(info["used_memory"])
    if limit and limit - used < need:
        return f"Redis maxmemory leaves {(limit - used) / 2**20:,.0f} MiB, {need / 2**20:,.0f} MiB needed"
    if psutil.virtual_memory().available < 2 * need:
        return f"{psutil.virtual_memory().available / 2**20:,.0f} MiB free, {2 * need / 2**20:,.0f} MiB wanted"
    return None


def materialize_rows(n: int) -> list[dict]:
    """Rows of the materialize measurement (skipped when Redis or the machine lacks the memory)."""
    problem = redis_memory_problem(n)
    if problem:
        return [_row(f"materialize {n:,} rows into Redis skipped: {problem}", float("nan"), "", "", False)]
    mat = materialize_into_redis(n)
    rate = n / mat["seconds"]
    return [
        _row(f"materialize {n:,} rows Postgres -> Redis", mat["seconds"], "s"),
        _row(f"materialize throughput (Redis, {n:,} rows)", rate, "rows/s", ">= 30,000", rate >= 30_000),
        _row(f"Redis keys after materialize ({n:,} rows)", mat["keys"], "keys", f"= {n:,}", mat["keys"] == n),
        _row("Redis memory per materialized row", mat["memory"] / n, "bytes"),
    ]


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows of the production profile (``quick``: small sizes, said in the labels)."""
    from bench.serving_bench import cpu_seconds, free_port, running
    from core.settings import load_settings
    from features.build import build_offline_sources
    from store.repo import apply_repo, materialize
    from tests.conftest import build_champion_home

    problem = services_problem()
    if problem:
        return [_row(f"production services unreachable: {problem}", float("nan"), "", "", False)]
    rows = materialize_rows(50_000 if quick else 1_000_000)

    customers = 1_000 if quick else 5_000
    slice_seconds, turns = (4.0, 2) if quick else (6.0, 5)
    # below saturation of one server process on a shared 2-core machine, so latency is not queueing
    single_rate, batch_rate = 100.0, 10.0
    load_count, load_rate = (3_000 if quick else 20_000), 300.0
    with scratch_home("prod-serving") as base, restored_environ():
        home = Path(os.environ["PERSONA_HOME"])
        for name in [k for k in os.environ if k.startswith("PERSONA_") and k != "PERSONA_HOME"]:
            os.environ.pop(name)
        build_champion_home(home, customers=customers, days=120 if quick else 180,
                            n_estimators=60 if quick else 300)
        with prod_namespace("bench_serve") as prod_env:
            # the same MLflow registry (and champion) as the local home; features from Postgres and Redis
            # and the key that signed it: the prod profile takes it from the environment, never a file
            local = load_settings(profile="local")
            prod_env = {**prod_env, "PERSONA_MLFLOW_TRACKING_URI": local.tracking_uri,
                        "PERSONA_MODEL_SIGNING_KEY": catalog.model_signing_key(local).read_text().strip()}
            os.environ.update(prod_env)
            settings = load_settings()
            build_offline_sources(settings)
            apply_repo(settings)
            materialize(settings)
            known = known_customers(settings)
            known_set = set(known)
            rng = np.random.default_rng(0)
            singles = _requests([[int(i)] for i in rng.choice(known, 4_000)], known_set, "single")
            batches = _requests([rng.choice(known, 100).tolist() for _ in range(200)], known_set, "batch_100")
            mix = predict_mix(known, load_count, api_key=API_KEY, seed=1)
            ports = {"sqlite": free_port(), "redis": free_port()}
            envs = {"sqlite": serve_env({}, home), "redis": serve_env(prod_env, home)}
            servers = {name: running(persona_serve_command(ports[name]), envs[name], base / f"{name}.log",
                                     ports[name], "/readyz") for name in ports}
            with servers["sqlite"] as local_proc, servers["redis"] as prod_proc:
                procs = {"sqlite": local_proc, "redis": prod_proc}
                urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
                single: dict[str, list[LoadRun]] = {"sqlite": [], "redis": []}
                batch: dict[str, list[LoadRun]] = {"sqlite": [], "redis": []}
                cpu = {"sqlite": 0.0, "redis": 0.0}
                for url in urls.values():  # warm-up: connections, caches, lazy imports
                    drive(url, singles, single_rate, int(single_rate * 2))
                    drive(url, batches, batch_rate, int(batch_rate * 2))
                for turn in range(turns):  # alternate so background load hits both profiles alike
                    for name, url in urls.items():
                        before = cpu_seconds(procs[name])
                        offset = turn * int(single_rate * slice_seconds)
                        requests = singles[offset:] + singles[:offset]
                        single[name].append(drive(url, requests, single_rate, int(single_rate * slice_seconds)))
                        cpu[name] += cpu_seconds(procs[name]) - before
                    for name, url in urls.items():
                        batch[name].append(drive(url, batches, batch_rate, int(batch_rate * slice_seconds)))
                before = cpu_seconds(prod_proc)
                load = drive(urls["redis"], mix, load_rate).summary
                load_cpu = cpu_seconds(prod_proc) - before

    label = f"@{single_rate:.0f} rps x {slice_seconds * turns:.0f} s"
    stats = {}
    for name in ("sqlite", "redis"):
        lat, failed = _merge(single[name])
        blat, bfailed = _merge(batch[name])
        cpu_ms = 1000 * cpu[name] / max(sum(r.summary.sent for r in single[name]), 1)
        stats[name] = (_pct(lat, 50), _pct(lat, 99), _pct(blat, 50), _pct(blat, 99), cpu_ms, failed + bfailed)
    for name, title in (("sqlite", "SQLite (local)"), ("redis", "Redis (prod)")):
        p50, p99, b50, b99, cpu_ms, failed = stats[name]
        rows += [
            _row(f"predict 1 customer p50, {title} {label}", p50, "ms"),
            _row(f"predict 1 customer p99, {title} {label}", p99, "ms"),
            _row(f"predict 1 customer, server CPU per request, {title}", cpu_ms, "ms"),
            _row(f"predict 100 customers p50, {title} @{batch_rate:.0f} rps", b50, "ms"),
            _row(f"predict 100 customers p99, {title} @{batch_rate:.0f} rps", b99, "ms"),
            _row(f"predict answers failing their check, {title}", failed, "requests", "0", failed == 0),
        ]
    for i, what in ((0, "1 customer p50"), (1, "1 customer p99"), (4, "1 customer server CPU"),
                    (2, "100 customers p50"), (3, "100 customers p99")):
        rows.append(_row(f"ratio Redis / SQLite, predict {what}", stats["redis"][i] / stats["sqlite"][i], "x"))

    size = f"{load.sent:,} mixed requests @{load_rate:.0f} rps on Redis"
    server_errors = load.classes.get("5xx", 0) + load.classes.get("no answer", 0)
    valid, invalid = sum(load.valid_classes.values()), sum(load.invalid_classes.values())
    ok_valid, ok_invalid = load.valid_classes.get("2xx", 0), load.invalid_classes.get("4xx", 0)
    rows += [
        _row(f"load {size}: achieved send rate", load.achieved_rate, "rps", f"~ {load_rate:.0f}",
             abs(load.achieved_rate - load_rate) <= 0.02 * load_rate),
        _row(f"load {size}: answered rate", load.completed_rate, "rps"),
        _row(f"load {size}: valid requests answered 2xx", ok_valid, "requests", f"= {valid:,} valid",
             ok_valid == valid),
        _row(f"load {size}: invalid requests answered 4xx", ok_invalid, "requests", f"= {invalid:,} invalid",
             ok_invalid == invalid),
        _row(f"load {size}: 5xx answers or none", server_errors, "requests", "0", server_errors == 0),
        _row(f"load {size}: answers breaking the API contract", load.problems, "requests", "0", load.problems == 0),
        _row(f"load {size}: valid p50", load.valid_p50_ms, "ms"),
        _row(f"load {size}: valid p99", load.valid_p99_ms, "ms"),
        _row(f"load {size}: invalid p50", load.invalid_p50_ms, "ms"),
        _row(f"load {size}: invalid p99", load.invalid_p99_ms, "ms"),
        _row(f"load {size}: server CPU per request", 1000 * load_cpu / max(load.sent, 1), "ms"),
    ]
    print("load test on the Redis-backed Bento:")
    for line in load.lines():
        print(f"  {line}")
    if quick:
        for r in rows:
            r["metric"] += " (quick)"
    return rows


if __name__ == "__main__":  # pragma: no cover
    from bench.run import render

    print(render(run(quick="--quick" in sys.argv), "prod benchmark"))
