"""Step 3 of a monitoring run: drift report, persona shift and the policy decision (pure: no files, no MLflow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitoring.drift import DriftRun, run_drift
from monitoring.policy import Decision, MonitoringPolicy, decide
from monitoring.quality import QualityCheck
from monitoring.shares import PersonaShift, persona_shift

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd


@dataclass
class Assessment:
    """What one window showed and what the policy made of it."""

    drift: DriftRun
    personas: PersonaShift | None
    quality: QualityCheck | None
    decision: Decision


def assess(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    policy: MonitoringPolicy,
    now: dt.datetime,
    last_retrain_at: dt.datetime | None = None,
    quality: QualityCheck | None = None,
    metadata: dict[str, str] | None = None,
    seed: int = 0,
) -> Assessment:
    """Drift report, persona shift and the policy decision for one window (no files, no MLflow).

    Args:
        reference: the champion's training reference (features and predictions).
        current: the current window (features and predictions).
        features: the model's feature columns.
        policy: the validated policy.
        now: decision time.
        last_retrain_at: start of the last retrain (cooldown).
        quality: quality on matured labels, if any.
        metadata: stored in the Evidently snapshot.
        seed: sampling seed.
    """
    drift = run_drift(reference, current, features, policy.drift, dict(policy.predictions.thresholds),
                      policy.predictions.method, metadata, seed, timestamp=now)
    personas = persona_shift(reference, current) if len(current) else None
    decision = decide(drift.summary, policy, now, last_retrain_at, personas, quality)
    return Assessment(drift, personas, quality, decision)
