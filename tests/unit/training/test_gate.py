"""The promotion gate: a pure decision from candidate and champion metrics on the same holdout."""

from __future__ import annotations

import pytest

from training.config import BaselineRule, GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, decide, decide_promotion, skew_hold

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


BASELINED = GateConfig(
    primary=MetricRule(metric="churn_roc_auc", threshold=0.01),
    guards=(),
    baselines=(
        BaselineRule(metric="churn_roc_auc", baseline="baseline_rfm_roc_auc"),
        BaselineRule(metric="spend_mae", baseline="baseline_constant_spend_mae", higher_is_better=False, threshold=0),
    ),
)


def _run(auc: float, rfm: float, mae: float = 10.0, constant_mae: float = 12.0) -> dict[str, float]:
    return {
        "churn_roc_auc": auc,
        "baseline_rfm_roc_auc": rfm,
        "spend_mae": mae,
        "baseline_constant_spend_mae": constant_mae,
    }


def test_a_first_model_below_its_baseline_is_a_challenger_with_the_reason() -> None:
    # given no champion and a candidate worse than its run's RFM baseline (the reported AUC 0.50 vs 0.73)
    # when
    decision = decide(_run(0.50, 0.73), None, None, BASELINED)
    # then
    assert (decision.promote, decision.alias) == (False, CHALLENGER)
    assert "first model" in decision.reason
    assert "baseline_rfm_roc_auc 0.7300" in decision.reason


@pytest.mark.parametrize(("auc", "alias"), [(0.75, CHAMPION), (0.7499, CHALLENGER), (0.74, CHALLENGER)])
def test_baseline_margin_boundary(auc: float, alias: str) -> None:
    # given an RFM baseline of 0.74 and a margin of 0.01: exactly at the margin passes
    # when / then
    assert decide(_run(auc, 0.74), None, None, BASELINED).alias == alias


@pytest.mark.parametrize(("mae", "alias"), [(11.99, CHAMPION), (12.0, CHALLENGER)])
def test_a_zero_margin_baseline_must_be_strictly_beaten(mae: float, alias: str) -> None:
    # when / then a value model only as good as the constant stays challenger
    assert decide(_run(0.9, 0.7, mae=mae), None, None, BASELINED).alias == alias


def test_a_missing_baseline_never_promotes() -> None:
    # given a run that did not compute its RFM baseline
    candidate = _run(0.9, 0.7)
    del candidate["baseline_rfm_roc_auc"]
    # when / then
    assert decide(candidate, None, None, BASELINED).alias == CHALLENGER


def test_a_champion_not_comparable_leaves_the_decision_to_the_baselines() -> None:
    # given a champion trained on this holdout's dates
    why = "it trained on snapshots up to 2024-01-21, this holdout has none later"
    # when
    beats = decide(_run(0.9, 0.7), {}, "3", BASELINED, not_comparable=why)
    loses = decide(_run(0.7, 0.9), {}, "3", BASELINED, not_comparable=why)
    # then
    assert (beats.alias, loses.alias) == (CHAMPION, CHALLENGER)
    assert "not comparable" in beats.reason
    assert why in beats.reason


def test_a_champion_that_could_not_be_scored_is_not_beaten_silently() -> None:
    # when / then (unreadable champion: empty metrics, but comparable in principle)
    decision = decide(_run(0.9, 0.7), {}, "3", BASELINED)
    assert decision.alias == CHALLENGER
    assert "could not be evaluated" in decision.reason


@pytest.mark.parametrize("champion", [None, "2"])
def test_a_skew_replay_that_found_skew_holds_a_promotion_the_gate_would_make(champion: str | None) -> None:
    # given a candidate that beats its baselines (and the champion), and the latest skew verdicts
    candidate = {**_run(0.9, 0.7), "churn_brier": 0.1}
    champion_metrics = {"churn_roc_auc": 0.8} if champion else None
    blocked = {"blocked": True, "reason": "training/serving skew: orders_90d 50.0% of 6 rows above 1.0%", "at": "t"}

    # when the gate decides under a blocking, a clean and no verdict
    held = decide(candidate, champion_metrics, champion, BASELINED, skew=skew_hold(blocked))
    clean = decide(candidate, champion_metrics, champion, BASELINED, skew=skew_hold({"blocked": False}))
    none = decide(candidate, champion_metrics, champion, BASELINED, skew=skew_hold(None))

    # then only the skew holds it back, as challenger, naming the feature and the fix
    assert clean.promote
    assert none.promote
    assert (held.promote, held.alias) == (False, CHALLENGER)
    assert "orders_90d 50.0%" in held.reason
    assert "persona skew" in held.reason
