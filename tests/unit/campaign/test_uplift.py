"""The X-learner finds whom a contact changes; the gate decides on Qini."""

from __future__ import annotations

import numpy as np
import pandas as pd

from campaign.uplift import UpliftConfig, evaluate_uplift, fit_uplift, uplift_gate
from tests.unit.campaign.conftest import planted_campaign
from training.gate import decide

SMALL = UpliftConfig(n_estimators=40)


def test_the_model_ranks_responders_above_customers_a_contact_puts_off() -> None:
    # given a past campaign and a later one, same planted effect
    train = planted_campaign(seed=1)
    holdout = planted_campaign(seed=2, start="2024-09-01", campaign="c2")

    # when
    model = fit_uplift(train, ["x", "noise"], SMALL)
    predicted = model.predict(holdout)

    # then
    up = predicted["uplift_conversion_discount"]
    assert up[holdout["x"] > 0.3].mean() > 0.25
    assert up[holdout["x"] < -0.3].mean() < -0.1
    assert set(predicted.columns) == {"baseline_conversion", "baseline_spend", "uplift_conversion_discount",
                                      "uplift_spend_discount"}


def test_evaluation_puts_the_model_between_random_and_the_oracle() -> None:
    # given
    train = planted_campaign(seed=1)
    holdout = planted_campaign(seed=2, start="2024-09-01", campaign="c2")
    model = fit_uplift(train, ["x", "noise"], SMALL)

    # when
    churn = -holdout["x"].to_numpy()  # a churn score that prefers exactly the wrong customers
    metrics = evaluate_uplift(model.predict(holdout), holdout, churn, holdout[["true_uplift_conversion",
                                                                             "true_uplift_spend"]])

    # then
    assert metrics["baseline_churn_uplift_qini"] < metrics["baseline_random_uplift_qini"] < metrics["uplift_qini"]
    assert metrics["uplift_qini"] > 0.8 * metrics["oracle_uplift_qini"]
    assert metrics["expected_uplift_qini"] > 0.9 * metrics["oracle_expected_uplift_qini"]
    assert metrics["uplift_at_10_conversion_discount"] > 0.2


def test_the_gate_refuses_a_model_that_ranks_no_better_than_random_whatever_its_fit() -> None:
    # given a candidate whose Qini is below the random ranking's, with no champion yet
    metrics = {"uplift_qini": -0.01, "baseline_random_uplift_qini": 0.0, "conversion_roc_auc": 0.99}

    # when
    decision = decide(metrics, None, None, uplift_gate(metrics))

    # then
    assert not decision.promote
    assert "uplift_qini" in decision.reason


def test_a_churn_baseline_joins_the_gate_only_when_it_was_scored() -> None:
    # given
    with_churn = {"uplift_qini": 0.02, "baseline_random_uplift_qini": 0.0, "baseline_churn_uplift_qini": 0.03}

    # when
    decision = decide(with_churn, None, None, uplift_gate(with_churn))

    # then
    assert not decision.promote
    assert "baseline_churn_uplift_qini" in decision.reason
    assert len(uplift_gate({"uplift_qini": 0.02}).baselines) == 1


def test_control_rows_of_every_campaign_train_the_no_contact_model() -> None:
    # given two offers whose control groups differ only in size
    a = planted_campaign(n=1000, seed=3, offer="discount")
    b = planted_campaign(n=1000, seed=4, offer="voucher", campaign="c9")
    frame = pd.concat([a, b], ignore_index=True)

    # when
    model = fit_uplift(frame, ["x", "noise"], SMALL)

    # then one no-contact model per outcome, two effect models per offer and outcome
    assert sorted(model.models) == [
        "conversion/control", "conversion/effect_control/discount", "conversion/effect_control/voucher",
        "conversion/effect_treated/discount", "conversion/effect_treated/voucher",
        "spend/control", "spend/effect_control/discount", "spend/effect_control/voucher",
        "spend/effect_treated/discount", "spend/effect_treated/voucher"]
    assert np.isfinite(model.predict(frame).to_numpy()).all()
