"""The gate a run with a custom target gets, pinned whole, so a changed metric, margin or baseline fails."""

from __future__ import annotations

import pytest

from training.config import BaselineRule, GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, decide, target_gate

BASE = GateConfig(primary=MetricRule(metric="churn_roc_auc", threshold=0.0625))


def test_a_classifier_target_is_gated_on_roc_auc_with_the_base_margin_and_a_brier_guard() -> None:
    assert target_gate("upsell", "classification", BASE) == GateConfig(
        primary=MetricRule(metric="upsell_roc_auc", higher_is_better=True, threshold=0.0625, relative=False),
        guards=(MetricRule(metric="upsell_brier", higher_is_better=False, threshold=0.02, relative=True),),
        baselines=(
            BaselineRule(metric="upsell_roc_auc", baseline="baseline_logreg_upsell_roc_auc",
                         higher_is_better=True, threshold=None),
            BaselineRule(metric="upsell_roc_auc", baseline="baseline_majority_upsell_roc_auc",
                         higher_is_better=True, threshold=None),
        ),
    )


@pytest.mark.parametrize("task", ["regression", "anything else"])
def test_a_regression_target_is_gated_on_mae_with_an_rmse_guard_and_a_strictly_beaten_constant(task: str) -> None:
    assert target_gate("basket", task, BASE) == GateConfig(
        primary=MetricRule(metric="basket_mae", higher_is_better=False, threshold=0.01, relative=True),
        guards=(MetricRule(metric="basket_rmse", higher_is_better=False, threshold=0.05, relative=True),),
        baselines=(
            BaselineRule(metric="basket_mae", baseline="baseline_constant_basket_mae", higher_is_better=False,
                         threshold=0.0),
        ),
    )


def test_a_classifier_must_beat_both_baselines_by_the_base_margin() -> None:
    # given a gate with margin 0.0625 and a candidate 0.0625 above the logistic baseline
    gate = target_gate("upsell", "classification", BASE)
    run = {"upsell_roc_auc": 0.75, "baseline_logreg_upsell_roc_auc": 0.6875, "baseline_majority_upsell_roc_auc": 0.5,
           "upsell_brier": 0.125}

    # when / then exactly the margin passes; just under it fails
    assert decide(run, None, None, gate).alias == CHAMPION
    assert decide({**run, "baseline_logreg_upsell_roc_auc": 0.703125}, None, None, gate).alias == CHALLENGER


def test_a_regression_only_as_good_as_the_constant_stays_challenger() -> None:
    gate = target_gate("basket", "regression", BASE)
    run = {"basket_mae": 4.0, "baseline_constant_basket_mae": 4.0, "basket_rmse": 5.0}
    assert decide(run, None, None, gate).alias == CHALLENGER
    assert decide({**run, "basket_mae": 3.75}, None, None, gate).alias == CHAMPION
