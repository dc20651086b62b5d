"""Point-in-time correctness of training sets built through Feast (real stores, temp home).

The oracle is a brute-force as-of join: for each entity row the latest source row of the same
customer at or before the row's timestamp and within the view's TTL (ties on the event
timestamp broken by the later created_timestamp), with duplicate entity rows kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.settings import load_settings
from features.build import empty_text_frame, write_parquet_atomic
from features.dataset import build_training_set
from features.transforms.behavior import BEHAVIOR_FEATURES
from store.repo import apply_repo

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("1997-03-01", tz="UTC")
TTL = pd.Timedelta(days=14)  # 2 x the default 7-day snapshot interval


def _random_sources(
    rng: np.random.Generator, customers: int = 12, rows: int = 160
) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Coarse day grid so event timestamps tie often; created timestamps break the ties.
    behavior = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, rows).astype("int64"),
        "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 60, rows), unit="D"),
    })
    behavior["created_timestamp"] = T0 + pd.to_timedelta(rng.permutation(rows), unit="s")
    for name, kind in BEHAVIOR_FEATURES.items():
        if kind == "int":
            behavior[name] = rng.integers(0, 50, rows).astype("int64")
        else:
            values = rng.normal(size=rows).astype("float32")
            behavior[name] = values
    profile = pd.DataFrame({
        "customer_id": np.arange(1, customers + 1, dtype="int64"),
        "event_timestamp": T0 + pd.to_timedelta(rng.integers(-30, 40, customers), unit="D"),
        "region": rng.choice(["north", "south", "east"], customers),
        "age": rng.integers(18, 80, customers).astype("int64"),
    })
    profile["created_timestamp"] = T0
    return behavior, profile


def _oracle(
    entities: pd.DataFrame, source: pd.DataFrame, features: list[str], ttl: pd.Timedelta | None
) -> pd.DataFrame:
    rows = []
    for _, entity in entities.iterrows():
        t = entity["event_timestamp"]
        cand = source[(source["customer_id"] == entity["customer_id"]) & (source["event_timestamp"] <= t)]
        if ttl is not None:
            cand = cand[cand["event_timestamp"] >= t - ttl]
        if cand.empty:
            rows.append({f: np.nan for f in features})
        else:
            best = cand.sort_values(["event_timestamp", "created_timestamp"]).iloc[-1]
            rows.append({f: best[f] for f in features})
    return pd.DataFrame(rows)


def _assert_frame_values_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    for column in expected.columns:
        a = pd.to_numeric(actual[column], errors="coerce").to_numpy(dtype=float) if expected[column].dtype != object \
            else actual[column].to_numpy()
        e = pd.to_numeric(expected[column], errors="coerce").to_numpy(dtype=float) if expected[column].dtype != object \
            else expected[column].to_numpy()
        if expected[column].dtype == object:
            same = [(x == y) or (pd.isna(x) and pd.isna(y)) for x, y in zip(a, e, strict=True)]
            assert all(same), f"{column}: {list(a)} != {list(e)}"
        else:
            np.testing.assert_allclose(a, e, rtol=1e-6, equal_nan=True, err_msg=column)


@pytest.fixture
def applied_home(persona_home):
    settings = load_settings()
    rng = np.random.default_rng(42)
    behavior, profile = _random_sources(rng)
    write_parquet_atomic(behavior, settings.offline_dir / "customer_behavior.parquet")
    write_parquet_atomic(profile, settings.offline_dir / "customer_profile.parquet")
    write_parquet_atomic(empty_text_frame(), settings.offline_dir / "customer_text.parquet")
    apply_repo(settings)
    return settings, behavior, profile, rng


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_set_matches_brute_force_as_of_join(applied_home, seed):
    # given random entity rows, including exact ties with source timestamps, duplicates,
    # customers without any source rows and rows before all data
    settings, behavior, profile, _ = applied_home
    rng = np.random.default_rng(seed)
    n = 60
    entities = pd.DataFrame({
        "customer_id": rng.integers(1, 15, n).astype("int64"),  # 13, 14 have no data
        "event_timestamp": T0 + pd.to_timedelta(rng.integers(-5, 75, n), unit="D"),
    })
    entities = pd.concat([entities, entities.iloc[:5]], ignore_index=True)  # duplicate entity rows
    entities["label"] = rng.integers(0, 2, len(entities))

    # when
    result = build_training_set(settings, entities, "churn_model_v1")

    # then: same rows, same order, labels untouched, values equal to the oracle's
    assert len(result) == len(entities)
    assert result["customer_id"].tolist() == entities["customer_id"].tolist()
    assert result["label"].tolist() == entities["label"].tolist()
    features = list(BEHAVIOR_FEATURES)
    _assert_frame_values_equal(result[features], _oracle(entities, behavior, features, TTL))
    _assert_frame_values_equal(result[["region", "age"]], _oracle(entities, profile, ["region", "age"], None))


def test_no_value_from_after_t_reaches_a_row_at_t(applied_home):
    # given a training set at fixed timestamps
    settings, behavior, _, rng = applied_home
    entities = pd.DataFrame({"customer_id": np.arange(1, 13, dtype="int64"),
                             "event_timestamp": [T0 + pd.Timedelta(days=30)] * 12})
    before = build_training_set(settings, entities, "churn_model_v1")

    # when rows stamped after t (even created earlier) are added with extreme values
    future = behavior.sample(40, random_state=1).copy()
    future["event_timestamp"] = T0 + pd.Timedelta(days=30, seconds=1) + pd.to_timedelta(
        rng.integers(0, 20, len(future)), unit="D")
    future["created_timestamp"] = T0 - pd.Timedelta(days=1)
    for name in BEHAVIOR_FEATURES:
        future[name] = future[name] * 0 + 9999
    write_parquet_atomic(pd.concat([behavior, future], ignore_index=True),
                         settings.offline_dir / "customer_behavior.parquet")
    after = build_training_set(settings, entities, "churn_model_v1")

    # then nothing changed and no planted value leaked
    features = list(BEHAVIOR_FEATURES)
    _assert_frame_values_equal(after[features], before[features])
    assert not (after[features] == 9999).any().any()
