"""The production profile against the real services.

Postgres holds the offline store and the Feast registry, Redis the online store. Skips loudly only
when a service cannot be reached.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_offline_sources
from features.transforms.behavior import BEHAVIOR_FEATURES
from store.repo import apply_repo, check_consistency, get_store, materialize
from tests.conftest import write_raw

pytestmark = [pytest.mark.integration, pytest.mark.prod]






def test_prod_build_apply_materialize_online_equals_offline(prod_settings):
    # given ingested data and sources built into Postgres
    write_raw(prod_settings)
    built = build_offline_sources(prod_settings)
    assert built["customer_behavior"][0].startswith("postgres:")

    # when applied to the SQL registry and materialized into Redis
    apply_repo(prod_settings)
    lines = materialize(prod_settings)

    # then Redis answers with the latest offline values
    assert any(line.startswith("customer_behavior: materialized") for line in lines)
    assert check_consistency(prod_settings, sample=30).ok


def test_prod_training_set_is_point_in_time_correct(prod_settings):
    # given Postgres sources
    write_raw(prod_settings)
    build_offline_sources(prod_settings)
    apply_repo(prod_settings)
    from features.dataset import build_training_set
    from store.offline import read_source

    behavior = read_source(prod_settings, "customer_behavior")
    rng = np.random.default_rng(0)
    picks = behavior.sample(40, random_state=0).reset_index(drop=True)
    entities = pd.DataFrame({
        "customer_id": picks["customer_id"].to_numpy(),
        "event_timestamp": picks["event_timestamp"] + pd.to_timedelta(rng.integers(0, 3, 40), unit="D"),
    })

    # when
    result = build_training_set(prod_settings, entities, "churn_model_v1")

    # then every row carries the latest snapshot at or before its timestamp
    for i, entity in entities.iterrows():
        rows = behavior[(behavior["customer_id"] == entity["customer_id"])
                        & (behavior["event_timestamp"] <= entity["event_timestamp"])]
        expected = rows.sort_values("event_timestamp").iloc[-1]
        for name in BEHAVIOR_FEATURES:
            got, want = result.loc[i, name], expected[name]
            assert (pd.isna(got) and pd.isna(want)) or np.isclose(float(got), float(want)), name


def test_redis_fast_path_equals_feast_engine_and_keeps_newer_values(prod_settings):
    # given two Redis loads of the same data: Feast's engine, then ours
    write_raw(prod_settings)
    build_offline_sources(prod_settings)
    apply_repo(prod_settings)
    store = get_store(prod_settings)
    refs = [f"customer_behavior:{name}" for name in BEHAVIOR_FEATURES] + ["customer_profile:region"]
    rows = [{"customer_id": i} for i in range(1, 31)]
    start = pd.Timestamp("1990-01-01", tz="UTC").to_pydatetime()
    end = pd.Timestamp("2030-01-01", tz="UTC").to_pydatetime()
    store.materialize(start_date=start, end_date=end)
    via_feast = store.get_online_features(features=refs, entity_rows=rows).to_df()
    from store.materialize_view import materialize_view_fast

    for view in store.list_feature_views():
        materialize_view_fast(store, view, start, end)
    via_fast = store.get_online_features(features=refs, entity_rows=rows).to_df()

    # when an older interval is written afterwards
    view = store.get_feature_view("customer_behavior")
    older_end = pd.Timestamp("1997-02-01", tz="UTC").to_pydatetime()
    assert materialize_view_fast(store, view, start, older_end) > 0
    after_old = store.get_online_features(features=refs, entity_rows=rows).to_df()

    # then both paths read back the same, and the older load changed nothing
    pd.testing.assert_frame_equal(via_feast, via_fast)
    pd.testing.assert_frame_equal(after_old, via_fast)
