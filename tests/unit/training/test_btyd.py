"""The BTYD baseline: BG/NBD and Gamma-Gamma fits against published CDNOW estimates, and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.realdata_bench import cdnow_transactions
from training import btyd

CALIBRATION_END = pd.Timestamp("1997-09-30", tz="UTC")  # week 39 of the CDNOW sample


def _cdnow_calibration() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's calibration data: the 2,357-customer sample, one transaction per customer-day."""
    orders = cdnow_transactions(full=False)
    daily = orders.groupby(["customer_id", "event_timestamp"], as_index=False)["amount"].sum()
    calibration = daily[daily["event_timestamp"] <= CALIBRATION_END]
    entities = pd.DataFrame({"customer_id": calibration["customer_id"].unique(), "event_timestamp": CALIBRATION_END})
    return btyd.summarize(entities, calibration), daily


def test_bgnbd_recovers_the_published_cdnow_estimates() -> None:
    # given the CDNOW sample's 39-week calibration summary
    summary, _ = _cdnow_calibration()
    # when BG/NBD is fitted by maximum likelihood
    fitted = btyd.fit_bgnbd(summary["x"], summary["t_x"], summary["T"])
    # then it finds Fader, Hardie & Lee (2005)'s estimates
    assert len(summary) == 2357
    assert fitted.r == pytest.approx(0.243, abs=0.002)
    assert fitted.alpha == pytest.approx(4.414, abs=0.02)
    assert fitted.a == pytest.approx(0.793, abs=0.005)
    assert fitted.b == pytest.approx(2.426, abs=0.02)


def test_bgnbd_predicts_the_cdnow_holdout_total() -> None:
    # given the published model and the 39 holdout weeks after the calibration
    summary, daily = _cdnow_calibration()
    model = btyd.BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
    holdout = daily[daily["event_timestamp"] > CALIBRATION_END]
    # when each customer's expected orders over 39 weeks are summed
    expected = model.expected_orders(39.0, summary["x"], summary["t_x"], summary["T"]).sum()
    # then the total is within 15% of the actual one (1,654 vs 1,882 customer-days)
    assert expected == pytest.approx(len(holdout), rel=0.15)


def test_summary_is_point_in_time() -> None:
    # given three orders of one customer and a snapshot exactly at the second one
    day = pd.Timestamp("2024-01-01", tz="UTC")
    orders = pd.DataFrame(
        {
            "customer_id": [7, 7, 7],
            "event_timestamp": [day, day + pd.Timedelta(days=14), day + pd.Timedelta(days=28)],
            "amount": [10.0, 30.0, 500.0],
        }
    )
    entities = pd.DataFrame(
        {"customer_id": [7, 7, 8], "event_timestamp": [day + pd.Timedelta(days=14), day + pd.Timedelta(days=21), day]}
    )
    # when summarised
    summary = btyd.summarize(entities, orders)
    # then the order at the snapshot counts, the later one never does, and a customer without orders is empty
    assert summary["n"].tolist() == [2.0, 2.0, 0.0]
    assert summary["x"].tolist() == [1.0, 1.0, 0.0]
    assert summary["t_x"].tolist() == [2.0, 2.0, 0.0]
    assert summary["T"].tolist() == [2.0, 3.0, 0.0]
    assert summary["mean_amount"].iloc[0] == 20.0
    assert np.isnan(summary["mean_amount"].iloc[2])


def test_p_alive_falls_with_dormancy_and_one_time_buyers_count_as_alive() -> None:
    # given the published CDNOW model
    model = btyd.BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
    # when customers with the same 4 repeat orders were last seen later or earlier
    recent, dormant = model.p_alive(np.array([4, 4]), np.array([30.0, 10.0]), np.array([32.0, 32.0]))
    # then the dormant one is less likely alive; a customer without repeats is alive by the model's definition
    assert 0 < dormant < recent < 1
    assert model.p_alive(np.array([0]), np.array([0.0]), np.array([30.0]))[0] == 1.0


def test_gamma_gamma_shrinks_spend_towards_the_population() -> None:
    # given the CDNOW calibration's order values
    summary, _ = _cdnow_calibration()
    # when Gamma-Gamma is fitted
    spend = btyd.fit_gamma_gamma(summary["n"], summary["mean_amount"])
    # then a customer's expected order value lies between their own mean and the population's,
    # nearer their own the more orders they have
    population = spend.population_mean
    one, many = spend.expected_spend_per_order(np.array([1.0, 20.0]), np.array([200.0, 200.0]))
    assert population < one < many < 200.0
    assert population == pytest.approx(summary["mean_amount"].mean(), rel=0.25)


