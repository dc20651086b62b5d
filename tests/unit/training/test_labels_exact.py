"""Exact outcomes of label making and validation, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import PersonaError
from training.labels import label_complete, latest_label_cutoff, make_labels, validate_label_frame


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(PersonaError) as raised:
        call(*args, **kwargs)
    return str(raised.value)


# --------------------------------------------------------------------------- labels
T0 = pd.Timestamp("2024-01-01", tz="UTC")


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
