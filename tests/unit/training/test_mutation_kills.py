"""Exact outcomes of the pure decisions, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core import catalog
from core.contract import TABLES
from core.errors import PersonaError
from core.settings import load_settings
from ingest.run import ingest_files
from ingest.validate import validate_table
from monitoring.drift import ColumnDrift, DriftSummary
from monitoring.policy import DEFAULT_POLICY_PATH, Decision, MonitoringPolicy, decide, load_policy, quality_drop
from monitoring.quality import QualityCheck
from serving.predictor import INT64_MAX, INT64_MIN, InputError, ServingPredictor
from training.config import GateConfig, MetricRule
from training.gate import CHALLENGER, CHAMPION, GateDecision, decide_promotion
from training.labels import label_complete, latest_label_cutoff, make_labels, validate_label_frame

AUC = MetricRule(metric="auc", higher_is_better=True, threshold=0.125)
BRIER = MetricRule(metric="brier", higher_is_better=False, threshold=0.125)
LOSS = MetricRule(metric="loss", higher_is_better=False, threshold=0.5, relative=True)

if TYPE_CHECKING:
    from pathlib import Path


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


# --------------------------------------------------------------------------- serving request validation
class _Model:
    feature_columns = ("region", "orders_90d")
    string_columns = frozenset({"region"})

    def predict(self, frame):
        raise AssertionError("validation only")


def _predictor(max_batch: int = 3) -> ServingPredictor:
    return ServingPredictor(_Model(), version="7", max_batch=max_batch)


def _refusal(call, *args) -> tuple[str, str, int]:
    with pytest.raises(InputError) as refused:
        call(*args)
    return refused.value.field, str(refused.value), refused.value.status


def test_a_batch_of_exactly_the_maximum_passes_and_one_more_is_413() -> None:
    predictor = _predictor(max_batch=3)
    assert predictor.check_ids([1, 2, 3]).tolist() == [1, 2, 3]
    assert _refusal(predictor.check_ids, [1, 2, 3, 4]) == (
        "customer_ids", "customer_ids: holds 4 items; at most 3 per request", 413)
    assert _refusal(predictor.check_ids, []) == ("customer_ids", "customer_ids: must hold at least one item", 400)


def test_ids_at_the_int64_bounds_pass_and_beyond_them_are_named() -> None:
    predictor = _predictor()
    ids = predictor.check_ids([INT64_MIN, INT64_MAX])
    assert (ids.dtype, ids.tolist()) == (np.dtype(np.int64), [INT64_MIN, INT64_MAX])
    assert _refusal(predictor.check_ids, [1, INT64_MAX + 1]) == (
        "customer_ids[1]", f"customer_ids[1]: {INT64_MAX + 1} is outside the 64-bit integer range", 400)
    assert _refusal(predictor.check_ids, [INT64_MIN - 1]) == (
        "customer_ids[0]", f"customer_ids[0]: {INT64_MIN - 1} is outside the 64-bit integer range", 400)
    assert _refusal(predictor.check_ids, [1, True]) == (
        "customer_ids[1]", "customer_ids[1]: expected an integer, got True", 400)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("x", "rows[0]", "expected an object with 'features'"),
        ({"features": {}, "extra": 1}, "rows[0].extra", "unknown field; a row has 'customer_id' and 'features'"),
        ({"customer_id": True, "features": {}}, "rows[0].customer_id", "expected a 64-bit integer or null, got True"),
        ({"customer_id": INT64_MAX + 1, "features": {}}, "rows[0].customer_id",
         f"expected a 64-bit integer or null, got {INT64_MAX + 1}"),
        ({"customer_id": INT64_MIN - 1, "features": {}}, "rows[0].customer_id",
         f"expected a 64-bit integer or null, got {INT64_MIN - 1}"),
        ({"features": [1]}, "rows[0].features", "expected an object mapping feature name to value"),
        ({"features": {"region": "n", "orders_90d": 1, "x": 1}}, "rows[0].features.x",
         "unknown feature; model v7 expects region, orders_90d"),
        ({"features": {}}, "rows[0].features.region",
         "missing feature(s) region, orders_90d; send null for an unknown value"),
        ({"features": {"region": "n", "orders_90d": True}}, "rows[0].features.orders_90d",
         "expected a number or null, got True"),
        ({"features": {"region": "n", "orders_90d": "3"}}, "rows[0].features.orders_90d",
         "expected a number or null, got '3'"),
        ({"features": {"region": "n", "orders_90d": math.inf}}, "rows[0].features.orders_90d",
         "expected a finite number, got inf"),
        ({"features": {"region": 3, "orders_90d": 1}}, "rows[0].features.region", "expected a string or null, got 3"),
    ],
)
def test_each_bad_feature_row_is_refused_naming_its_field(row: object, field: str, message: str) -> None:
    assert _refusal(_predictor().feature_batch, [row]) == (field, f"{field}: {message}", 400)


def test_a_valid_feature_batch_keeps_values_ids_and_nulls_in_place() -> None:
    # given two rows, one with an id and one without, with a null of each kind
    rows = [{"customer_id": INT64_MAX, "features": {"region": "north", "orders_90d": 2}},
            {"features": {"region": None, "orders_90d": None}}]

    # when
    batch, ids = _predictor().feature_batch(rows)

    # then
    assert ids == [INT64_MAX, None]
    assert batch.ids.tolist() == [INT64_MAX, 0]
    assert batch.numeric[0].tolist() == [2.0]
    assert math.isnan(batch.numeric[1, 0])
    assert batch.strings[:, 0].tolist() == ["north", None]
    assert _refusal(_predictor(max_batch=1).feature_batch, rows) == (
        "rows", "rows: holds 2 items; at most 1 per request", 413)


# --------------------------------------------------------------------------- labels
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(PersonaError) as raised:
        call(*args, **kwargs)
    return str(raised.value)


def _labels(**columns: object) -> pd.DataFrame:
    base = {"customer_id": [1, 2], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
            "churned": [0, 1]}
    return pd.DataFrame({**base, **columns})


KNOWN = pd.Series([1, 2, 3])


def test_a_horizon_of_one_day_is_allowed_and_zero_is_named() -> None:
    entities = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0]})
    tx = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0 + pd.Timedelta(hours=12)], "amount": [5.0]})
    assert make_labels(entities, tx, horizon_days=1)["churned"].tolist() == [0]
    assert _error(make_labels, entities, tx, horizon_days=0) == (
        "horizon_days must be at least 1, got 0; set PERSONA_HORIZON_DAYS")


def test_label_inputs_name_their_table_and_the_problem() -> None:
    entities = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0]})
    tx = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0], "amount": ["x"]})
    assert _error(make_labels, entities.drop(columns="customer_id"), tx) == (
        "entities is missing column(s) customer_id; expected at least customer_id, event_timestamp")
    assert _error(make_labels, entities, tx.drop(columns="amount")) == (
        "transactions is missing column(s) amount; expected at least customer_id, event_timestamp, amount")
    assert _error(make_labels, entities.assign(event_timestamp=pd.NaT), tx) == (
        "entities have missing event_timestamp values; give every row a time")
    assert _error(make_labels, entities, tx) == (
        "transactions.amount has 1 missing or non-numeric value(s); run `persona ingest`")
    assert _error(label_complete, entities.drop(columns="event_timestamp"), T0) == (
        "entities is missing column(s) event_timestamp; expected at least event_timestamp")
    assert _error(latest_label_cutoff, tx.drop(columns="event_timestamp")) == (
        "transactions is missing column(s) event_timestamp; expected at least event_timestamp")
    assert _error(latest_label_cutoff, tx.assign(event_timestamp=pd.NaT)) == (
        "transactions have no timestamps, so no label window can be complete; ingest transactions")


def test_labels_without_transactions_are_all_churned() -> None:
    entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T0, T0]})
    empty = pd.DataFrame({"customer_id": pd.Series([], dtype="int64"),
                          "event_timestamp": pd.Series([], dtype="datetime64[ns, UTC]"), "amount": []})
    assert make_labels(entities, empty, horizon_days=30)["churned"].tolist() == [1, 1]


def test_label_completeness_is_a_named_boolean_series() -> None:
    entities = pd.DataFrame({"event_timestamp": [T0, T0 + pd.Timedelta(days=1)]}, index=[5, 6])
    complete = label_complete(entities, T0 + pd.Timedelta(days=30), horizon_days=30)
    assert complete.name == "label_complete"
    assert complete.to_dict() == {5: True, 6: False}


def test_the_latest_cutoff_reads_naive_times_as_utc() -> None:
    tx = pd.DataFrame({"event_timestamp": ["2024-01-01 00:00", "2024-03-01 12:00"]})
    assert latest_label_cutoff(tx) == pd.Timestamp("2024-03-01 12:00", tz="UTC")


@pytest.mark.parametrize(
    ("labels", "task", "message"),
    [
        (_labels(event_timestamp=[1, 2]), "classification",
         "labels.event_timestamp holds numbers, not dates; write ISO-8601 times such as 2024-05-01T00:00:00Z"),
        (_labels(event_timestamp=["2024-01-01", "soon"]), "classification",
         "labels.event_timestamp has 1 missing or unparseable value(s) (first: 'soon'); write ISO-8601 times "
         "such as 2024-05-01T00:00:00Z"),
        (_labels(customer_id=["1", "2.5"]), "classification",
         "labels.customer_id has 1 missing or non-integer value(s) (first: '2.5'); use the integer customer_id "
         "of your transactions"),
        (_labels(customer_id=[None, "x"]), "classification",
         "labels.customer_id has 2 missing or non-integer value(s) (first: None); use the integer customer_id "
         "of your transactions"),
        (_labels(churned=["yes", 1]), "classification",
         "labels.churned must hold 0/1 or True/False; 1 value(s) do not (first: 'yes')"),
        (_labels(churned=["yes", 1]), "regression",
         "labels.churned must hold numbers; 1 value(s) do not (first: 'yes')"),
        (_labels(churned=pd.Series([2, 3], dtype=object)), "classification",
         "labels.churned must be binary (0/1 or True/False) for classification; found 2, 3; recode the labels "
         "or train a regression target"),
        (_labels(churned=[1.0, math.inf]), "regression",
         "labels.churned has infinite value(s); replace them with finite numbers"),
        (_labels(customer_id=[8, 9]), "classification",
         "none of the 2 label rows belongs to a known customer (2 unknown customer_id(s), e.g. 8, 9); use the "
         "customer_id of your transactions"),
        (_labels().iloc[0:0], "classification",
         "labels have no rows; give at least one (customer_id, event_timestamp, label) row"),
        (_labels().drop(columns="churned"), "classification",
         "labels is missing column(s) churned; expected at least customer_id, event_timestamp, churned"),
    ],
)
def test_bad_labels_are_refused_in_one_exact_line(labels: pd.DataFrame, task: str, message: str) -> None:
    assert _error(validate_label_frame, labels, "churned", KNOWN, task) == message


def test_valid_labels_are_typed_and_unknown_customers_dropped_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    # given booleans, object numbers and one unknown customer among four distinct ones
    labels = pd.DataFrame({"customer_id": ["1", "2", "9", "8"],
                           "event_timestamp": pd.to_datetime(["2024-01-01"] * 4),
                           "churned": pd.Series([True, False, True, True], dtype=bool),
                           "mixed": pd.Series([1, 0.5, 2, 3], dtype=object)})

    # when
    kept = validate_label_frame(labels, "churned", KNOWN, "classification")
    regression = validate_label_frame(labels, "mixed", pd.Series(["1", "2", "9", "8"]), "regression")

    # then
    assert (kept.dropped_rows, kept.unknown_customers) == (2, 2)
    assert kept.frame["customer_id"].dtype == np.int64
    assert kept.frame["churned"].tolist() == [1, 0]
    assert kept.frame["churned"].dtype == np.int64
    assert str(kept.frame["event_timestamp"].dt.tz) == "UTC"
    assert regression.frame["mixed"].dtype == np.float64
    assert regression.frame["mixed"].tolist() == [1.0, 0.5, 2.0, 3.0]
    assert "dropped 2 label row(s) of 2 unknown customer_id(s) not found in the data" in caplog.text


# --------------------------------------------------------------------------- ingest counting and validation
def _tx(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [str(i + 1) for i in range(n)],
                         "event_timestamp": ["2024-01-01T00:00:00Z"] * n, "amount": ["1.5"] * n})


def test_an_unknown_table_is_named_with_every_known_one(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    assert _error(ingest_files, settings, {"bogus": tmp_path / "x.csv", "transactions": tmp_path / "x.csv"}) == (
        f"unknown table(s) bogus; expected one of {', '.join(TABLES)}")


def test_missing_required_columns_are_named_with_the_contract() -> None:
    spec = TABLES["transactions"]
    assert _error(validate_table, _tx().drop(columns=["amount", "customer_id"]), spec) == (
        f"transactions: missing required column(s) customer_id, amount; expected {', '.join(spec.required)}")


def test_validation_ignores_reserved_columns_and_the_callers_index() -> None:
    # given a frame with a foreign index, stale reserved columns and one bad row
    frame = _tx(3).assign(_row_id=7, reason="stale").set_axis([10, 20, 30])
    frame.loc[20, "amount"] = "-1"

    # when
    accepted, quarantined = validate_table(frame, TABLES["transactions"])

    # then rows are numbered by position, reasons are the validator's own, and ids are fresh
    assert accepted.index.tolist() == [0, 1]
    assert accepted["customer_id"].tolist() == [1, 3]
    assert accepted["_row_id"].nunique() == 2
    assert (accepted["_row_id"] != 7).all()
    assert quarantined["source_row"].tolist() == [2]
    assert quarantined["reason"].tolist() == ["negative_amount"]
    assert quarantined["reason"].dtype == "string"
    assert quarantined.index.tolist() == [0]


def test_the_ingest_report_and_quarantine_file_say_where_and_when(tmp_path: Path) -> None:
    # given a file with one bad row, ingested at a naive time (read as UTC)
    settings = load_settings(home=tmp_path / "home")
    frame = _tx(2)
    frame.loc[1, "amount"] = "-1"
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)

    # when
    [report] = ingest_files(settings, {"transactions": path}, now=pd.Timestamp("2024-02-01 10:00"))
    [later] = ingest_files(settings, {"transactions": path}, now=pd.Timestamp("2024-02-01 12:00", tz="Europe/Paris"))

    # then
    assert (report.source, report.raw_path) == (str(path), catalog.raw_table(settings, "transactions"))
    assert report.quarantine_path == catalog.quarantine_table(settings, "transactions")
    bad = pd.read_parquet(report.quarantine_path)
    assert bad["source_file"].tolist() == [str(path.absolute())]
    assert bad["ingested_at"].tolist() == [pd.Timestamp("2024-02-01 10:00", tz="UTC")]
    assert str(bad["ingested_at"].dtype) == "datetime64[ns, UTC]"
    assert later.quarantined == 1


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
