"""The promotion gate: a pure decision from the candidate's, its baselines' and the champion's metrics.

A candidate must first beat its own run's baselines on the holdout (logistic and RFM for
churn, a constant for value, a logistic or majority-class baseline for a custom target), by the
gate's margin, first model included; only then is it compared with the champion. The decision
is made here; the alias is moved (compare-and-set against the champion the gate
saw) by :func:`training.register.move`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from model.registry import CHALLENGER, CHAMPION
from training.config import BaselineRule, GateConfig, MetricRule

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class GateDecision:
    """The outcome of the gate.

    Attributes:
        promote: whether the candidate becomes ``champion``.
        alias: ``"champion"`` or ``"challenger"``.
        reason: one line a person can read in the alias history.
    """

    promote: bool
    alias: str
    reason: str


def _allowed_delta(rule: MetricRule, champion_value: float) -> float:
    return rule.threshold * abs(champion_value) if rule.relative else rule.threshold


def _improvement(rule: MetricRule, candidate: float, champion: float) -> float:
    """Positive when the candidate is better, in the metric's own units."""
    return candidate - champion if rule.higher_is_better else champion - candidate


def decide_promotion(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    config: GateConfig,
) -> GateDecision:
    """Decide whether a candidate replaces the champion.

    The candidate is promoted only if it beats the champion on the primary metric by at
    least the configured margin and no guard metric regresses by more than its tolerance.
    With no champion yet, a candidate with a finite primary metric is promoted.

    Args:
        candidate: the candidate's metrics on its holdout.
        champion: the current champion's metrics on the SAME holdout, or ``None``.
        config: the primary rule and guard rules.

    Returns:
        The decision with the alias to set and a one-line reason.

    Raises:
        ValueError: when the candidate lacks a metric that a rule needs.
    """
    primary = config.primary
    for rule in (primary, *config.guards):
        if rule.metric not in candidate:
            raise ValueError(f"candidate metrics lack {rule.metric!r}, needed by the promotion gate")
    cand_primary = float(candidate[primary.metric])
    if not math.isfinite(cand_primary):
        return GateDecision(False, CHALLENGER, f"candidate {primary.metric} is not finite ({cand_primary})")
    if champion is None:
        return GateDecision(True, CHAMPION, f"no champion yet; candidate {primary.metric}={cand_primary:.4f}")

    champ_primary = float(champion.get(primary.metric, float("nan")))
    if not math.isfinite(champ_primary):
        return GateDecision(
            True,
            CHAMPION,
            f"champion has no finite {primary.metric}; candidate {primary.metric}={cand_primary:.4f}",
        )
    gain = _improvement(primary, cand_primary, champ_primary)
    margin = _allowed_delta(primary, champ_primary)
    if gain < margin or (margin == 0 and gain <= 0):
        return GateDecision(
            False,
            CHALLENGER,
            f"{primary.metric} {cand_primary:.4f} vs champion {champ_primary:.4f}: "
            f"gain {gain:+.4f} below required margin {margin:.4f}",
        )

    regressions = []
    for rule in config.guards:
        if rule.metric not in champion or not math.isfinite(float(champion[rule.metric])):
            continue
        cand, champ = float(candidate[rule.metric]), float(champion[rule.metric])
        loss = -_improvement(rule, cand, champ)
        if not math.isfinite(cand) or loss > _allowed_delta(rule, champ):
            regressions.append(
                f"{rule.metric} {cand:.4f} vs {champ:.4f} (tolerance {_allowed_delta(rule, champ):.4f})"
            )
    if regressions:
        return GateDecision(
            False,
            CHALLENGER,
            f"{primary.metric} improved by {gain:+.4f} but guard regressed: " + "; ".join(regressions),
        )
    return GateDecision(
        True,
        CHAMPION,
        f"{primary.metric} {cand_primary:.4f} beats champion "
        f"{champ_primary:.4f} by {gain:+.4f} (margin {margin:.4f}); "
        f"guards held",
    )


def baseline_failures(candidate: Mapping[str, float], config: GateConfig) -> list[str]:
    """Baselines the candidate does not beat by the margin (empty: it beats them all).

    A baseline metric missing from the run, or not finite, cannot be beaten: that is a failure
    too, so a run that forgot its baselines never promotes silently. The candidate's gain must be
    at least the margin (exactly at the margin passes; with a zero margin it must be strictly
    better).
    """
    failures = []
    for rule in config.baselines:
        margin = config.primary.threshold if rule.threshold is None else rule.threshold
        cand = float(candidate.get(rule.metric, float("nan")))
        base = float(candidate.get(rule.baseline, float("nan")))
        if not (math.isfinite(cand) and math.isfinite(base)):
            failures.append(f"{rule.metric} {cand:.4f} cannot be compared with {rule.baseline} {base:.4f}")
            continue
        gain = _improvement(_as_metric_rule(rule), cand, base)
        if gain < margin or (margin == 0 and gain <= 0):
            failures.append(
                f"{rule.metric} {cand:.4f} does not beat {rule.baseline} {base:.4f} by {margin:.4f}"
            )
    return failures


