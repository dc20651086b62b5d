"""Real Feast stores in a temp home: build -> apply -> materialize -> online == offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import PersonaError
from core.settings import load_settings
from features.build import build_offline_sources, write_parquet_atomic
from features.transforms.behavior import BEHAVIOR_FEATURES
from store.repo import apply_repo, check_consistency, get_store, latest_offline_rows, materialize
from tests.conftest import write_raw

pytestmark = pytest.mark.integration




def test_apply_materialize_online_values_equal_latest_offline(persona_home):
    # given ingested data from 1997 and built offline sources
    settings = load_settings()
    write_raw(settings)
    built = build_offline_sources(settings)
    assert built["customer_behavior"][1] > 0

    # when applied and materialized
    apply_repo(settings)
    lines = materialize(settings)

    # then the online store answers with the latest offline row of every customer
    assert any(line.startswith("customer_behavior: materialized") for line in lines)
    latest = latest_offline_rows(settings.offline_dir / "customer_behavior.parquet").set_index("customer_id")
    store = get_store(settings)
    ids = latest.index.tolist()
    online = store.get_online_features(
        features=[f"customer_behavior:{name}" for name in BEHAVIOR_FEATURES] + ["customer_profile:region"],
        entity_rows=[{"customer_id": int(i)} for i in ids],
    ).to_df().set_index("customer_id")
    for name in BEHAVIOR_FEATURES:
        np.testing.assert_allclose(online.loc[ids, name].astype(float), latest.loc[ids, name].astype(float),
                                   rtol=1e-6, equal_nan=True, err_msg=name)
    profile = pd.read_parquet(settings.offline_dir / "customer_profile.parquet").set_index("customer_id")
    assert online.loc[ids, "region"].tolist() == profile.loc[ids, "region"].tolist()
    assert check_consistency(settings, sample=20).ok


def test_materialize_is_incremental_and_converges(persona_home):
    # given a materialized store
    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    materialize(settings)

    # when materialize runs again with nothing new
    again = materialize(settings)

    # then it reports up to date rather than reloading
    assert any("customer_behavior: up to date" in line for line in again)
    assert check_consistency(settings, sample=30).ok


def test_consistency_check_detects_a_stale_online_store(persona_home):
    # given a materialized store whose offline source then gets newer values
    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    materialize(settings)
    path = settings.offline_dir / "customer_behavior.parquet"
    frame = pd.read_parquet(path)
    newest = frame["event_timestamp"].max()
    bumped = frame[frame["event_timestamp"] == newest].copy()
    bumped["event_timestamp"] = newest + pd.Timedelta(days=7)
    bumped["orders_30d"] = bumped["orders_30d"] + 1000
    write_parquet_atomic(pd.concat([frame, bumped]), path)

    # when checked before materializing
    stale = check_consistency(settings, sample=30)

    # then it reports the mismatch; a materialize run repairs it
    assert not stale.ok
    assert "customer_behavior:orders_30d" in stale.mismatches
    materialize(settings)
    assert check_consistency(settings, sample=30).ok


def test_apply_without_built_sources_says_what_to_do(persona_home):
    # given an empty home
    settings = load_settings()

    # when / then
    with pytest.raises(PersonaError, match="persona features build"):
        apply_repo(settings)


def test_feast_engine_and_fast_path_write_the_same_online_values(persona_home):
    # given two views' worth of built sources
    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    store = get_store(settings)
    refs = [f"customer_behavior:{name}" for name in BEHAVIOR_FEATURES] + ["customer_profile:region"]
    rows = [{"customer_id": i} for i in range(1, 31)]

    # when Feast's own engine materializes, then our columnar path does the same interval again
    end = pd.Timestamp("1998-01-01", tz="UTC").to_pydatetime()
    start = pd.Timestamp("1996-01-01", tz="UTC").to_pydatetime()
    store.materialize(start_date=start, end_date=end)
    via_feast = store.get_online_features(features=refs, entity_rows=rows).to_df()
    materialize(settings)  # continues from Feast's recorded interval: nothing new
    from store.materialize_view import materialize_view_fast
    for view in store.list_feature_views():
        materialize_view_fast(store, view, start, end)
    via_fast = get_store(settings).get_online_features(features=refs, entity_rows=rows).to_df()

    # then both read back identically
    pd.testing.assert_frame_equal(via_feast, via_fast)


def test_an_older_write_never_overwrites_a_newer_value(persona_home):
    # given an online store holding each customer's newest snapshot
    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    materialize(settings)
    store = get_store(settings)
    rows = [{"customer_id": i} for i in range(1, 31)]
    newest = store.get_online_features(features=["customer_behavior:orders_365d"], entity_rows=rows).to_df()

    # when an older interval is materialized again (a late, out-of-order load)
    from store.materialize_view import materialize_view_fast
    view = store.get_feature_view("customer_behavior")
    frame = pd.read_parquet(settings.offline_dir / "customer_behavior.parquet")
    cutoff = frame["event_timestamp"].sort_values().unique()[2]
    written = materialize_view_fast(store, view, frame["event_timestamp"].min().to_pydatetime(),
                                    pd.Timestamp(cutoff).to_pydatetime())

    # then rows were offered but the newer values stay
    assert written > 0
    after = store.get_online_features(features=["customer_behavior:orders_365d"], entity_rows=rows).to_df()
    pd.testing.assert_frame_equal(after, newest)


def _online(settings, refs: list[str], ids: list[int]) -> pd.DataFrame:
    rows = [{"customer_id": int(i)} for i in ids]
    return get_store(settings).get_online_features(features=refs, entity_rows=rows).to_df().set_index("customer_id")


def test_a_corrected_or_late_row_for_a_materialized_snapshot_reaches_the_online_store(persona_home):
    # given a materialized store
    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    materialize(settings)
    path = settings.offline_dir / "customer_behavior.parquet"
    frame = pd.read_parquet(path)
    newest = frame["event_timestamp"].max()

    # when a corrected row (same customer and event time, newer created_timestamp) and a late row for a
    # customer that snapshot lacked are appended
    corrected = frame[frame["event_timestamp"] == newest].head(1).copy()
    corrected["orders_30d"] = corrected["orders_30d"] + 1000
    corrected["created_timestamp"] = corrected["created_timestamp"] + pd.Timedelta(hours=1)
    late = corrected.copy()
    late["customer_id"] = 9_999
    late["orders_30d"] = 7
    write_parquet_atomic(pd.concat([frame, corrected, late]), path)
    lines = materialize(settings)

    # then both values are online and the check agrees with the offline store
    customer = int(corrected["customer_id"].iloc[0])
    online = _online(settings, ["customer_behavior:orders_30d"], [customer, 9_999])
    assert online.loc[customer, "orders_30d"] == corrected["orders_30d"].iloc[0]
    assert online.loc[9_999, "orders_30d"] == 7
    assert any(line.startswith("customer_behavior: materialized") and "source changed" in line for line in lines)
    assert check_consistency(settings, sample=40).ok
    assert any("customer_behavior: up to date" in line for line in materialize(settings))


def test_a_copied_home_reads_its_own_files_once_applied(persona_home, tmp_path, monkeypatch):
    import shutil

    # given a materialized home copied to another folder, whose original then changes and goes away
    original = load_settings()
    write_raw(original)
    build_offline_sources(original)
    apply_repo(original)
    materialize(original)
    copy = tmp_path / "copied_home"
    shutil.copytree(persona_home, copy)
    path = original.offline_dir / "customer_behavior.parquet"
    frame = pd.read_parquet(path)
    frame["orders_30d"] = frame["orders_30d"] + 500
    write_parquet_atomic(frame, path)
    monkeypatch.setenv("PERSONA_HOME", str(copy))
    settings = load_settings()

    # when the copy is opened before it is applied, then it refuses, naming both homes and the fix
    with pytest.raises(PersonaError, match="persona features apply") as refused:
        check_consistency(settings, sample=30)
    assert str(copy) in str(refused.value)
    assert str(persona_home) in str(refused.value)

    # when it is applied and the original is gone
    apply_repo(settings)
    shutil.rmtree(persona_home)
    materialize(settings)

    # then it reads its own files: every source under the copy, online values equal its own offline rows
    store = get_store(settings)
    for view in store.list_feature_views():
        assert str(view.batch_source.path).startswith(str(copy))
    assert check_consistency(settings, sample=30).ok
    ids = [1, 2, 3]
    own = latest_offline_rows(settings.offline_dir / "customer_behavior.parquet").set_index("customer_id")
    online = _online(settings, ["customer_behavior:orders_30d"], ids)
    np.testing.assert_allclose(online.loc[ids, "orders_30d"].astype(float), own.loc[ids, "orders_30d"].astype(float))


LOYALTY_MODULE = '''
from datetime import timedelta
from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Float32, Int64

from feature_repo.definitions import customer, customer_behavior_fv, customer_profile_fv

loyalty_source = FileSource(name="loyalty_source", path="{path}", timestamp_field="event_timestamp")
loyalty_fv = FeatureView(name="{name}", entities=[customer], ttl=timedelta(days=30),
                         schema=[Field(name="points", dtype={points}), Field(name="tier_level", dtype=Int64)],
                         source=loyalty_source)
upsell_model_v1 = FeatureService(name="upsell_model_v1",
                                 features=[customer_profile_fv, customer_behavior_fv, loyalty_fv])
'''


def _user_repo(settings, tmp_path, monkeypatch, name: str = "loyalty", points: str = "Float32"):
    """A built home and a folder outside the project holding one loyalty view, named by PERSONA_FEATURE_REPO."""
    write_raw(settings)
    build_offline_sources(settings)
    behavior = pd.read_parquet(settings.offline_dir / "customer_behavior.parquet")
    loyalty = behavior[["customer_id", "event_timestamp"]].copy()
    loyalty["points"] = np.linspace(0.0, 100.0, len(loyalty)).astype("float32")
    loyalty["tier_level"] = (loyalty["customer_id"] % 4).astype("int64")
    data = tmp_path / "loyalty.parquet"
    loyalty.to_parquet(data, index=False)
    folder = tmp_path / "my_views"
    folder.mkdir()
    (folder / "loyalty.py").write_text(LOYALTY_MODULE.format(path=data, name=name, points=points))
    monkeypatch.setenv("PERSONA_FEATURE_REPO", str(folder))
    return load_settings(), folder


def test_views_in_the_users_own_folder_are_applied_and_listed_with_their_file(persona_home, tmp_path, monkeypatch):
    from core.settings import FEATURE_REPO_DIR

    # given the user's views in their own folder, importing Persona's definitions
    settings, folder = _user_repo(load_settings(), tmp_path, monkeypatch)

    # when applied and materialized
    lines = apply_repo(settings)
    materialized = materialize(settings)

    # then Persona's and the user's objects are registered, each listed with the file defining it
    assert f"  definitions from {FEATURE_REPO_DIR} + {folder}" in lines
    assert f"  view loyalty: 2 features  ({folder / 'loyalty.py'})" in lines
    assert f"  service upsell_model_v1  ({folder / 'loyalty.py'})" in lines
    assert any(line.startswith("  view customer_behavior:") and str(FEATURE_REPO_DIR / "definitions.py") in line
               for line in lines)
    assert any(line.startswith("loyalty: materialized") for line in materialized)
    assert check_consistency(settings, sample=30).ok


def test_a_user_view_named_like_one_of_persona_s_is_refused_naming_both_files(persona_home, tmp_path, monkeypatch):
    # given a user view that reuses the name of Persona's behavior view
    settings, folder = _user_repo(load_settings(), tmp_path, monkeypatch, name="customer_behavior")

    # when / then
    with pytest.raises(PersonaError, match=r"feature view customer_behavior is defined in .*my_views.*definitions\.py"):
        apply_repo(settings)


def test_a_declared_dtype_unlike_the_source_column_fails_at_apply_in_one_line(persona_home, tmp_path, monkeypatch):
    # given a view declaring an integer for a float column
    settings, _ = _user_repo(load_settings(), tmp_path, monkeypatch, points="Int64")

    # when applied
    with pytest.raises(PersonaError) as failed:
        apply_repo(settings)

    # then one line names the view, the column, the declared and the found type; nothing is registered
    message = str(failed.value)
    assert "\n" not in message
    assert "feature view loyalty: column points is declared Int64" in message
    assert "loyalty.parquet has float" in message
    assert "loyalty" not in [view.name for view in get_store(settings).list_feature_views()]


def test_a_failure_a_rerun_cannot_cure_does_not_promise_convergence(persona_home):
    # given an applied view whose source column then changes type (a list where a number was declared)
    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    apply_repo(settings)
    path = settings.offline_dir / "customer_behavior.parquet"
    frame = pd.read_parquet(path)
    frame["orders_30d"] = [[float(v), 1.0] for v in frame["orders_30d"]]
    write_parquet_atomic(frame, path)

    # when materialized
    with pytest.raises(PersonaError) as failed:
        materialize(settings)

    # then the message names the view and does not send the user round a rerun loop
    message = str(failed.value)
    assert message.startswith("materializing customer_behavior failed")
    assert "converges" not in message
    assert "a rerun will not fix this" in message


def _embedded_home():
    from features.text_build import embed_reviews
    from tests.conftest import BagOfWordsEncoder

    settings = load_settings()
    write_raw(settings)
    build_offline_sources(settings)
    embed_reviews(settings, encoder=BagOfWordsEncoder())
    apply_repo(settings)
    return settings


def test_the_bounded_reader_picks_the_rows_feast_picks_for_every_view_and_interval(persona_home):
    # given every view's source, the text one with its 384-float rows
    from store.feast_internals import offline_store_of
    from store.latest_rows import latest_rows

    settings = _embedded_home()
    store = get_store(settings)
    behavior = pd.read_parquet(settings.offline_dir / "customer_behavior.parquet", columns=["event_timestamp"])
    stamps = sorted(behavior["event_timestamp"].unique())
    intervals = [(stamps[0] - pd.Timedelta(seconds=1), stamps[-1]), (stamps[3], stamps[7]),
                 (stamps[-1] + pd.Timedelta(days=1), stamps[-1] + pd.Timedelta(days=2))]
    checked = 0
    for view in store.list_feature_views():
        source = view.batch_source
        key = view.entity_columns[0].name
        features = [f.name for f in view.features]
        created = source.created_timestamp_column or None
        columns = [key, *features, source.timestamp_field, *([created] if created else [])]
        for start, end in intervals:
            start, end = pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime()

            # when Feast's offline store and the bounded reader pick the latest rows
            via_feast = offline_store_of(store.config).pull_latest_from_table_or_query(
                config=store.config, data_source=source, join_key_columns=[key], feature_name_columns=features,
                timestamp_field=source.timestamp_field, created_timestamp_column=created, start_date=start,
                end_date=end).to_arrow().to_pandas()
            bounded = pd.concat([t.to_pandas() for t in latest_rows(
                Path(source.path), key, source.timestamp_field, created, columns, start, end, chunk_rows=7)])

            # then they are the same rows with the same values
            assert len(via_feast) == len(bounded), (view.name, start, end)
            checked += len(bounded)
            if via_feast.empty:
                continue
            via_feast = via_feast[columns].sort_values(key).reset_index(drop=True)
            bounded = bounded.sort_values(key).reset_index(drop=True)
            for column in columns:
                if column in (source.timestamp_field, created):
                    assert (pd.to_datetime(via_feast[column], utc=True)
                            == pd.to_datetime(bounded[column], utc=True)).all(), (view.name, column)
                elif isinstance(via_feast[column].iloc[0], (list, np.ndarray)):
                    assert all(np.array_equal(a, b) for a, b in zip(via_feast[column], bounded[column], strict=True))
                else:
                    pd.testing.assert_series_equal(via_feast[column], bounded[column], check_dtype=False,
                                                   obj=f"{view.name}.{column}")
    assert checked > 0


def test_text_features_read_back_the_same_online_through_feast_and_the_fast_path(persona_home):
    # given an embedded home
    settings = _embedded_home()
    store = get_store(settings)
    from features.transforms.text import TEXT_FEATURES

    refs = [f"customer_text:{name}" for name in TEXT_FEATURES]
    rows = [{"customer_id": i} for i in range(1, 31)]
    end = pd.Timestamp("1998-01-01", tz="UTC").to_pydatetime()
    start = pd.Timestamp("1996-01-01", tz="UTC").to_pydatetime()

    # when Feast's engine materializes the text view, then the fast path does the same interval
    store.materialize(start_date=start, end_date=end, feature_views=["customer_text"])
    via_feast = store.get_online_features(features=refs, entity_rows=rows).to_df()
    from store.materialize_view import materialize_view_fast

    materialize_view_fast(store, store.get_feature_view("customer_text"), start, end)
    via_fast = get_store(settings).get_online_features(features=refs, entity_rows=rows).to_df()

    # then both read back identically
    assert via_feast["text_embedding"].notna().any()
    pd.testing.assert_frame_equal(via_feast, via_fast)
