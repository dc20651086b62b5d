"""Labels: window edges, completeness, and bring-your-own label validation."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from core.errors import PersonaError
from training.labels import (
    LABEL_COLUMNS,
    label_complete,
    latest_label_cutoff,
    make_labels,
    validate_label_frame,
)

T = pd.Timestamp("2024-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def tx_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "amount"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["amount"] = frame["amount"].astype(float)
    return frame


# ---------------------------------------------------------------- make_labels


def test_label_window_excludes_t_and_includes_t_plus_horizon() -> None:
    # given: orders at t, t+1ns, t+H and t+H+1ns for customer 1; customer 2 only buys before t
    ns = pd.Timedelta(nanoseconds=1)
    tx = tx_frame(
        [
            (1, T, 1.0),
            (1, T + ns, 10.0),
            (1, T + 90 * DAY, 100.0),
            (1, T + 90 * DAY + ns, 1000.0),
            (2, T, 5.0),
        ]
    )
    entities = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [T, T], "segment": ["a", "b"]})
    # when
    labels = make_labels(entities, tx, horizon_days=90)
    # then
    assert list(labels.future_orders) == [2, 0]
    assert list(labels.future_spend) == [110.0, 0.0]
    assert list(labels.churned) == [0, 1]
    assert list(labels.segment) == ["a", "b"]
    assert set(LABEL_COLUMNS) <= set(labels.columns)
    assert labels.future_orders.dtype == np.int64
    assert labels.churned.dtype == np.int64


def test_labels_keep_index_and_order_and_handle_unknown_customers() -> None:
    # given: unsorted rows, one customer with no transactions at all, a 1997 timestamp
    old = pd.Timestamp("1997-06-01", tz="UTC")
    tx = tx_frame([(3, old + 5 * DAY, 2.5), (1, T + DAY, 4.0)])
    entities = pd.DataFrame({"customer_id": [1, 9, 3], "event_timestamp": [T, T, old]}, index=[30, 10, 20])
    # when
    labels = make_labels(entities, tx, horizon_days=30)
    # then
    assert list(labels.index) == [30, 10, 20]
    assert list(labels.future_orders) == [1, 0, 1]
    assert list(labels.future_spend) == [4.0, 0.0, 2.5]
    assert list(labels.churned) == [0, 1, 0]
    assert "future_orders" not in entities.columns  # input untouched


def test_labels_match_brute_force_on_random_data() -> None:
    # given: coarse timestamps so that window edges and duplicates occur
    rng = np.random.default_rng(3)
    base = pd.Timestamp("2010-01-01", tz="UTC")
    tx = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 6, 200),
            "event_timestamp": base + pd.to_timedelta(rng.integers(0, 60, 200) * 10, unit="D"),
            "amount": rng.integers(0, 9, 200).astype(float),
        }
    )
    entities = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 8, 50),
            "event_timestamp": base + pd.to_timedelta(rng.integers(0, 60, 50) * 10, unit="D"),
        }
    )
    # when
    labels = make_labels(entities, tx, horizon_days=90)
    # then
    for row in labels.itertuples():
        window = tx[
            (tx.customer_id == row.customer_id)
            & (tx.event_timestamp > row.event_timestamp)
            & (tx.event_timestamp <= row.event_timestamp + 90 * DAY)
        ]
        assert row.future_orders == len(window)
        assert row.future_spend == pytest.approx(window.amount.sum())
        assert row.churned == int(window.empty)


def test_make_labels_rejects_bad_horizon() -> None:
    # given
    entities = pd.DataFrame({"customer_id": [1], "event_timestamp": [T]})
    # when / then
    with pytest.raises(PersonaError, match="horizon_days"):
        make_labels(entities, tx_frame([]), horizon_days=0)


# ---------------------------------------------------------------- completeness


def test_label_complete_requires_whole_window_observed() -> None:
    # given
    entities = pd.DataFrame({"event_timestamp": [T - 91 * DAY, T - 90 * DAY, T - 89 * DAY]}, index=[7, 8, 9])
    # when
    complete = label_complete(entities, as_of=T, horizon_days=90)
    # then
    assert complete.to_dict() == {7: True, 8: True, 9: False}
    assert complete.dtype == bool


def test_latest_label_cutoff_is_last_transaction() -> None:
    # given
    tx = tx_frame([(1, T, 1.0), (2, T + 3 * DAY, 1.0), (1, T - DAY, 1.0)])
    # when
    cutoff = latest_label_cutoff(tx)
    # then
    assert cutoff == T + 3 * DAY
    assert cutoff.tz is not None


def test_latest_label_cutoff_without_transactions_fails() -> None:
    # when / then
    with pytest.raises(PersonaError, match="no timestamps"):
        latest_label_cutoff(tx_frame([]))


# ---------------------------------------------------------------- validate_label_frame

KNOWN = pd.Series([1, 2, 3])


def label_frame(**overrides: list) -> pd.DataFrame:
    columns = {
        "customer_id": [1, 2, 3],
        "event_timestamp": ["2024-01-01", "2024-01-02T10:00:00Z", "2024-01-03"],
        "churn": [0, 1, True],
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


def test_valid_classification_labels_are_normalized() -> None:
    # when
    result = validate_label_frame(label_frame(), "churn", KNOWN, "classification")
    # then
    assert result.dropped_rows == 0
    assert result.unknown_customers == 0
    assert list(result.frame.churn) == [0, 1, 1]
    assert result.frame.churn.dtype == np.int64
    assert result.frame.event_timestamp.dt.tz is not None
    assert result.frame.event_timestamp.iloc[1] == pd.Timestamp("2024-01-02 10:00", tz="UTC")


def test_valid_regression_labels_are_float() -> None:
    # when
    result = validate_label_frame(label_frame(spend=[1.5, 0, 3]), "spend", KNOWN, "regression")
    # then
    assert result.frame.spend.dtype == np.float64
    assert list(result.frame.spend) == [1.5, 0.0, 3.0]


@pytest.mark.parametrize("missing", ["customer_id", "event_timestamp", "churn"])
def test_missing_column_fails(missing: str) -> None:
    # given
    labels = label_frame().drop(columns=missing)
    # when / then
    with pytest.raises(PersonaError, match=missing):
        validate_label_frame(labels, "churn", KNOWN, "classification")


def test_unparseable_timestamp_fails() -> None:
    # given
    labels = label_frame(event_timestamp=["2024-01-01", "not a date", "2024-01-03"])
    # when / then
    with pytest.raises(PersonaError, match="unparseable.*'not a date'"):
        validate_label_frame(labels, "churn", KNOWN, "classification")


def test_numeric_timestamp_fails() -> None:
    # given
    labels = label_frame(event_timestamp=[1, 2, 3])
    # when / then
    with pytest.raises(PersonaError, match="numbers, not dates"):
        validate_label_frame(labels, "churn", KNOWN, "classification")


def test_non_binary_classification_label_fails() -> None:
    # given
    labels = label_frame(churn=[0, 1, 2])
    # when / then
    with pytest.raises(PersonaError, match="binary.*2"):
        validate_label_frame(labels, "churn", KNOWN, "classification")


def test_string_label_fails() -> None:
    # given
    labels = label_frame(churn=[0, "yes", 1])
    # when / then
    with pytest.raises(PersonaError, match="0/1 or True/False.*'yes'"):
        validate_label_frame(labels, "churn", KNOWN, "classification")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_nan_label_fails(task: str) -> None:
    # given
    labels = label_frame(churn=[0, np.nan, 1])
    # when / then
    with pytest.raises(PersonaError, match="1 missing value"):
        validate_label_frame(labels, "churn", KNOWN, task)


def test_unknown_customers_are_dropped_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    # given: two rows of unknown customer 99, one row of unknown 98
    labels = label_frame(
        customer_id=[1, 99, 99, 98],
        event_timestamp=["2024-01-01"] * 4,
        churn=[0, 1, 0, 1],
    )
    # when
    with caplog.at_level(logging.WARNING):
        result = validate_label_frame(labels, "churn", KNOWN, "classification")
    # then
    assert list(result.frame.customer_id) == [1]
    assert (result.dropped_rows, result.unknown_customers) == (3, 2)
    assert "dropped 3 label row(s) of 2 unknown customer_id(s)" in caplog.text


def test_no_known_customers_fails() -> None:
    # given
    labels = label_frame(customer_id=[7, 8, 9])
    # when / then
    with pytest.raises(PersonaError, match="none of the 3 label rows.*3 unknown"):
        validate_label_frame(labels, "churn", KNOWN, "classification")


def test_empty_labels_and_bad_task_fail() -> None:
    # when / then
    with pytest.raises(PersonaError, match="no rows"):
        validate_label_frame(label_frame().iloc[:0], "churn", KNOWN, "classification")
    with pytest.raises(PersonaError, match="task"):
        validate_label_frame(label_frame(), "churn", KNOWN, "ranking")  # type: ignore[arg-type]
