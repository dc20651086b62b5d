"""Skew replay: served rows vs the same rows rebuilt offline; a skewed feature is named and blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.policy import SkewPolicy
from monitoring.skew import SkewReport, compare, merge_skews, replay, select_replayable

T = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def _log(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "served_at": [T - pd.Timedelta(hours=i) for i in range(n)],
        "endpoint": "predict",
        "customer_id": np.arange(1, n + 1),
        "model_version": "3",
        "orders_90d": np.arange(n, dtype=float),
        "spend_365d": np.linspace(10, 60, n),
        "region": ["north", "south"] * (n // 2),
        "features_at": "2025-05-26 00:00:00.000000",
        "churn_probability": 0.2,
        "cold_start_reason": None,
    })


def _offline(log: pd.DataFrame) -> pd.DataFrame:
    frame = log[["customer_id", "orders_90d", "spend_365d", "region"]].copy()
    frame["spend_365d"] = frame["spend_365d"].astype(np.float32).astype(float)  # as the online store rounds
    return frame


def test_a_clean_replay_reports_no_mismatch() -> None:
    # given served rows and the same values offline (32-bit rounding aside)
    log = _log()

    # when compared
    skews = compare(log, _offline(log), ["orders_90d", "spend_365d", "region"], rtol=1e-4, atol=1e-6)

    # then nothing differs
    assert [(s.feature, s.mismatches, s.rate) for s in skews] == [
        ("orders_90d", 0, 0.0), ("spend_365d", 0, 0.0), ("region", 0, 0.0)]


def test_an_injected_skew_is_named_with_its_rate_and_size() -> None:
    # given offline values that differ from what was served: orders for half the rows, one region
    log = _log()
    offline = _offline(log)
    offline.loc[[0, 2, 4], "orders_90d"] += 2.0
    offline.loc[1, "region"] = "west"
    offline.loc[5, "spend_365d"] = np.nan

    # when compared and judged at a 10 % threshold
    skews = compare(log, offline, ["orders_90d", "spend_365d", "region"], rtol=1e-4, atol=1e-6)
    report = SkewReport("now", None, "end", 0.1, {"replayed": 6}, skews)

    # then each skewed feature is named with its share of rows and the size of the difference
    by_name = {s.feature: s for s in skews}
    assert (by_name["orders_90d"].mismatches, by_name["orders_90d"].mean_abs_diff) == (3, pytest.approx(2.0))
    assert by_name["region"].rate == pytest.approx(1 / 6)
    assert (by_name["spend_365d"].mismatches, by_name["spend_365d"].mean_abs_diff) == (1, None)
    assert [s.feature for s in report.skewed] == ["orders_90d", "region", "spend_365d"]
    assert report.blocked
    assert "orders_90d 50.0% of 6 rows (mean |diff| 2)" in report.reason()


def test_only_served_predict_rows_with_a_feature_time_in_the_window_are_replayed() -> None:
    # given a what-if row, a cold start, a row without feature time and one outside the window
    log = _log(8)
    log.loc[0, "endpoint"] = "predict_features"
    log.loc[1, "cold_start_reason"] = "unknown customer"
    log.loc[2, "features_at"] = None
    log.loc[7, "served_at"] = T - pd.Timedelta(days=30)

    # when selected for a 7-day window
    rows, counts = select_replayable(log, T - pd.Timedelta(days=7), T, sample_rows=3, seed=1)

    # then those are left out and counted, and the rest is sampled
    assert counts == {"served": 7, "what_if": 1, "cold_start": 1, "no_feature_time": 1, "not_sampled": 1,
                      "replayed": 3}
    assert set(rows["customer_id"]) <= {4, 5, 6, 7}


def test_replay_rebuilds_each_version_through_its_feature_service_as_of_the_served_feature_time(
    monkeypatch: pytest.MonkeyPatch, persona_home,
) -> None:
    # given rows served by two versions and an offline store that differs for version 4's service
    from core.settings import load_settings
    from features import dataset
    from store import repo

    log = _log()
    log.loc[3:, "model_version"] = "4"
    asked: list[tuple[str, list]] = []

    def historical(settings, entities, service):
        asked.append((service, entities["event_timestamp"].tolist()))
        frame = _offline(log.set_index("customer_id").loc[entities["customer_id"]].reset_index())
        if service == "svc4":
            frame["orders_90d"] += 1
        return frame

    monkeypatch.setattr(dataset, "build_training_set", historical)
    monkeypatch.setattr(dataset, "service_views", lambda settings, service: [f"view of {service}"])
    # customer 6's served snapshot has since been rebuilt away (no offline row at its time)
    held = pd.DataFrame({"customer_id": [1, 2, 3, 4, 5, 6], "event_timestamp": [
        pd.Timestamp("2025-05-26", tz="UTC")] * 5 + [pd.Timestamp("2025-05-22", tz="UTC")]})
    monkeypatch.setattr(repo, "view_event_keys", lambda settings, views: held)

    # when replayed
    report = replay(load_settings(), SkewPolicy(), 7, end=T, service_of=lambda v: f"svc{v}", log=log)

    # then each version's rows went through its own service as of the logged feature time
    assert sorted(s for s, _ in asked) == ["svc3", "svc4"]
    assert all(t == pd.Timestamp("2025-05-26", tz="UTC") for _, times in asked for t in times)
    assert [(s.feature, s.mismatches) for s in report.skewed] == [("orders_90d", 2)]
    assert (report.rows, report.counts["snapshot_gone"]) == (5, 1)
    assert "no longer in the offline store" in report.summary()


def test_merged_versions_add_counts_and_weight_sizes_by_mismatches() -> None:
    # given the same feature compared for two versions
    from monitoring.skew import FeatureSkew

    parts = [[FeatureSkew("a", 10, 1, 4.0, 4.0)], [FeatureSkew("a", 30, 3, 8.0, 9.0)]]

    # when merged
    (merged,) = merge_skews(parts)

    # then counts add up and the mean size is weighted by the mismatches
    assert (merged.compared, merged.mismatches, merged.max_abs_diff) == (40, 4, 9.0)
    assert merged.mean_abs_diff == pytest.approx(7.0)


def test_the_summary_page_shows_the_skewed_feature_and_that_it_blocks_promotion() -> None:
    # given a monitoring summary whose skew replay found a skewed feature
    from monitoring.render import render_summary_html
    from monitoring.skew import FeatureSkew

    report = SkewReport("t", "s", "e", 0.01, {"served": 9, "replayed": 6, "what_if": 3},
                        [FeatureSkew("orders_90d", 6, 3, 2.0, 2.0), FeatureSkew("region", 6, 0, None, None)])

    # when rendered
    page = render_summary_html({"status": "ok", "skew": report.to_dict()})

    # then the page names the feature, its share and the verdict
    assert "blocks promotion" in page
    assert "<td>orders_90d</td><td>6</td><td>3</td><td>50.0%</td>" in page
    assert "what if 3" in page
