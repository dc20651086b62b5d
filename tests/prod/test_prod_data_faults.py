"""Data and registry faults of the production profile, against the real Postgres, Redis and MLflow server.

- A ``persona features materialize`` killed part way leaves Redis partly written; ``persona
  features check`` says so, and a second run converges to the latest offline values.
- Promotions of the same model at the same moment are serialized (model/registry.py): every
  move is applied and recorded, the moves form one from -> to chain, and the last one wins; with
  requests queued one after another, the one requested last wins.

Skips loudly only when Postgres or Redis cannot be reached.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core.settings import load_settings
from tests.prod.conftest import drop_prod_state, free_port, reachable

if TYPE_CHECKING:
    from collections.abc import Iterator

PERSONA = str(Path(sys.executable).with_name("persona"))
VIEWS = ("customer_behavior", "customer_profile")




@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An MLflow tracking server (Postgres backend) and database of this module, shared by its tests.

    Yields:
        The ``PERSONA_*`` variables that select it.
    """
    reason = reachable()
    if reason:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {reason}")
    from app.services import ensure_databases, start_mlflow, stop_mlflow

    suffix = uuid.uuid4().hex[:8]
    env = {"PERSONA_HOME": str(tmp_path_factory.mktemp("registry") / "home"), "PERSONA_PROFILE": "prod",
           "PERSONA_POSTGRES_DB": f"persona_fault_{suffix}", "PERSONA_PROJECT": f"persona_fault_{suffix}",
           "PERSONA_MLFLOW_PORT": str(free_port()), "PERSONA_MLFLOW_PASSWORD": "registry-fault-mlflow-password",
           "PERSONA_MODEL_SIGNING_KEY": "registry-fault-test-model-signing-key-0123"}
    settings = load_settings(**{k.removeprefix("PERSONA_").lower(): v for k, v in env.items()})
    ensure_databases(settings)
    try:
        start_mlflow(settings)
        yield env
    finally:
        stop_mlflow(settings)
        drop_prod_state(settings)