def _as_metric_rule(rule: BaselineRule) -> MetricRule:
    return MetricRule(metric=rule.metric, higher_is_better=rule.higher_is_better)


def skew_hold(verdict: Mapping[str, object] | None) -> str | None:
    """Why promotion is held by the latest skew replay (None: no replay, or a clean one).

    Args:
        verdict: the replay's result as written by ``monitoring.skew.write_verdict``.
    """
    if not verdict or not verdict.get("blocked"):
        return None
    why = str(verdict.get("reason") or "training/serving skew above the threshold")
    return f"{why} (skew replay at {verdict.get('at', '?')}); fix the served features and rerun `persona skew`"


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    champion_version: str | None,
    config: GateConfig,
    not_comparable: str | None = None,
    skew: str | None = None,
) -> GateDecision:
    """The gate as a run applies it: baselines first, then a champion that could be scored.

    Args:
        candidate: the candidate's holdout metrics (with its baselines').
        champion: the champion's metrics on the same holdout (``None``: no champion; empty: not
            evaluable, e.g. unreadable or trained on features this holdout lacks).
        champion_version: the champion's version, ``None`` when there is none.
        config: the baseline, primary and guard rules.
        not_comparable: why the champion cannot be compared on this holdout (e.g. the holdout
            holds no row after the champion's own training window); the gate then decides on
            the candidate's baselines alone.
        skew: why served features differ from offline ones (:func:`skew_hold`); a candidate
            that would be promoted becomes ``challenger`` instead: it would be served the same
            skewed features.
    """
    decision = _decide(candidate, champion, champion_version, config, not_comparable)
    if skew and decision.promote:
        return GateDecision(False, CHALLENGER, f"{decision.reason}; held back: {skew}")
    return decision


def _decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    champion_version: str | None,
    config: GateConfig,
    not_comparable: str | None,
) -> GateDecision:
    failures = baseline_failures(candidate, config)
    if failures:
        first = "first model; " if champion_version is None else ""
        return GateDecision(False, CHALLENGER, f"{first}below its own baselines: " + "; ".join(failures))
    if champion_version is not None and not_comparable:
        decision = decide_promotion(candidate, None, config)
        if not decision.promote:
            return decision
        return GateDecision(
            True,
            CHAMPION,
            f"champion v{champion_version} not comparable ({not_comparable}); candidate "
            f"{config.primary.metric}={float(candidate[config.primary.metric]):.4f} beats its baselines",
        )
    decision = decide_promotion(candidate, champion or None, config)
    if champion_version is None and decision.promote:
        return GateDecision(True, CHAMPION, decision.reason + "; beats its baselines")
    if champion_version is not None and not champion:
        return GateDecision(
            False,
            CHALLENGER,
            f"champion v{champion_version} could not be evaluated on "
            "this holdout; promote by hand if intended",
        )
    return decision


def target_gate(target: str, task: str, base: GateConfig) -> GateConfig:
    """The gate for a custom target: ROC AUC (+ Brier guard) or MAE (+ RMSE guard).

    The baselines are the run's logistic regression (and the majority class, whose AUC is 0.5)
    for a classifier, and the training mean for a regression.
    """
    if task == "classification":
        return GateConfig(
            primary=MetricRule(metric=f"{target}_roc_auc", threshold=base.primary.threshold),
            guards=(
                MetricRule(metric=f"{target}_brier", higher_is_better=False, threshold=0.02, relative=True),
            ),
            baselines=(
                BaselineRule(metric=f"{target}_roc_auc", baseline=f"baseline_logreg_{target}_roc_auc"),
                BaselineRule(metric=f"{target}_roc_auc", baseline=f"baseline_majority_{target}_roc_auc"),
            ),
        )
    return GateConfig(
        primary=MetricRule(metric=f"{target}_mae", higher_is_better=False, threshold=0.01, relative=True),
        guards=(MetricRule(metric=f"{target}_rmse", higher_is_better=False, threshold=0.05, relative=True),),
        baselines=(
            BaselineRule(
                metric=f"{target}_mae", baseline=f"baseline_constant_{target}_mae", higher_is_better=False,
                threshold=0.0,
            ),
        ),
    )
