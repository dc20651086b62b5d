"""Decisions at their exact boundaries, with floats that are exactly representable.

A threshold test that uses 0.0125 against a 0.01 margin cannot tell ``<`` from ``<=``; these
tests put the value exactly on the threshold (0.125 = 2**-3, 0.1 taken from the same literal)
so that flipping a comparison fails them.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from monitoring.drift import ColumnDrift, DriftSummary
from monitoring.policy import MonitoringPolicy, decide
from monitoring.shares import PersonaShift
from training.config import GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, decide_promotion

MARGIN = 0.125  # 2**-3: 0.5 + MARGIN == 0.625 exactly, so the gain equals the margin exactly


@pytest.mark.parametrize(
    ("rule", "candidate", "champion"),
    [
        (MetricRule(metric="auc", higher_is_better=True, threshold=MARGIN), 0.625, 0.5),
        (MetricRule(metric="mae", higher_is_better=False, threshold=MARGIN), 0.375, 0.5),
        (MetricRule(metric="mae", higher_is_better=False, threshold=0.25, relative=True), 0.375, 0.5),
    ],
    ids=["higher-absolute", "lower-absolute", "lower-relative"],
)
def test_a_gain_exactly_equal_to_the_margin_promotes(rule: MetricRule, candidate: float, champion: float) -> None:
    # given a gain that equals the required margin bit for bit
    gate = GateConfig(primary=rule, guards=())
    assert abs(candidate - champion) == MARGIN

    # when
    decision = decide_promotion({rule.metric: candidate}, {rule.metric: champion}, gate)

    # then "at least the margin" holds
    assert (decision.promote, decision.alias) == (True, CHAMPION)


def test_a_gain_one_ulp_below_the_margin_does_not_promote() -> None:
    # given a gain one float step short of the margin
    gate = GateConfig(primary=MetricRule(metric="auc", higher_is_better=True, threshold=MARGIN), guards=())
    candidate = math.nextafter(0.625, 0.0)

    # when / then
    assert decide_promotion({"auc": candidate}, {"auc": 0.5}, gate).alias == CHALLENGER


def test_a_guard_loss_exactly_at_its_tolerance_is_allowed() -> None:
    # given a winning primary and a guard that regressed by exactly its tolerance
    gate = GateConfig(
        primary=MetricRule(metric="auc", higher_is_better=True, threshold=MARGIN),
        guards=(MetricRule(metric="brier", higher_is_better=False, threshold=MARGIN),),
    )

    # when
    at = decide_promotion({"auc": 0.75, "brier": 0.375}, {"auc": 0.5, "brier": 0.25}, gate)
    past = decide_promotion({"auc": 0.75, "brier": 0.5}, {"auc": 0.5, "brier": 0.25}, gate)

    # then a loss equal to the tolerance passes, a larger one blocks
    assert at.alias == CHAMPION
    assert past.alias == CHALLENGER


# --------------------------------------------------------------------------- retrain policy
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
PERSONA_LIMIT = 0.1
POLICY = MonitoringPolicy.model_validate({
    "min_rows": 100, "cooldown_hours": 24,
    "drift": {"share_threshold": 0.5, "key_features": ["recency_days"]},
    "predictions": {"thresholds": {"churn_probability": 0.15}, "persona_share_threshold": PERSONA_LIMIT},
})


def _calm() -> DriftSummary:
    columns = [ColumnDrift(f"f{i}", "feature", "numerical", "ok", 0.01, "wasserstein", 0.1, 0.0, 0.0)
               for i in range(4)]
    columns.append(ColumnDrift("recency_days", "feature", "numerical", "ok", 0.01, "wasserstein", 0.1, 0.0, 0.0))
    columns.append(ColumnDrift("churn_probability", "prediction", "numerical", "ok", 0.01, "wasserstein", 0.1,
                               0.0, 0.0))
    return DriftSummary(1000, 1000, tuple(columns))


def _shift(change: float) -> PersonaShift:
    shares = pd.DataFrame({"persona": ["a", "b"], "reference_share": [0.5, 0.5],
                           "current_share": [0.5 + change, 0.5 - change], "change": [change, -change]})
    return PersonaShift(shares, pd.DataFrame(), 0, None, change, "a")


def test_a_persona_share_change_exactly_at_the_threshold_triggers_a_retrain() -> None:
    # given a persona share that moved by exactly the 0.10 threshold (the same float)
    assert POLICY.predictions.persona_share_threshold == PERSONA_LIMIT

    # when
    at = decide(_calm(), POLICY, NOW, personas=_shift(PERSONA_LIMIT))
    below = decide(_calm(), POLICY, NOW, personas=_shift(0.0999))

    # then "at least the threshold" fires; just below does not
    assert at.retrain
    assert at.triggers == ("persona_share",)
    assert not below.retrain
