"""Shared helpers and fixtures of the production-profile tests.

Besides the Redis/Postgres helpers of the store tests, this holds a production stack of a
test's own, for fault tests of the served Bento. :class:`ProdStack` owns everything a fault test
may stop: a ``redis-server`` and an MLflow tracking server (Postgres backend,
``app.services.start_mlflow``) on free ports, plus a unique Postgres database and Feast project.
:func:`build_prod_champion` runs the real pipeline into it on tiny synthetic data (generate,
ingest, build into Postgres, ``feast apply``, materialize into that Redis, train against that
MLflow server: ``champion`` = v1). :func:`served_bento` runs ``persona serve`` over it as a
subprocess. Everything is stopped and dropped in teardown; nothing touches the shared Redis or
another test's database. Tests import these from ``tests.prod.conftest``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pyarrow as pa
import pytest
from feast.value_type import ValueType

from core.settings import PROJECT_ROOT, load_settings
from store.layout import encode_int64_entity_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

def reachable() -> str | None:
    from app.services import unreachable

    return unreachable(load_settings())


@pytest.fixture
def prod_settings(persona_home, monkeypatch):
    """Prod settings with this test's own Postgres database and Feast project, dropped afterwards."""
    reason = reachable()
    if reason:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {reason}")
    from app.services import ensure_databases
    from core.settings import load_settings

    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PERSONA_PROFILE", "prod")
    monkeypatch.setenv("PERSONA_POSTGRES_DB", f"persona_test_{suffix}")
    monkeypatch.setenv("PERSONA_PROJECT", f"persona_test_{suffix}")
    settings = load_settings()
    ensure_databases(settings)
    try:
        yield settings
    finally:
        drop_prod_state(settings)


