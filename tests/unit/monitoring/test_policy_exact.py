"""Exact outcomes of the retrain policy, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

import pytest

from core.errors import PersonaError
from monitoring.drift import ColumnDrift, DriftSummary
from monitoring.policy import DEFAULT_POLICY_PATH, Decision, MonitoringPolicy, decide, load_policy, quality_drop
from monitoring.quality import QualityCheck

if TYPE_CHECKING:
    from pathlib import Path


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(PersonaError) as raised:
        call(*args, **kwargs)
    return str(raised.value)


# --------------------------------------------------------------------------- retrain policy
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
POLICY = MonitoringPolicy.model_validate({
    "min_rows": 100, "min_reference_rows": 200, "cooldown_hours": 24,
    "drift": {"share_threshold": 0.5, "key_features": ["f0"]},
    "predictions": {"thresholds": {"churn_probability": 0.15}},
    "quality": {"metric": "roc_auc", "max_drop": 0.125, "min_rows": 50},
    "missing": {"max_increase": 0.25},
})


def _col(name: str, status: str = "ok", role: str = "feature", ref_missing: float = 0.0,
         cur_missing: float = 0.0) -> ColumnDrift:
    return ColumnDrift(name, role, "numerical", status, 0.4 if status == "drift" else 0.01, "wasserstein", 0.1,
                       ref_missing, cur_missing)


def _facts(*columns: ColumnDrift, rows: int = 1000, reference_rows: int = 1000) -> DriftSummary:
    return DriftSummary(reference_rows, rows, (*columns, _col("churn_probability", role="prediction")))


CALM = (_col("f0"), _col("f1"))
DRIFTED = (_col("f0", "drift"), _col("f1"))


def test_exactly_the_minimum_rows_on_each_side_is_enough() -> None:
    # given windows of exactly min_rows and min_reference_rows
    decision = decide(_facts(*CALM, rows=100, reference_rows=200), POLICY, NOW)

    # then the policy decides (ok), and one row fewer on either side is insufficient, said exactly
    assert decision.status == "ok"
    assert decide(_facts(*CALM, rows=99), POLICY, NOW) == Decision(
        "insufficient_data", False, reasons=("99 rows in the window; the policy needs at least 100",))
    assert decide(_facts(*CALM, reference_rows=199), POLICY, NOW) == Decision(
        "insufficient_data", False, reasons=("199 reference rows; the policy needs at least 200",))


def test_no_testable_feature_is_insufficient_data_with_its_notes() -> None:
    # given features that are all untestable for one reason
    untestable = ColumnDrift("f0", "feature", "numerical", "insufficient_data", reason="all values missing")

    # when / then
    assert decide(_facts(untestable), POLICY, NOW) == Decision(
        "insufficient_data", False, reasons=("no feature has data on both sides to compare",),
        notes=("insufficient data (all values missing): f0",))


def test_a_missing_share_rise_exactly_at_the_limit_is_not_a_data_quality_stop() -> None:
    # given a rise of exactly max_increase (0.25 -> 0.5) and one just above it
    at = decide(_facts(_col("f0", ref_missing=0.25, cur_missing=0.5), _col("f1")), POLICY, NOW)
    above = decide(_facts(_col("f0", "drift", ref_missing=0.25, cur_missing=0.75), _col("f1")), POLICY, NOW)

    # then only a rise beyond the limit stops the retrain, naming the column and the held-back trigger
    assert at.status == "ok"
    assert above == Decision(
        "data_quality", False, ("feature_share", "key_feature:f0"),
        ("missing values jumped in f0 25%->75%; fix the feature pipeline before retraining",
         "retrain held back: 1/2 features drifted (50% >= 50%); key feature f0 drifted (wasserstein 0.4 vs "
         "threshold 0.1)"))


def test_a_quality_drop_exactly_at_the_limit_with_exactly_enough_rows_triggers() -> None:
    # given exactly min_rows matured rows and a drop of exactly max_drop (0.875 -> 0.75)
    at = QualityCheck(50, {"roc_auc": 0.75}, {"roc_auc": 0.875})
    too_few = QualityCheck(49, {"roc_auc": 0.5}, {"roc_auc": 0.875})

    # when
    decision = decide(_facts(*CALM), POLICY, NOW, quality=at)
    held = decide(_facts(*CALM), POLICY, NOW, quality=too_few)

    # then
    assert decision == Decision("retrain", True, ("quality",),
                                ("churn roc_auc dropped by 0.125 on 50 matured rows (threshold 0.125)",))
    assert held.status == "ok"
    assert held.notes == ("quality: 49 matured labelled rows (need 50 with both classes)",)


@pytest.mark.parametrize(
    ("now", "then", "expected"),
    [(0.75, 0.875, 0.125), (None, 0.875, None), (0.75, None, None), (math.nan, 0.875, None), (0.75, math.inf, None)],
)
def test_quality_drop_is_known_only_with_two_finite_values(now: float | None, then: float | None,
                                                         expected: float | None) -> None:
    current = {} if now is None else {"roc_auc": now}
    reference = {} if then is None else {"roc_auc": then}
    assert quality_drop(QualityCheck(100, current, reference), "roc_auc") == expected


def test_a_lower_is_better_quality_metric_drops_upwards() -> None:
    assert quality_drop(QualityCheck(100, {"brier": 0.375}, {"brier": 0.25}), "brier") == 0.125


def test_cooldown_ends_exactly_at_its_hour_and_zero_hours_means_none() -> None:
    # given a retrain exactly 24 h ago, one 23 h ago, and a policy without cooldown
    last = NOW - dt.timedelta(hours=24)
    no_cooldown = POLICY.model_copy(update={"cooldown_hours": 0.0})

    # when / then
    assert decide(_facts(*DRIFTED), POLICY, NOW, last_retrain_at=last) == Decision(
        "retrain", True, ("feature_share", "key_feature:f0"),
        ("1/2 features drifted (50% >= 50%)", "key feature f0 drifted (wasserstein 0.4 vs threshold 0.1)"))
    held = decide(_facts(*DRIFTED), POLICY, NOW, last_retrain_at=NOW - dt.timedelta(hours=23))
    assert (held.status, held.retrain) == ("cooldown", False)
    assert held.reasons[-1] == "cooldown: last retrain at 2026-02-28T13:00:00+00:00, next allowed at " \
                               "2026-03-01T13:00:00+00:00"
    assert held.notes == ()
    assert decide(_facts(*DRIFTED), no_cooldown, NOW, last_retrain_at=NOW).status == "retrain"


def test_an_untestable_prediction_and_a_missing_key_feature_are_noted() -> None:
    # given a prediction column that could not be tested and a key feature the model lacks
    policy = POLICY.model_copy(update={"drift": POLICY.drift.model_copy(update={"key_features": ["gone"]})})
    facts = DriftSummary(1000, 1000, (*CALM, ColumnDrift("churn_probability", "prediction", "numerical",
                                                         "insufficient_data", reason="no predictions")))

    # when / then
    assert decide(facts, policy, NOW).notes == (
        "insufficient data (no predictions): churn_probability",
        "key feature gone is not among the model's features",
        "prediction churn_probability could not be tested")


def test_a_policy_yaml_error_names_its_line_and_a_markless_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a file whose third line breaks the YAML
    path = tmp_path / "p.yaml"
    path.write_text("min_rows: 100\ncooldown_hours: 24\ndrift: [unclosed\n")

    # when / then the line is named, 1-based
    assert _error(load_policy, path) == f"monitoring policy {path}: not valid YAML (line 4); fix the syntax"

    # and a YAML error without a position says no line
    import monitoring.policy as policy_module

    def broken(text: str) -> object:
        raise policy_module.yaml.YAMLError("no mark")

    # (patched where the policy module looks it up)
    monkeypatch.setattr(policy_module.yaml, "safe_load", broken)
    assert _error(load_policy, str(path)) == f"monitoring policy {path}: not valid YAML; fix the syntax"


def test_the_default_policy_is_read_when_no_path_is_given() -> None:
    assert load_policy(None) == load_policy(DEFAULT_POLICY_PATH)
