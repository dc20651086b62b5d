"""Exact outcomes of the promotion gate, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

import math

import pytest

from training.config import GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, GateDecision, decide_promotion

AUC = MetricRule(metric="auc", higher_is_better=True, threshold=0.125)
BRIER = MetricRule(metric="brier", higher_is_better=False, threshold=0.125)
LOSS = MetricRule(metric="loss", higher_is_better=False, threshold=0.5, relative=True)


# --------------------------------------------------------------------------- promotion gate
def test_a_non_finite_candidate_is_a_challenger_with_its_reason() -> None:
    # given / when
    decision = decide_promotion({"auc": math.nan}, {"auc": 0.5}, GateConfig(primary=AUC, guards=()))

    # then
    assert decision == GateDecision(False, CHALLENGER, "candidate auc is not finite (nan)")


def test_the_first_candidate_becomes_champion_with_its_reason() -> None:
    assert decide_promotion({"auc": 0.625}, None, GateConfig(primary=AUC, guards=())) == GateDecision(
        True, CHAMPION, "no champion yet; candidate auc=0.6250")


@pytest.mark.parametrize("champion", [{}, {"auc": math.nan}], ids=["missing", "nan"])
def test_a_champion_without_a_finite_primary_metric_is_replaced(champion: dict) -> None:
    assert decide_promotion({"auc": 0.625}, champion, GateConfig(primary=AUC, guards=())) == GateDecision(
        True, CHAMPION, "champion has no finite auc; candidate auc=0.6250")


def test_below_the_margin_is_a_challenger_with_gain_and_margin_in_the_reason() -> None:
    assert decide_promotion({"auc": 0.5625}, {"auc": 0.5}, GateConfig(primary=AUC, guards=())) == GateDecision(
        False, CHALLENGER, "auc 0.5625 vs champion 0.5000: gain +0.0625 below required margin 0.1250")


def test_with_a_zero_margin_any_gain_promotes_and_a_tie_does_not() -> None:
    # given a gate that asks for no margin
    gate = GateConfig(primary=MetricRule(metric="auc", higher_is_better=True, threshold=0.0), guards=())

    # when / then a strict gain promotes, a tie stays challenger
    assert decide_promotion({"auc": 0.5625}, {"auc": 0.5}, gate).alias == CHAMPION
    assert decide_promotion({"auc": 0.5}, {"auc": 0.5}, gate).alias == CHALLENGER


def test_a_win_with_guards_held_names_gain_and_margin() -> None:
    gate = GateConfig(primary=AUC, guards=(BRIER,))
    assert decide_promotion({"auc": 0.75, "brier": 0.25}, {"auc": 0.5, "brier": 0.25}, gate) == GateDecision(
        True, CHAMPION, "auc 0.7500 beats champion 0.5000 by +0.2500 (margin 0.1250); guards held")


def test_every_regressed_guard_is_named_in_one_reason() -> None:
    # given two guards, both regressed beyond their tolerance (absolute 0.125; relative 50% of 1.0)
    gate = GateConfig(primary=AUC, guards=(BRIER, LOSS))
    candidate, champion = {"auc": 0.75, "brier": 0.5, "loss": 2.0}, {"auc": 0.5, "brier": 0.25, "loss": 1.0}

    # when / then
    assert decide_promotion(candidate, champion, gate) == GateDecision(
        False, CHALLENGER,
        "auc improved by +0.2500 but guard regressed: brier 0.5000 vs 0.2500 (tolerance 0.1250); "
        "loss 2.0000 vs 1.0000 (tolerance 0.5000)")


def test_a_guard_the_champion_lacks_is_skipped_and_the_next_one_still_checked() -> None:
    # given a first guard the champion never recorded and a second one that regressed
    gate = GateConfig(primary=AUC, guards=(LOSS, BRIER))
    candidate = {"auc": 0.75, "loss": 9.0, "brier": 0.5}

    # when / then the missing one is skipped, the regressed one still blocks
    assert decide_promotion(candidate, {"auc": 0.5, "brier": 0.25}, gate).alias == CHALLENGER
    assert decide_promotion(candidate, {"auc": 0.5, "brier": 0.25, "loss": math.nan}, gate).alias == CHALLENGER
    assert decide_promotion({**candidate, "brier": 0.25}, {"auc": 0.5, "brier": 0.25}, gate).alias == CHAMPION


def test_a_non_finite_guard_value_of_the_candidate_blocks() -> None:
    gate = GateConfig(primary=AUC, guards=(BRIER,))
    decision = decide_promotion({"auc": 0.75, "brier": math.nan}, {"auc": 0.5, "brier": 0.25}, gate)
    assert (decision.promote, decision.alias) == (False, CHALLENGER)