@pytest.fixture
def registry_server(mlflow_server: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """Production settings on the module's MLflow server, with a registered model name of this test."""
    for name, value in mlflow_server.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PERSONA_REGISTERED_MODEL", f"persona-{uuid.uuid4().hex[:8]}")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``persona *args`` in this test's environment (its PERSONA_* variables)."""
    return subprocess.run([PERSONA, *args], env=dict(os.environ), capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- materialization killed part way
def _build_sources(settings, tmp_path: Path) -> None:
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset

    config = GenerateConfig(customers=300, days=120, seed=3, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    paths = generate_dataset(config, tmp_path / "generated")
    ingest_files(settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")})
    build_offline_sources(settings)
    apply_repo(settings)


def _latest_offline(settings, view: str) -> pd.DataFrame:
    from store.offline import read_source
    from store.repo import latest_offline_rows

    return latest_offline_rows(read_source(settings, view)).set_index("customer_id")


class RedisRows:
    """Which (customer, view) rows of a Feast project exist in Redis, read with one pipeline."""

    def __init__(self, settings, ids: dict[str, np.ndarray]) -> None:
        import redis

        from store.layout import encode_int64_entity_keys

        self.client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
        project = settings.project.encode()
        # the newer-wins guard field is written in the same script call as the row's values
        self.probes = [(key + project, f"_persona_ts:{view}".encode())
                       for view, customers in ids.items()
                       for key in encode_int64_entity_keys("customer_id", customers)]

    @property
    def total(self) -> int:
        return len(self.probes)

    def written(self) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for key, field in self.probes:
                pipe.hexists(key, field)
            return int(sum(pipe.execute()))


def _kill_part_way(env: dict[str, str], rows: RedisRows, log: Path, after: int, slice_s: float = 0.002) -> int | None:
    """Run ``persona features materialize`` and SIGKILL it once ``after`` rows are in Redis.

    No race with the machine's load: the process runs in short slices and is stopped (SIGSTOP)
    while Redis is counted, so it cannot finish between the count and the kill. A loaded machine
    only gives it less CPU per slice. The wait ends when the count is reached or the process
    exits on its own; there is no wall-clock deadline to guess.

    Returns:
        Rows in Redis after the kill, or None when the run finished before it could be killed.
    """
    with open(log, "wb") as out:
        process = subprocess.Popen([PERSONA, "features", "materialize"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while process.poll() is None:
            os.killpg(process.pid, signal.SIGSTOP)
            if rows.written() >= after:
                os.killpg(process.pid, signal.SIGKILL)
                break
            os.killpg(process.pid, signal.SIGCONT)
            time.sleep(slice_s)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode in (0, -signal.SIGKILL), log.read_text()[-3000:]
    return rows.written() if process.returncode == -signal.SIGKILL else None


@pytest.mark.integration
@pytest.mark.prod
@pytest.mark.slow
def test_materialize_killed_part_way_is_reported_and_a_rerun_converges(prod_settings, tmp_path: Path) -> None:
    from store.repo import get_store

    settings = prod_settings
    # given 300 customers built into Postgres and registered in the project's SQL registry
    _build_sources(settings, tmp_path)
    expected = {view: _latest_offline(settings, view) for view in VIEWS}
    rows = RedisRows(settings, {view: frame.index.to_numpy() for view, frame in expected.items()})
    # one entity row per Redis write, so the load takes seconds instead of milliseconds
    env = {**os.environ, "PERSONA_MATERIALIZE_BATCH_ROWS": "1"}

    # when `persona features materialize` is killed once some rows are in Redis
    written = _kill_part_way(env, rows, tmp_path / "materialize_killed.log", after=40)
    if written is None:
        pytest.fail("materialize finished before 40 rows were seen in Redis even one row per write; "
                    "generate more customers")

    # then Redis holds part of the rows, and the interrupted view's interval was not recorded
    assert 40 <= written < rows.total, (written, rows.total)
    recorded = {view.name: bool(view.materialization_intervals) for view in get_store(settings).list_feature_views()}
    assert not all(recorded[view] for view in VIEWS), recorded

    # and `persona features check` fails, naming what is missing or different
    stale = _cli("features", "check")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert stale.stdout.startswith("INCONSISTENT: 300 customers checked"), stale.stdout
    assert any(f"{view} (" in stale.stdout for view in VIEWS), stale.stdout

    # when materialize runs again (default batch size)
    rerun = _cli("features", "materialize")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    # then every row is in Redis, the check passes ...
    assert rows.written() == rows.total
    fresh = _cli("features", "check")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.startswith("consistent: 300 customers"), fresh.stdout + fresh.stderr

    # ... and Redis answers every customer with the latest offline values
    store = get_store(settings)
    for view, frame in expected.items():
        names = [f.name for f in store.get_feature_view(view).features]
        online = store.get_online_features(
            features=[f"{view}:{name}" for name in names],
            entity_rows=[{"customer_id": int(i)} for i in frame.index],
        ).to_df().set_index("customer_id")
        for name in names:
            want, got = frame[name], online.loc[frame.index, name]
            if pd.api.types.is_numeric_dtype(want):
                assert np.allclose(got.astype(float), want.astype(float), rtol=1e-6, equal_nan=True), f"{view}:{name}"
            else:
                assert (got.fillna("<null>") == want.fillna("<null>")).all(), f"{view}:{name}"


# --------------------------------------------------------------------------- concurrent promotions
def _register_versions(settings, count: int) -> object:
    """``count`` versions of the model (one run's artifacts), with v1 the champion."""
    from model.registry import configure_mlflow, ensure_experiment, move_alias

    client = configure_mlflow(settings)
    model = settings.registered_model
    run = client.create_run(ensure_experiment(client, settings, "persona-training"))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(model)
    for _ in range(count):
        client.create_model_version(model, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    move_alias(client, model, "champion", "1", "first champion", settings=settings)
    return client


def _champion_moves(client, model: str, versions: int) -> list[dict]:
    """Every champion move recorded on any version, by sequence number (each move appears once)."""
    from model.registry import alias_history

    moves = {}
    for version in range(1, versions + 1):
        for entry in alias_history(client, model, str(version)):
            if entry["alias"] == "champion":
                assert moves.setdefault(entry["seq"], entry) == entry, f"two different moves numbered {entry['seq']}"
    return [moves[seq] for seq in sorted(moves)]


def _assert_one_chain(client, model: str, moves: list[dict], promoted: list[str]) -> None:
    """Moves 1..n, each from the previous move's target, every promotion present, the last one holding the alias."""
    from model.registry import PREVIOUS_CHAMPION_TAG, SEQ_TAG_PREFIX, alias_version

    assert [m["seq"] for m in moves] == list(range(1, len(promoted) + 2))
    assert (moves[0]["from"], moves[0]["to"]) == (None, "1")
    for before, move in zip(moves, moves[1:], strict=False):
        assert move["from"] == before["to"], moves
        assert client.get_model_version(model, move["to"]).tags[PREVIOUS_CHAMPION_TAG] == before["to"]
    assert sorted(m["to"] for m in moves[1:]) == sorted(promoted)
    assert alias_version(client, model, "champion") == moves[-1]["to"]
    assert client.get_registered_model(model).tags[SEQ_TAG_PREFIX + "champion"] == str(len(moves))


def _take_lock(client, model: str, settings, timeout_s: float) -> None:
    from model.registry import alias_lock

    with alias_lock(client, model, "champion", settings, timeout_s=timeout_s):
        return


def _advisory_waiters(settings) -> int:
    """Sessions waiting for an advisory lock in the test's database."""
    import psycopg

    from store.offline import postgres_url

    with psycopg.connect(postgres_url(settings), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s", (settings.postgres_db,)
        ).fetchone()[0]


def _wait_for_waiters(settings, count: int, alive, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _advisory_waiters(settings) < count:
        assert alive(), "a promotion ended before it queued for the lock"
        assert time.monotonic() < deadline, f"fewer than {count} promotions queued within {timeout:.0f} s"
        time.sleep(0.05)


@pytest.mark.integration
@pytest.mark.prod
@pytest.mark.slow
def test_concurrent_promote_commands_on_the_server_all_apply_in_one_chain(registry_server) -> None:
    from model.registry import alias_lock

    settings = registry_server
    model = settings.registered_model
    # given versions 1-4 on the MLflow server, v1 champion
    client = _register_versions(settings, 4)
    promoted = ["2", "3", "4"]

    # when three `persona promote` processes run at once (all queued behind a held lock, then let go together)
    with alias_lock(client, model, "champion", settings):
        processes = [subprocess.Popen([PERSONA, "promote", "--version", v, "--reason", f"ops {v}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for v in promoted]
        _wait_for_waiters(settings, len(promoted), lambda: all(p.poll() is None for p in processes))
    outputs = [p.communicate(timeout=300) for p in processes]

    # then every promotion succeeded and is one link of a single chain; the last link is champion
    assert [p.returncode for p in processes] == [0] * len(promoted), outputs
    moves = _champion_moves(client, model, 4)
    _assert_one_chain(client, model, moves, promoted)
    # and each command reported the move it made (from the champion it really replaced)
    by_target = {m["to"]: m for m in moves[1:]}
    for version, (out, _) in zip(promoted, outputs, strict=True):
        move = by_target[version]
        assert f"v{move['from']} -> v{version} (move {move['seq']}) (ops {version})" in out, out


@pytest.mark.integration
@pytest.mark.prod
def test_promotion_requested_last_wins_on_the_server(registry_server) -> None:
    from core.errors import PersonaError
    from model.registry import alias_lock, alias_version, configure_mlflow, promote

    settings = registry_server
    model = settings.registered_model
    # given versions 1-5 on the MLflow server, v1 champion, and the champion lock held by someone else
    client = _register_versions(settings, 5)
    requested = ["4", "2", "5", "3"]
    errors: list[BaseException] = []

    def ask(version: str) -> None:  # each thread has its own MLflow client (promote opens one)
        try:
            promote(settings, version, reason=f"ops {version}")
        except BaseException as exc:
            errors.append(exc)

    # when four promotions are requested one after another while the lock is held
    threads = []
    with alias_lock(configure_mlflow(settings), model, "champion", settings):
        for n, version in enumerate(requested, 1):
            threads.append(threading.Thread(target=ask, args=(version,)))
            threads[-1].start()
            _wait_for_waiters(settings, n, lambda: all(t.is_alive() for t in threads))
    for thread in threads:
        thread.join(120)

    # then they take effect in the order requested and the one requested last is champion
    assert not errors, errors
    moves = _champion_moves(client, model, 5)
    _assert_one_chain(client, model, moves, requested)
    assert [m["to"] for m in moves] == ["1", *requested]
    assert alias_version(client, model, "champion") == requested[-1]
    stamps = [dt.datetime.fromisoformat(m["requested_at"]) for m in moves[1:]]
    assert stamps == sorted(stamps)

    # and a move that cannot get the lock within its timeout fails in one line instead of hanging
    with alias_lock(client, model, "champion", settings), pytest.raises(PersonaError, match="for more than 0.3 s"):
        _take_lock(client, model, settings, timeout_s=0.3)


@pytest.mark.integration
def test_concurrent_promotions_on_the_local_registry_form_one_chain(persona_home: Path) -> None:
    from core.errors import PersonaError
    from model.registry import AliasMoved, alias_lock, alias_version, configure_mlflow, move_alias, promote

    settings = load_settings()
    model = settings.registered_model
    # given versions 1-7 in the local (SQLite) registry, v1 champion
    client = _register_versions(settings, 7)
    promoted = ["2", "3", "4", "5", "6", "7"]
    barrier = threading.Barrier(len(promoted))
    errors: list[BaseException] = []

    def ask(version: str) -> None:
        try:
            barrier.wait(30)
            promote(settings, version, reason=f"ops {version}")
        except BaseException as exc:
            errors.append(exc)

    # when six threads promote at the same moment
    threads = [threading.Thread(target=ask, args=(v,)) for v in promoted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    # then all six moves are recorded as one chain and the last one holds the alias
    assert not errors, errors
    moves = _champion_moves(client, model, 7)
    _assert_one_chain(client, model, moves, promoted)

    # and a promotion or gate move that expects a champion that has moved on is refused, changing nothing
    stale = moves[-2]["to"]
    with pytest.raises(PersonaError, match=f"not v{stale}: it moved meanwhile"):
        promote(settings, "1", expect_champion=stale)
    with pytest.raises(AliasMoved):
        move_alias(client, model, "champion", "1", "gate against an old champion", expect_from=stale)
    # and a move that cannot get the lock within its timeout fails in one line instead of hanging
    with alias_lock(client, model, "champion"), pytest.raises(PersonaError, match="for more than 0.3 s"):
        _take_lock(client, model, None, timeout_s=0.3)
    assert alias_version(configure_mlflow(settings), model, "champion") == moves[-1]["to"]
    assert _champion_moves(client, model, 7) == moves

