"""Exact outcomes of the promotion gate, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

import math

import pytest

from training.config import BaselineRule, GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, GateDecision, baseline_failures, decide, decide_promotion, skew_hold

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


# --------------------------------------------------------------------------- baselines of the run
# the AUC baseline takes the primary's margin (0.125); the loss baseline asks for none (strictly better)
BASELINED = GateConfig(
    primary=AUC,
    guards=(),
    baselines=(
        BaselineRule(metric="auc", baseline="base_auc"),
        BaselineRule(metric="loss", baseline="base_loss", higher_is_better=False, threshold=0.0),
    ),
)
BEATS = {"auc": 0.75, "base_auc": 0.5, "loss": 1.0, "base_loss": 2.0}
FIXED = "fix the served features and rerun `persona skew`"


def test_a_gain_exactly_equal_to_a_baseline_margin_passes_and_a_tie_with_a_zero_margin_fails() -> None:
    # given a gain over the AUC baseline of exactly its margin (0.75 - 0.625), and a loss that only ties
    run = {"auc": 0.75, "base_auc": 0.625, "loss": 1.0, "base_loss": 1.0}

    # when / then the margin is met, the tie is not strictly better
    assert baseline_failures(run, BASELINED) == ["loss 1.0000 does not beat base_loss 1.0000 by 0.0000"]
    assert baseline_failures({**run, "loss": 0.9375}, BASELINED) == []


def test_a_baseline_beaten_by_less_than_the_margin_is_named_with_the_margin() -> None:
    # given a gain of 0.0625 over the AUC baseline (margin 0.125); the loss baseline's own zero margin is met
    run = {"auc": 0.625, "base_auc": 0.5625, "loss": 1.0, "base_loss": 1.0625}

    # when / then
    assert baseline_failures(run, BASELINED) == ["auc 0.6250 does not beat base_auc 0.5625 by 0.1250"]


def test_a_missing_metric_or_baseline_fails_and_the_next_baseline_is_still_checked() -> None:
    # given a run without the candidate's AUC, then one without the loss baseline
    no_auc = {"base_auc": 0.5, "loss": 1.0, "base_loss": 1.0}
    no_base_loss = {"auc": 0.75, "base_auc": 0.5, "loss": 1.0}

    # when / then every failure is listed, in the order of the rules
    assert baseline_failures(no_auc, BASELINED) == [
        "auc nan cannot be compared with base_auc 0.5000",
        "loss 1.0000 does not beat base_loss 1.0000 by 0.0000",
    ]
    assert baseline_failures(no_base_loss, BASELINED) == ["loss 1.0000 cannot be compared with base_loss nan"]


@pytest.mark.parametrize(("version", "first"), [(None, "first model; "), ("3", "")])
def test_below_its_baselines_names_every_failure_and_first_model_only_without_a_champion(
    version: str | None, first: str
) -> None:
    # given a run below both baselines
    run = {"auc": 0.5, "base_auc": 0.5, "loss": 2.0, "base_loss": 1.0}

    # when / then
    assert decide(run, {"auc": 0.25} if version else None, version, BASELINED) == GateDecision(
        False, CHALLENGER,
        f"{first}below its own baselines: auc 0.5000 does not beat base_auc 0.5000 by 0.1250; "
        "loss 2.0000 does not beat base_loss 1.0000 by 0.0000")


def test_a_first_model_above_its_baselines_becomes_champion_saying_so() -> None:
    assert decide(BEATS, None, None, BASELINED) == GateDecision(
        True, CHAMPION, "no champion yet; candidate auc=0.7500; beats its baselines")
    # a reason for the (absent) champion not being comparable changes nothing
    assert decide(BEATS, None, None, BASELINED, not_comparable="no later rows") == GateDecision(
        True, CHAMPION, "no champion yet; candidate auc=0.7500; beats its baselines")


def test_a_first_model_with_no_finite_primary_stays_challenger() -> None:
    # given a gate without baselines (so only the primary metric speaks)
    gate = GateConfig(primary=AUC, guards=(), baselines=())

    # when / then
    assert decide({"auc": math.nan}, None, None, gate) == GateDecision(
        False, CHALLENGER, "candidate auc is not finite (nan)")


@pytest.mark.parametrize(
    ("champion", "expected"),
    [
        ({"auc": 0.5}, GateDecision(True, CHAMPION,
                                    "auc 0.7500 beats champion 0.5000 by +0.2500 (margin 0.1250); guards held")),
        ({"auc": 0.875}, GateDecision(False, CHALLENGER,
                                      "auc 0.7500 vs champion 0.8750: gain -0.1250 below required margin 0.1250")),
    ],
    ids=["beaten", "better"],
)
def test_above_its_baselines_a_scored_champion_decides(champion: dict, expected: GateDecision) -> None:
    assert decide(BEATS, champion, "3", BASELINED) == expected


def test_a_champion_that_could_not_be_scored_keeps_its_alias_with_the_reason() -> None:
    assert decide(BEATS, {}, "3", BASELINED) == GateDecision(
        False, CHALLENGER, "champion v3 could not be evaluated on this holdout; promote by hand if intended")


def test_a_champion_not_comparable_promotes_on_the_baselines_naming_why() -> None:
    # given a champion better than the candidate, but not comparable on this holdout
    decision = decide(BEATS, {"auc": 0.875}, "3", BASELINED, not_comparable="no rows after 2024-01-21")

    # then
    assert decision == GateDecision(
        True, CHAMPION,
        "champion v3 not comparable (no rows after 2024-01-21); candidate auc=0.7500 beats its baselines")


def test_an_empty_not_comparable_reason_compares_with_the_champion() -> None:
    assert decide(BEATS, {"auc": 0.875}, "3", BASELINED, not_comparable="").alias == CHALLENGER


def test_a_champion_not_comparable_does_not_promote_a_non_finite_candidate() -> None:
    # given a gate without baselines and a candidate whose primary metric is undefined
    gate = GateConfig(primary=AUC, guards=(), baselines=())

    # when / then
    assert decide({"auc": math.nan}, {}, "3", gate, not_comparable="no later rows") == GateDecision(
        False, CHALLENGER, "candidate auc is not finite (nan)")


# --------------------------------------------------------------------------- skew replay
@pytest.mark.parametrize("verdict", [None, {}, {"blocked": False, "reason": "orders_90d", "at": "t"}])
def test_no_replay_or_a_clean_one_holds_nothing(verdict: dict | None) -> None:
    assert skew_hold(verdict) is None


def test_a_blocking_replay_names_its_reason_its_time_and_the_fix() -> None:
    verdict = {"blocked": True, "reason": "orders_90d 50.0% above 1.0%", "at": "2024-01-21T00:00"}
    assert skew_hold(verdict) == f"orders_90d 50.0% above 1.0% (skew replay at 2024-01-21T00:00); {FIXED}"


@pytest.mark.parametrize("verdict", [{"blocked": True}, {"blocked": True, "reason": ""}])
def test_a_blocking_replay_without_reason_or_time_still_says_what_and_how_to_fix(verdict: dict) -> None:
    assert skew_hold(verdict) == f"training/serving skew above the threshold (skew replay at ?); {FIXED}"


@pytest.mark.parametrize("version", [None, "3"])
def test_skew_holds_back_a_promotion_keeping_the_reason(version: str | None) -> None:
    # given a candidate that would be promoted over a beaten (or absent) champion
    champion = {"auc": 0.5} if version else None
    promoted = decide(BEATS, champion, version, BASELINED)

    # when / then
    assert decide(BEATS, champion, version, BASELINED, skew="skewed") == GateDecision(
        False, CHALLENGER, f"{promoted.reason}; held back: skewed")
    assert decide(BEATS, champion, version, BASELINED, skew="") == promoted


def test_skew_leaves_a_challenger_as_it_was() -> None:
    assert decide(BEATS, {"auc": 0.875}, "3", BASELINED, skew="skewed") == GateDecision(
        False, CHALLENGER, "auc 0.7500 vs champion 0.8750: gain -0.1250 below required margin 0.1250")
