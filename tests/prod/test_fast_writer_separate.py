"""The fast online writers against a store Feast filled separately (never the same store).

Comparing after Feast and the fast path wrote into one store compares Feast with Feast: a fast
writer that writes nothing passes. Here each side has its own home (SQLite) or its own Feast
project (Redis), built from the same raw data, so the fast side holds only what it wrote.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from core.settings import load_settings
from features.build import build_offline_sources
from features.transforms.behavior import BEHAVIOR_FEATURES
from store.repo import apply_repo, get_store
from tests.conftest import write_raw

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings

pytestmark = pytest.mark.integration

REFS = [f"customer_behavior:{name}" for name in BEHAVIOR_FEATURES] + ["customer_profile:region"]
ROWS = [{"customer_id": i} for i in range(1, 31)]
START = pd.Timestamp("1990-01-01", tz="UTC").to_pydatetime()
END = pd.Timestamp("2030-01-01", tz="UTC").to_pydatetime()


def _built(settings: Settings):
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    return get_store(settings)


def _via_feast(settings: Settings) -> pd.DataFrame:
    store = _built(settings)
    store.materialize(start_date=START, end_date=END)
    return store.get_online_features(features=REFS, entity_rows=ROWS).to_df()


def _via_fast(settings: Settings) -> tuple[pd.DataFrame, int]:
    from store.materialize_view import materialize_view_fast

    store = _built(settings)
    written = sum(materialize_view_fast(store, view, START, END) for view in store.list_feature_views())
    return get_store(settings).get_online_features(features=REFS, entity_rows=ROWS).to_df(), written


def _assert_filled_and_equal(via_feast: pd.DataFrame, via_fast: pd.DataFrame, written: int) -> None:
    assert written > 0
    assert via_fast[list(BEHAVIOR_FEATURES)].notna().any().any(), "the fast store answers nothing"
    pd.testing.assert_frame_equal(via_feast, via_fast)


def test_fast_sqlite_writer_equals_feast_in_a_separate_home(tmp_path: Path) -> None:
    # given the same raw data in two homes; Feast's engine fills one
    via_feast = _via_feast(load_settings(home=tmp_path / "feast_home"))

    # when the fast path alone fills the other
    via_fast, written = _via_fast(load_settings(home=tmp_path / "fast_home"))

    # then both read back identically (and the fast store is not empty)
    _assert_filled_and_equal(via_feast, via_fast, written)


@pytest.mark.prod
def test_fast_redis_writer_equals_feast_in_a_separate_project(persona_home, monkeypatch: pytest.MonkeyPatch) -> None:
    # given two prod settings sharing the offline database but with their own Feast project (own Redis keys)
    from app.services import ensure_databases, unreachable

    reason = unreachable(load_settings())
    if reason:
        pytest.skip(f"PRODUCTION SERVICES NOT REACHABLE: {reason}")
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PERSONA_PROFILE", "prod")
    monkeypatch.setenv("PERSONA_POSTGRES_DB", f"persona_test_{suffix}")
    feast_side = load_settings(home=persona_home / "feast", project=f"persona_test_feast_{suffix}")
    fast_side = load_settings(home=persona_home / "fast", project=f"persona_test_fast_{suffix}")
    ensure_databases(feast_side)
    try:
        # when Feast fills one project and the fast path the other
        via_feast = _via_feast(feast_side)
        via_fast, written = _via_fast(fast_side)

        # then both read back identically (and the fast project is not empty)
        _assert_filled_and_equal(via_feast, via_fast, written)
    finally:
        _drop(feast_side, fast_side)


def _drop(*sides: Settings) -> None:
    """Remove the projects' Redis keys and the test databases."""
    import psycopg
    import redis

    first = sides[0]
    client = redis.Redis(host=first.redis_host, port=first.redis_port)
    for side in sides:
        for key in client.scan_iter(match=b"*" + side.project.encode(), count=1000):
            client.delete(key)
    with psycopg.connect(f"host={first.postgres_host} port={first.postgres_port} "
                         f"user={first.postgres_user} dbname=postgres", autocommit=True) as conn:
        for name in (first.postgres_db, first.postgres_db + "_mlflow"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