def drop_prod_state(settings) -> None:
    """Remove a test's Redis keys (its Feast project only) and its Postgres databases."""
    import psycopg
    import redis

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    for key in client.scan_iter(match=b"*" + settings.project.encode(), count=1000):
        client.delete(key)
    with psycopg.connect(f"host={settings.postgres_host} port={settings.postgres_port} "
                         f"user={settings.postgres_user} dbname=postgres", autocommit=True) as conn:
        for name in (settings.postgres_db, settings.postgres_db + "_mlflow"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_projects():
    """A Redis client and two fresh Feast project names; their keys are deleted afterwards."""
    client, settings = redis_client()
    suffix = uuid.uuid4().hex[:8]
    projects = (f"persona_test_feast_{suffix}", f"persona_test_fast_{suffix}")
    yield client, settings, projects
    for project in projects:
        for key in client.scan_iter(match=b"*" + project.encode(), count=1000):
            client.delete(key)


def mixed_view():
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(name="mixed_source", path="unused.parquet", timestamp_field="event_timestamp")
    schema = [Field(name="customer_id", dtype=Int64), Field(name="spend", dtype=Float32),
              Field(name="ratio", dtype=Float64), Field(name="orders", dtype=Int64), Field(name="visits", dtype=Int32),
              Field(name="region", dtype=String), Field(name="active", dtype=Bool),
              Field(name="embedding", dtype=Array(Float32))]
    return FeatureView(name="mixed", entities=[customer], ttl=dt.timedelta(0), schema=schema, source=source)


def mixed_rows(ids: list[int], stamps: list[dt.datetime], seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = len(ids)
    spend = rng.normal(size=n).astype("float32")
    spend[::5] = np.nan
    return pa.table({
        "customer_id": pa.array(ids, pa.int64()),
        "spend": pa.array(spend, pa.float32()),
        "ratio": pa.array([None if i % 7 == 0 else float(v) for i, v in enumerate(rng.normal(size=n))], pa.float64()),
        "orders": pa.array([None if i % 6 == 0 else int(v) for i, v in enumerate(rng.integers(-5, 2**40, n))],
                           pa.int64()),
        "visits": pa.array(rng.integers(0, 9, n).tolist(), pa.int32()),
        "region": pa.array([None if i % 4 == 0 else f"région {i % 3}" for i in range(n)], pa.string()),
        "active": pa.array([None if i % 3 == 0 else bool(i % 2) for i in range(n)], pa.bool_()),
        "embedding": pa.array([None if i % 8 == 0 else rng.normal(size=i % 4).astype("float32").tolist()
                               for i in range(n)], pa.list_(pa.float32())),
        "event_timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    })


def hashes(client, project: str, ids: list[int]) -> list[dict]:
    keys = [k + project.encode() for k in encode_int64_entity_keys("customer_id", np.array(ids))]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        return pipe.execute()


def redis_client():
    import redis

    from core.settings import load_settings

    settings = load_settings()
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"REDIS NOT REACHABLE at {settings.redis_host}:{settings.redis_port}: {exc}")
    return client, settings


# --------------------------------------------------------------------------- a stack of the test's own
API_KEY = "prod-fault-test-key"
SIGNING_KEY = "prod-fault-test-model-signing-key-0123456789"
MLFLOW_PASSWORD = "prod-fault-test-mlflow-password"
# Variables of the caller's environment that would point a served process elsewhere.
FOREIGN_ENV = ("PERSONA_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def free_port() -> int:
    """A TCP port nobody listens on now (bind to port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_unreachable() -> str | None:
    """Why Postgres cannot be used (None when it answers); these tests run their own Redis."""
    from app.services import unreachable
    from core.settings import load_settings

    return unreachable(load_settings(), redis=False)


@dataclass
class RedisServer:
    """A ``redis-server`` on its own port and directory, which a test may kill, pause and restart.

    Automatic snapshots and the append-only file are off; :meth:`save` writes ``dump.rdb`` into
    ``directory`` on request, and a restart in the same directory loads it.
    """

    port: int
    directory: Path
    process: subprocess.Popen | None = None
    paused: bool = False

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--dbfilename", "dump.rdb",
        ]  # fmt: skip

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start (or restart) the server and wait until it answers PING."""
        import redis

        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.paused = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.directory}")
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout:.0f} s")

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_timeout=5)

    def save(self) -> None:
        """Write the dataset to ``dump.rdb`` now (a restart loads it)."""
        self.client().save()

    def kill(self) -> None:
        """SIGKILL: the server dies without saving (as a crashed host would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.process is not None and self.paused:
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Stop the server for good (resumes a paused one first so it can exit)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass
class ProdStack:
    """The production profile's services for one test module (see module docstring)."""

    home: Path
    redis: RedisServer
    mlflow_port: int
    postgres_db: str
    project: str
    api_key: str = API_KEY
    extra_env: dict[str, str] = field(default_factory=dict)

    def persona_env(self) -> dict[str, str]:
        """The PERSONA_* variables that select this stack."""
        return {
            "PERSONA_HOME": str(self.home),
            "PERSONA_PROFILE": "prod",
            "PERSONA_POSTGRES_DB": self.postgres_db,
            "PERSONA_PROJECT": self.project,
            "PERSONA_REDIS_PORT": str(self.redis.port),
            "PERSONA_MLFLOW_PORT": str(self.mlflow_port),
            "PERSONA_API_KEY": self.api_key,
            "PERSONA_MODEL_SIGNING_KEY": SIGNING_KEY,
            "PERSONA_MLFLOW_PASSWORD": MLFLOW_PASSWORD,
            **self.extra_env,
        }

    def settings(self):
        from core.settings import load_settings

        return load_settings(
            home=self.home,
            profile="prod",
            postgres_db=self.postgres_db,
            project=self.project,
            redis_port=self.redis.port,
            mlflow_port=self.mlflow_port,
            api_key=self.api_key,
            model_signing_key=SIGNING_KEY,
            mlflow_password=MLFLOW_PASSWORD,
        )

    def process_env(self, **overrides: str) -> dict[str, str]:
        """Environment for a subprocess (``persona ...``) on this stack."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        env.update(self.persona_env())
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **overrides})
        return env

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """This stack's PERSONA_* variables in this process (restored afterwards)."""
        with pytest.MonkeyPatch.context() as patch:
            for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
                patch.delenv(name, raising=False)
            # store.repo exports these for feature_store.prod.yaml: patch them first so
            # the originals come back when the block ends.
            for name, value in {**self.settings().feast_env(), **self.persona_env()}.items():
                patch.setenv(name, value)
            yield

    def start_mlflow(self) -> None:
        """Start the MLflow tracking server (``persona prod up`` does the same)."""
        from app.services import start_mlflow

        start_mlflow(self.settings())

    def stop_mlflow(self) -> None:
        from app.services import stop_mlflow

        stop_mlflow(self.settings())

    def mlflow_up(self) -> bool:
        from app.services import mlflow_status

        return mlflow_status(self.settings()).ok

    def model_artifacts(self, version: str) -> Path:
        """The directory holding ``version``'s stored artifact files (on the server's disk)."""
        from model.registry import configure_mlflow

        with self.environment():
            client = configure_mlflow(self.settings())
            source = client.get_model_version(self.settings().registered_model, version).source
            if source.startswith("models:/"):  # a logged model: its artifacts live at artifact_location
                source = client.get_logged_model(source.removeprefix("models:/")).artifact_location
        prefix = "mlflow-artifacts:/"
        if not source.startswith(prefix):
            raise AssertionError(f"unexpected artifact location {source!r}")
        return self.home / "mlflow" / "artifacts" / source.removeprefix(prefix).lstrip("/")


@contextlib.contextmanager
def prod_stack(root: Path) -> Iterator[ProdStack]:
    """Start Redis and MLflow of a new stack under ``root``; stop them and drop its databases after.

    Skips (loudly) when Postgres or ``redis-server`` is not available.
    """
    reason = postgres_unreachable()
    if reason:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {reason}")
    if shutil.which("redis-server") is None:
        pytest.skip("PRODUCTION SERVICES NOT REACHABLE: no redis-server binary to run a Redis of the test's own")
    suffix = uuid.uuid4().hex[:8]
    stack = ProdStack(
        home=root / "home",
        redis=RedisServer(free_port(), root / "redis"),
        mlflow_port=free_port(),
        postgres_db=f"persona_fault_{suffix}",
        project=f"persona_fault_{suffix}",
    )
    from app.services import ensure_databases

    try:
        ensure_databases(stack.settings())
        stack.redis.start()
        stack.start_mlflow()
        yield stack
    finally:
        stack.redis.stop()
        with contextlib.suppress(Exception):
            stack.stop_mlflow()
        _drop_databases(stack.postgres_db)


def _drop_databases(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        for db in (name, name + "_mlflow"):
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def build_prod_champion(
    stack: ProdStack, customers: int = 200, days: int = 120, seed: int = 5, n_estimators: int = 15
) -> None:
    """Run the pipeline into ``stack``: data, Postgres sources, Feast apply, Redis, champion v1."""
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo, materialize
    from synthetic.generator import GenerateConfig, generate_dataset

    with stack.environment():
        settings = stack.settings()
        config = GenerateConfig(
            customers=customers, days=days, seed=seed, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        )
        paths = generate_dataset(config, stack.home / "generated")
        ingest_files(settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")})
        build_offline_sources(settings)
        apply_repo(settings)
        materialize(settings)
        result = train(stack, n_estimators=n_estimators)
        if not result.decision.promote:  # tiny data: the first model may not beat its own baselines
            from model.registry import promote

            promote(settings, result.version, reason="test stack: serve v1")


def train(stack: ProdStack, n_estimators: int = 15):
    """Train and register one more version against the stack's MLflow server (the gate decides)."""
    from training.config import PersonaParams, TrainConfig, XGBParams
    from training.train import TrainJob

    config = TrainConfig(
        xgb=XGBParams(n_estimators=n_estimators),
        personas=PersonaParams(k_min=2, k_max=3),
        horizon_days=28,
        purge=False,
    )
    with stack.environment():
        return TrainJob(stack.settings(), config).run()


@dataclass
class Served:
    """A ``persona serve`` subprocess and how to reach it."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}

    def post(self, path: str, payload: dict, timeout: float = 30.0) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=payload, headers=self.headers(), timeout=timeout)

    def ready_status(self) -> int:
        return httpx.get(f"{self.url}/readyz", timeout=10).status_code

    def info(self) -> dict:
        response = self.post("/model_info", {})
        assert response.status_code == 200, response.text
        return response.json()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_until(self, check, timeout: float, what: str, interval: float = 0.25):
        """Poll ``check()`` until it returns something truthy (fails with the server log otherwise)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                last = check()
                if last:
                    return last
            time.sleep(interval)
        raise AssertionError(f"{what}: not within {timeout:.0f} s (last {last!r})\n{self.log_tail()}")


@contextlib.contextmanager
def served_bento(stack: ProdStack, log: Path, *args: str, poll_seconds: float = 0.5) -> Iterator[Served]:
    """``persona serve`` on a free port over ``stack`` until the block ends (SIGTERM, then SIGKILL).

    Waits until the server answers ``/livez`` (alive, not necessarily ready).
    """
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("persona")), "serve",
        "--port", str(port), "--poll-seconds", str(poll_seconds), *args,
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=stack.process_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    served = Served(process, port, log)
    try:
        served.wait_until(
            lambda: httpx.get(f"{served.url}/livez", timeout=2).status_code == 200, 300, "server alive"
        )
        yield served
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
