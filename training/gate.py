"""The promotion gate: a pure decision from two sets of metrics on the same holdout.

The decision is made here; the alias is moved (compare-and-set against the champion the gate
saw) by :func:`training.register.move`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from model.registry import CHALLENGER, CHAMPION
from training.config import GateConfig, MetricRule

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


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    champion_version: str | None,
    config: GateConfig,
) -> GateDecision:
    """The gate as a run applies it: a champion that exists but could not be scored is not beaten.

    Args:
        candidate: the candidate's holdout metrics.
        champion: the champion's metrics on the same holdout (``None``: no champion; empty: not
            evaluable, e.g. unreadable or trained on features this holdout lacks).
        champion_version: the champion's version, ``None`` when there is none.
        config: the primary rule and guard rules.
    """
    decision = decide_promotion(candidate, champion or None, config)
    if champion_version is not None and not champion:
        return GateDecision(
            False,
            CHALLENGER,
            f"champion v{champion_version} could not be evaluated on "
            "this holdout; promote by hand if intended",
        )
    return decision


def target_gate(target: str, task: str, base: GateConfig) -> GateConfig:
    """The gate for a custom target: ROC AUC (+ Brier guard) or MAE (+ RMSE guard)."""
    if task == "classification":
        return GateConfig(
            primary=MetricRule(metric=f"{target}_roc_auc", threshold=base.primary.threshold),
            guards=(
                MetricRule(metric=f"{target}_brier", higher_is_better=False, threshold=0.02, relative=True),
            ),
        )
    return GateConfig(
        primary=MetricRule(metric=f"{target}_mae", higher_is_better=False, threshold=0.01, relative=True),
        guards=(MetricRule(metric=f"{target}_rmse", higher_is_better=False, threshold=0.05, relative=True),),
    )
