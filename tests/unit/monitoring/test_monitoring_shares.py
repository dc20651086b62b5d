"""Persona share shift and movers; the current window; matured-label quality (pure functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.quality import label_predictions, matured_mask, quality_check, reference_quality
from monitoring.shares import persona_movers, persona_shares, persona_shift
from monitoring.window import combine_window, latest_at_or_before, select_served

T0 = pd.Timestamp("1997-05-01", tz="UTC")


# --------------------------------------------------------------------------- personas
def test_persona_shares_count_missing_personas_as_zero() -> None:
    # given "bargain" exists only now, "dormant" only at training
    reference = pd.Series(["loyal"] * 6 + ["dormant"] * 4)
    current = pd.Series(["loyal"] * 5 + ["bargain"] * 5)
    # when
    shares = persona_shares(reference, current).set_index("persona")
    # then
    assert shares.loc["bargain", "reference_share"] == 0.0
    assert shares.loc["bargain", "current_share"] == 0.5
    assert shares.loc["dormant", "change"] == pytest.approx(-0.4)
    assert shares.loc["loyal", "change"] == pytest.approx(-0.1)
    assert list(shares.index[:1]) == ["bargain"]  # largest change first


def test_movers_pair_the_same_customers() -> None:
    # given customers 1-4 at training and 2-5 now; 3 moved loyal -> at risk
    reference = pd.DataFrame({"customer_id": [1, 2, 3, 4], "persona": ["loyal", "loyal", "loyal", "at risk"]})
    current = pd.DataFrame({"customer_id": [2, 3, 4, 5], "persona": ["loyal", "at risk", "at risk", "loyal"]})
    # when
    moves = persona_movers(reference, current)
    # then movers come first
    assert moves.iloc[0].to_dict() == {"from_persona": "loyal", "to_persona": "at risk", "customers": 1,
                                       "share": pytest.approx(1 / 3)}
    assert moves["customers"].sum() == 3


def test_persona_shift_summarises_share_change_and_movers() -> None:
    # given
    reference = pd.DataFrame({"customer_id": range(10), "persona": ["a"] * 5 + ["b"] * 5})
    current = pd.DataFrame({"customer_id": range(10), "persona": ["a"] * 2 + ["b"] * 8})
    # when
    shift = persona_shift(reference, current)
    # then
    assert shift is not None
    assert shift.max_share_change == pytest.approx(0.3)
    assert shift.common_customers == 10
    assert shift.moved_share == pytest.approx(0.3)
    assert shift.to_dict()["shares"][0]["persona"] in {"a", "b"}


def test_persona_shift_without_personas_or_overlap() -> None:
    assert persona_shift(pd.DataFrame({"x": [1]}), pd.DataFrame({"persona": ["a"]})) is None
    shift = persona_shift(pd.DataFrame({"customer_id": [1], "persona": ["a"]}),
                          pd.DataFrame({"customer_id": [2], "persona": ["a"]}))
    assert shift.common_customers == 0
    assert shift.moved_share is None
    assert shift.max_share_change == 0.0


# --------------------------------------------------------------------------- window
def _log() -> pd.DataFrame:
    served = T0 + pd.to_timedelta([-10, -5, -1, -1, 0, 0], unit="D")
    return pd.DataFrame({
        "request_id": list("abcdef"), "served_at": served, "customer_id": [1, 1, 2, 3, 1, None],
        "model_version": ["1", "2", "2", "2", "2", "2"], "recency_days": [5.0, 6, 7, 8, 9, 10],
        "churn_probability": [0.1, 0.2, 0.3, np.nan, 0.5, 0.6],
        "cold_start_reason": [None, None, None, "unknown customer", None, None],
    })


def test_select_served_keeps_the_window_the_version_and_no_cold_starts() -> None:
    # when
    rows, counts = select_served(_log(), T0 - pd.Timedelta(days=7), T0, version="2")
    # then
    assert list(rows["request_id"]) == ["b", "c", "e", "f"]
    assert counts == {"served": 5, "other_version": 0, "cold_start": 1}
    assert (rows["event_timestamp"] == rows["served_at"]).all()


def test_select_served_on_an_empty_log() -> None:
    rows, counts = select_served(pd.DataFrame(), None, T0, "1")
    assert rows.empty
    assert counts["served"] == 0


def test_combine_window_prefers_the_latest_served_row_per_customer() -> None:
    # given customer 1 served twice, and a snapshot of customers 1, 2 and 4
    served, _ = select_served(_log(), T0 - pd.Timedelta(days=7), T0, version="2")
    snapshot = pd.DataFrame({"customer_id": [1, 2, 4], "recency_days": [1.0, 2.0, 4.0]})
    # when
    window = combine_window(served, snapshot)
    # then one row for 1 (latest served), 2 (served), 4 (snapshot), and the id-less served row
    by_source = window.groupby("source")["customer_id"].apply(lambda s: sorted(s.dropna().astype(int)))
    assert by_source["prediction_log"] == [1, 2]
    assert by_source["snapshot"] == [4]
    assert window.loc[window["customer_id"] == 1, "recency_days"].item() == 9.0
    assert window["customer_id"].isna().sum() == 1
    assert len(window) == 4


def test_latest_snapshot_at_or_before() -> None:
    times = pd.DatetimeIndex([T0, T0 + pd.Timedelta(days=7)])
    assert latest_at_or_before(times, None) == T0 + pd.Timedelta(days=7)
    assert latest_at_or_before(times, T0 + pd.Timedelta(days=3)) == T0
    assert latest_at_or_before(times, T0 - pd.Timedelta(days=1)) is None


# --------------------------------------------------------------------------- quality
def test_labels_mature_only_after_the_horizon() -> None:
    # given predictions 40 and 10 days before the last transaction, a 30-day horizon
    times = pd.Series([T0 - pd.Timedelta(days=40), T0 - pd.Timedelta(days=10)])
    # when / then
    assert matured_mask(times, T0, 30).tolist() == [True, False]


def test_quality_on_matured_predictions() -> None:
    # given customer 1 ordered within the horizon (not churned), customer 2 did not (churned)
    predictions = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T0, T0],
                                "churn_probability": [0.2, 0.9]})
    transactions = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T0 + pd.Timedelta(days=5),
                                                                             T0 - pd.Timedelta(days=5)],
                                 "amount": [10.0, 20.0]})
    # when
    labelled = label_predictions(predictions, transactions, horizon_days=30)
    check = quality_check(labelled, {"roc_auc": 0.8}, {"snapshot": 2})
    # then
    assert labelled["churned"].tolist() == [0, 1]
    assert check.rows == 2
    assert check.current["roc_auc"] == 1.0
    assert check.churn_rate == 0.5
    assert check.reference == {"roc_auc": 0.8}
    assert check.sources == {"snapshot": 2}


def test_quality_without_rows_and_reference_metrics_from_the_run() -> None:
    assert quality_check(pd.DataFrame(), {}).rows == 0
    assert reference_quality({"churn_roc_auc": 0.8, "churn_brier": 0.2, "baseline_rfm_roc_auc": 0.6,
                              "spend_mae": 3.0}) == {"roc_auc": 0.8, "brier": 0.2}