def test_baseline_predicts_orders_spend_and_p_alive() -> None:
    # given a BTYD baseline fitted on the calibration window
    summary, _ = _cdnow_calibration()
    baseline = btyd.fit_btyd(summary)
    # when it predicts 90 days
    out = baseline.predict(summary, 90)
    # then spend is orders times the expected order value and P(alive) is a probability
    assert list(out.columns) == ["expected_orders", "expected_spend", "p_alive"]
    assert (out["expected_orders"] >= 0).all()
    assert out["p_alive"].between(0, 1).all()
    per_order = baseline.spend.expected_spend_per_order(summary["n"], summary["mean_amount"])
    np.testing.assert_allclose(out["expected_spend"], out["expected_orders"] * per_order)


def test_fit_logs_the_btyd_baseline_beside_the_value_model() -> None:
    from core.timegrid import snapshot_timestamps
    from features.transforms.behavior import build_entity_snapshots, compute_behavior_features
    from model.actions import load_policy
    from training.config import PersonaParams, TrainConfig, XGBParams
    from training.fit import fit_persona_bundle
    from training.labels import make_labels

    # given real CDNOW rows: two training snapshots, one holdout snapshot 90 days later
    orders = cdnow_transactions(full=False)
    orders = orders[orders["customer_id"] <= 800]
    times = snapshot_timestamps(orders["event_timestamp"].min(), orders["event_timestamp"].max(), 7)
    train_t, hold_t = list(times[20:22]), [times[36]]
    entities = build_entity_snapshots(None, orders, pd.DatetimeIndex([*train_t, *hold_t]))
    frame = make_labels(entities, orders, 90).merge(compute_behavior_features(entities, orders))
    features = ["recency_days", "tenure_days", "orders_90d", "orders_365d", "spend_365d", "mean_days_between_orders"]
    config = TrainConfig(xgb=XGBParams(n_estimators=20), personas=PersonaParams(k_min=2, k_max=3), horizon_days=90)
    train = frame[frame["event_timestamp"].isin(train_t)].reset_index(drop=True)
    holdout = frame[frame["event_timestamp"].isin(hold_t)].reset_index(drop=True)
    # when the persona bundle is fitted with the transactions
    fitted = fit_persona_bundle(train, holdout, features, config, load_policy(config.policy_path), transactions=orders)
    # then BG/NBD's figures sit beside XGBoost's and P(alive) is an output per holdout row
    assert fitted.value_baseline is not None
    assert len(fitted.value_baseline) == len(holdout)
    assert fitted.value_baseline["p_alive"].between(0, 1).all()
    m = fitted.metrics
    expected = orders[
        (orders["event_timestamp"] > hold_t[0]) & (orders["event_timestamp"] <= hold_t[0] + pd.Timedelta(days=90))
    ]
    assert m["baseline_btyd_orders_total_ratio"] == pytest.approx(
        fitted.value_baseline["expected_orders"].sum() / len(expected)
    )
    assert m["orders_total_ratio"] == pytest.approx(fitted.predictions["expected_orders"].sum() / len(expected))
    assert m["baseline_btyd_orders_corr"] > 0.3
    assert {"baseline_btyd_orders_mae", "baseline_btyd_orders_rmse", "baseline_btyd_churn_roc_auc"} <= set(m)


def test_no_baseline_when_nothing_can_be_fitted() -> None:
    from training.evaluate import btyd_holdout_predictions

    # given holdout rows whose customers only ever ordered for free
    day = pd.Timestamp("2024-03-01", tz="UTC")
    orders = pd.DataFrame(
        {"customer_id": [1, 1, 2], "event_timestamp": [day - pd.Timedelta(days=d) for d in (30, 10, 5)], "amount": 0.0}
    )
    holdout = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [day, day]})
    # when the baseline is asked for, then there is none (and training goes on)
    assert btyd_holdout_predictions(holdout, orders, 90) is None
    # and without any order before the snapshot there is none either
    assert btyd_holdout_predictions(holdout, orders.assign(event_timestamp=day + pd.Timedelta(days=1)), 90) is None
