"""The promotion gate: a pure decision from candidate and champion metrics on the same holdout."""

from __future__ import annotations

import pytest

from training.config import GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, decide_promotion

GATE = GateConfig(
    primary=MetricRule(metric="churn_roc_auc", higher_is_better=True, threshold=0.01),
    guards=(
        MetricRule(metric="churn_brier", higher_is_better=False, threshold=0.005),
        MetricRule(metric="spend_mae", higher_is_better=False, threshold=0.05, relative=True),
    ),
)
CHAMP = {"churn_roc_auc": 0.80, "churn_brier": 0.150, "spend_mae": 100.0}


def test_better_candidate_becomes_champion() -> None:
    # given a candidate that gains more than the margin and holds the guards
    candidate = {"churn_roc_auc": 0.82, "churn_brier": 0.149, "spend_mae": 101.0}
    # when
    decision = decide_promotion(candidate, CHAMP, GATE)
    # then
    assert decision.promote
    assert decision.alias == CHAMPION
    assert "beats champion" in decision.reason


def test_worse_candidate_becomes_challenger() -> None:
    # given
    candidate = {"churn_roc_auc": 0.78, "churn_brier": 0.14, "spend_mae": 90.0}
    # when
    decision = decide_promotion(candidate, CHAMP, GATE)
    # then
    assert not decision.promote
    assert decision.alias == CHALLENGER
    assert "below required margin" in decision.reason


@pytest.mark.parametrize("auc", [0.80, 0.805, 0.8099])
def test_gain_within_margin_is_not_enough(auc: float) -> None:
    # given a candidate equal to the champion or better by less than the 0.01 margin
    candidate = {"churn_roc_auc": auc, "churn_brier": 0.15, "spend_mae": 100.0}
    # when
    decision = decide_promotion(candidate, CHAMP, GATE)
    # then
    assert decision.alias == CHALLENGER


def test_gain_exactly_at_margin_promotes() -> None:
    # given
    candidate = {"churn_roc_auc": 0.8125, "churn_brier": 0.15, "spend_mae": 100.0}
    # when / then
    assert decide_promotion(candidate, CHAMP, GATE).alias == CHAMPION


@pytest.mark.parametrize(
    ("brier", "mae", "culprit"),
    [(0.1551, 100.0, "churn_brier"), (0.15, 105.1, "spend_mae")],
)
def test_guard_regression_blocks_promotion(brier: float, mae: float, culprit: str) -> None:
    # given a candidate that wins on AUC but regresses one guard beyond its tolerance
    candidate = {"churn_roc_auc": 0.85, "churn_brier": brier, "spend_mae": mae}
    # when
    decision = decide_promotion(candidate, CHAMP, GATE)
    # then
    assert decision.alias == CHALLENGER
    assert culprit in decision.reason
    assert "guard regressed" in decision.reason


def test_guard_regression_within_tolerance_is_allowed() -> None:
    # given brier worse by 0.004 (< 0.005) and MAE worse by 4% (< 5%)
    candidate = {"churn_roc_auc": 0.85, "churn_brier": 0.154, "spend_mae": 104.0}
    # when / then
    assert decide_promotion(candidate, CHAMP, GATE).alias == CHAMPION


def test_no_champion_yet_promotes() -> None:
    # given
    candidate = {"churn_roc_auc": 0.6, "churn_brier": 0.2, "spend_mae": 50.0}
    # when
    decision = decide_promotion(candidate, None, GATE)
    # then
    assert decision.promote
    assert "no champion yet" in decision.reason


def test_non_finite_candidate_never_promotes() -> None:
    # given a holdout with one class (AUC undefined)
    candidate = {"churn_roc_auc": float("nan"), "churn_brier": 0.2, "spend_mae": 50.0}
    # when / then
    assert decide_promotion(candidate, None, GATE).alias == CHALLENGER


def test_lower_is_better_primary_metric() -> None:
    # given a regression gate on MAE with a 1% relative margin
    gate = GateConfig(
        primary=MetricRule(metric="ltv_mae", higher_is_better=False, threshold=0.01, relative=True), guards=()
    )
    # when / then
    assert decide_promotion({"ltv_mae": 98.0}, {"ltv_mae": 100.0}, gate).alias == CHAMPION
    assert decide_promotion({"ltv_mae": 99.5}, {"ltv_mae": 100.0}, gate).alias == CHALLENGER


def test_missing_candidate_metric_is_an_error() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="spend_mae"):
        decide_promotion({"churn_roc_auc": 0.9, "churn_brier": 0.1}, CHAMP, GATE)
