"""The retraining policy: file validation and the pure decision."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from core.errors import PersonaError
from monitoring.drift import ColumnDrift, DriftSummary
from monitoring.policy import DEFAULT_POLICY_PATH, MonitoringPolicy, decide, load_policy
from monitoring.quality import QualityCheck
from monitoring.shares import PersonaShift

if TYPE_CHECKING:
    from pathlib import Path

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
POLICY = MonitoringPolicy.model_validate({
    "min_rows": 100, "cooldown_hours": 24,
    "drift": {"share_threshold": 0.5, "key_features": ["recency_days"]},
    "predictions": {"thresholds": {"churn_probability": 0.15}, "persona_share_threshold": 0.1},
    "quality": {"metric": "roc_auc", "max_drop": 0.05, "min_rows": 50},
    "missing": {"max_increase": 0.2},
})


def col(name: str, status: str = "ok", role: str = "feature", score: float = 0.01,
        ref_missing: float = 0.0, cur_missing: float = 0.0, reason: str = "") -> ColumnDrift:
    """A column result; drifted ones score above the 0.1 threshold."""
    if status == "insufficient_data":
        return ColumnDrift(name, role, "numerical", status, reference_missing=ref_missing,
                           current_missing=cur_missing,
                           reason=reason or "all values missing in the current window")
    return ColumnDrift(name, role, "numerical", status, score if status == "ok" else 0.4, "wasserstein", 0.1,
                       ref_missing, cur_missing)


def summary(*columns: ColumnDrift, rows: int = 1000, reference_rows: int = 1000) -> DriftSummary:
    base = [c for c in columns]
    if not any(c.column == "churn_probability" for c in base):
        base.append(col("churn_probability", role="prediction"))
    return DriftSummary(reference_rows, rows, tuple(base))


def calm(n: int = 4) -> list[ColumnDrift]:
    return [col(f"f{i}") for i in range(n)] + [col("recency_days")]


def shift(change: float) -> PersonaShift:
    shares = pd.DataFrame({"persona": ["a", "b"], "reference_share": [0.5, 0.5],
                           "current_share": [0.5 + change, 0.5 - change], "change": [change, -change]})
    return PersonaShift(shares, pd.DataFrame(), 0, None, abs(change), "a")


# --------------------------------------------------------------------------- the file
def test_the_shipped_policy_file_is_valid() -> None:
    # given / when
    policy = load_policy(DEFAULT_POLICY_PATH)
    # then
    assert policy.drift.key_features
    assert 0 < policy.drift.share_threshold <= 1
    assert set(policy.predictions.thresholds) == {"churn_probability", "expected_spend"}


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("drift:\n  share_threshold: 1.5\n", "drift.share_threshold", "less than or equal to 1"),
        ("drift:\n  numerical: {method: kolmogorov, threshold: 0.1}\n", "drift.numerical",
         "unknown numerical"),
        ("drift:\n  column_thresholds: {age: -1}\n", "drift.column_thresholds", "positive"),
        ("drift:\n  key_features: [age]\n  ignore: [age]\n", "drift", "both a key feature and ignored"),
        ("quality:\n  metric: accuracy\n", "quality.metric", "unknown quality metric"),
        ("min_rows: many\n", "min_rows", "valid integer"),
        ("cooldown_hour: 3\n", "cooldown_hour", "Extra inputs are not permitted"),
        ("missing:\n  max_increase: 0\n", "missing.max_increase", "greater than 0"),
    ],
    ids=["share>1", "unknown-method", "negative-threshold", "key-and-ignored", "unknown-metric",
         "not-a-number", "typo-key", "zero-increase"],
)
def test_a_bad_policy_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    # given
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    # when
    with pytest.raises(PersonaError) as caught:
        load_policy(path)
    # then
    message = str(caught.value)
    assert str(path) in message
    assert f"key {key}:" in message
    assert reason in message


@pytest.mark.parametrize(("text", "reason"), [("drift: [unclosed\n", "not valid YAML"),
                                              ("- a\n- b\n", "mapping")])
def test_unreadable_policy_is_a_one_line_error(tmp_path: Path, text: str, reason: str) -> None:
    # given
    path = tmp_path / "p.yaml"
    path.write_text(text)
    # when / then
    with pytest.raises(PersonaError, match=reason):
        load_policy(path)


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="nope.yaml: file not found"):
        load_policy(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- the decision
def test_nothing_crossed_means_ok() -> None:
    # given
    facts = summary(*calm(), col("f9", "drift"))
    # when
    decision = decide(facts, POLICY, NOW, personas=shift(0.02))
    # then
    assert (decision.status, decision.retrain, decision.triggers) == ("ok", False, ())
    assert "1/6 features drifted" in decision.reasons[0]


def test_share_of_drifted_features_triggers_a_retrain() -> None:
    # given three of five features drifted (60% >= 50%)
    facts = summary(col("f0", "drift"), col("f1", "drift"), col("f2", "drift"), col("f3"),
                    col("recency_days"))
    # when
    decision = decide(facts, POLICY, NOW)
    # then
    assert decision.status == "retrain"
    assert decision.retrain
    assert decision.triggers == ("feature_share",)
    assert "3/5 features drifted (60% >= 50%)" in decision.reasons[0]


def test_a_key_feature_alone_triggers_a_retrain() -> None:
    # given
    facts = summary(*[col(f"f{i}") for i in range(9)], col("recency_days", "drift"))
    # when
    decision = decide(facts, POLICY, NOW)
    # then
    assert decision.retrain
    assert decision.triggers == ("key_feature:recency_days",)


def test_prediction_drift_triggers_a_retrain() -> None:
    facts = summary(*calm(), col("churn_probability", "drift", role="prediction"))
    decision = decide(facts, POLICY, NOW)
    assert decision.retrain
    assert decision.triggers == ("prediction:churn_probability",)


def test_persona_share_shift_triggers_at_its_threshold() -> None:
    # given / when
    below = decide(summary(*calm()), POLICY, NOW, personas=shift(0.05))
    above = decide(summary(*calm()), POLICY, NOW, personas=shift(0.12))
    # then
    assert not below.retrain
    assert above.retrain
    assert above.triggers == ("persona_share",)
    assert "'a'" in above.reasons[0]


def test_quality_drop_triggers_only_with_enough_matured_rows() -> None:
    # given the champion had ROC AUC 0.80 at training and 0.70 now
    dropped = QualityCheck(500, {"roc_auc": 0.70}, {"roc_auc": 0.80})
    too_few = QualityCheck(10, {"roc_auc": 0.50}, {"roc_auc": 0.80})
    held = QualityCheck(500, {"roc_auc": 0.78}, {"roc_auc": 0.80})
    # when
    decisions = [decide(summary(*calm()), POLICY, NOW, quality=q) for q in (dropped, too_few, held)]
    # then
    assert decisions[0].retrain
    assert decisions[0].triggers == ("quality",)
    assert "dropped by 0.100" in decisions[0].reasons[0]
    assert not decisions[1].retrain
    assert any("10 matured labelled rows" in n for n in decisions[1].notes)
    assert not decisions[2].retrain


def test_lower_is_better_quality_metrics_drop_upwards() -> None:
    # given a Brier score that rose from 0.15 to 0.25
    policy = POLICY.model_copy(update={"quality": POLICY.quality.model_copy(update={"metric": "brier"})})
    quality = QualityCheck(500, {"brier": 0.25}, {"brier": 0.15})
    # when
    decision = decide(summary(*calm()), policy, NOW, quality=quality)
    # then
    assert decision.triggers == ("quality",)


def test_cooldown_holds_a_second_retrain_and_then_lets_it_through() -> None:
    # given a retrain 3 hours ago and drift now
    facts = summary(*[col(f"f{i}") for i in range(4)], col("recency_days", "drift"))
    # when
    within = decide(facts, POLICY, NOW, last_retrain_at=NOW - dt.timedelta(hours=3))
    after = decide(facts, POLICY, NOW, last_retrain_at=NOW - dt.timedelta(hours=25))
    # then
    assert (within.status, within.retrain) == ("cooldown", False)
    assert within.triggers == ("key_feature:recency_days",)
    assert "next allowed at" in within.reasons[-1]
    assert (after.status, after.retrain) == ("retrain", True)


@pytest.mark.parametrize("rows", [0, 99])
def test_too_few_rows_is_insufficient_data_never_a_retrain(rows: int) -> None:
    # given everything drifted, but the window is tiny
    facts = summary(*[col(f"f{i}", "drift") for i in range(5)], rows=rows)
    # when
    decision = decide(facts, POLICY, NOW, personas=shift(0.4))
    # then
    assert (decision.status, decision.retrain) == ("insufficient_data", False)
    assert f"{rows} rows in the window" in decision.reasons[0]


def test_a_tiny_reference_is_insufficient_data() -> None:
    decision = decide(summary(*calm(), reference_rows=5), POLICY, NOW)
    assert decision.status == "insufficient_data"
    assert "5 reference rows" in decision.reasons[0]


def test_no_testable_feature_is_insufficient_data() -> None:
    # given every feature is all-NaN on both sides
    facts = summary(*[col(f"f{i}", "insufficient_data", ref_missing=1.0, cur_missing=1.0,
                          reason="all values missing on both sides") for i in range(3)])
    # when
    decision = decide(facts, POLICY, NOW)
    # then
    assert (decision.status, decision.retrain) == ("insufficient_data", False)
    assert decision.notes == ("insufficient data (all values missing on both sides): f0, f1, f2",)


def test_an_all_nan_column_never_causes_a_retrain() -> None:
    # given the key feature went all-NaN in the window and the rest drifted
    facts = summary(col("recency_days", "insufficient_data", ref_missing=0.05, cur_missing=1.0),
                    *[col(f"f{i}", "drift") for i in range(4)])
    # when
    decision = decide(facts, POLICY, NOW)
    # then the missing values block the retrain and say where
    assert (decision.status, decision.retrain) == ("data_quality", False)
    assert "recency_days 5%->100%" in decision.reasons[0]
    assert "feature_share" in decision.triggers
    assert decision.reasons[1].startswith("retrain held back")
    assert any("recency_days" in n and "insufficient data" in n for n in decision.notes)


def test_columns_untestable_on_both_sides_do_not_count_in_the_share() -> None:
    # given one drifted of two testable features, plus three untestable ones
    facts = summary(col("f0", "drift"), col("recency_days"),
                    *[col(f"t{i}", "insufficient_data", ref_missing=1.0, cur_missing=1.0) for i in range(3)])
    # when
    decision = decide(facts, POLICY, NOW)
    # then 1/2 = 50% crosses the threshold
    assert decision.triggers == ("feature_share",)
    assert "1/2 features drifted" in decision.reasons[0]


def test_ignored_features_neither_count_nor_block() -> None:
    # given a drifting, NaN-flooded feature that the policy ignores
    policy = POLICY.model_copy(update={"drift": POLICY.drift.model_copy(update={"ignore": ("tenure_days",)})})
    facts = summary(*calm(), col("tenure_days", "drift", cur_missing=0.9))
    # when
    decision = decide(facts, policy, NOW)
    # then
    assert (decision.status, decision.retrain) == ("ok", False)
