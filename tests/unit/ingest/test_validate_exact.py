"""Exact outcomes of :func:`ingest.validate.validate`: which rows, which reason, which columns.

Written against the mutants ``make mutate`` found alive in the validator: a bound that is never
applied or applied at the bound itself, reader damage that is forgotten, a reason that names the
wrong column, a truncation count that only sees the last text column, an index leaking into the
output as a column. Each test pins the whole outcome a caller sees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.contract import TABLES, TableSpec
from ingest.parse import MAX_TEXT_CHARS
from ingest.validate import validate


def _tx(amounts: list[str], ids: list[str] | None = None) -> pd.DataFrame:
    ids = ids or [str(i + 1) for i in range(len(amounts))]
    return pd.DataFrame({"customer_id": ids, "event_timestamp": ["2024-01-01T00:00:00Z"] * len(amounts),
                         "amount": amounts})


def test_a_value_at_its_bound_is_kept_and_one_above_is_quarantined_naming_column_and_bound() -> None:
    # given amounts at, above and below the bound, a negative one and one that does not parse
    frame = _tx(["100", "100.5", "-1", "x", "3"])

    # when
    result = validate(frame, TABLES["transactions"], max_values={"amount": 100.0, "not_a_column": 1.0})

    # then the first failing rule is the reason; the bound is named in the reason code
    assert result.accepted["amount"].tolist() == [100.0, 3.0]
    assert result.quarantined["reason"].tolist() == ["amount_over_max_100", "negative_amount", "bad_amount"]
    assert result.quarantined["source_row"].tolist() == [2, 3, 4]
    assert result.reasons == {"amount_over_max_100": 1, "negative_amount": 1, "bad_amount": 1}


def test_a_bound_on_an_integer_column_is_checked_beside_ids_that_do_not_parse() -> None:
    # given ids under, over and not a number, with a bound on the id column
    frame = _tx(["1", "1", "1"], ids=["2", "3", "x"])

    # when
    result = validate(frame, TABLES["transactions"], max_values={"customer_id": 2})

    # then
    assert result.accepted["customer_id"].tolist() == [2]
    assert result.quarantined["reason"].tolist() == ["customer_id_over_max_2", "bad_customer_id"]


def test_a_row_the_reader_found_damaged_keeps_that_reason_before_any_rule() -> None:
    # given the reader flagged row 2 (which also has a negative amount)
    frame = _tx(["1", "-1", "-2"])
    damaged = np.array([None, "unterminated_quote", None], dtype=object)

    # when
    result = validate(frame, TABLES["transactions"], damaged=damaged)

    # then the reader's reason wins on row 2, the rules decide row 3, and the caller's array is untouched
    assert result.accepted["customer_id"].tolist() == [1]
    assert result.quarantined["reason"].tolist() == ["unterminated_quote", "negative_amount"]
    assert result.reasons == {"unterminated_quote": 1, "negative_amount": 1}
    assert damaged.tolist() == [None, "unterminated_quote", None]


def test_a_timestamp_column_other_than_the_event_time_names_itself_in_its_reason() -> None:
    # given a table with a second, optional timestamp that does not parse
    spec = TableSpec(name="visits", required={"customer_id": "int", "event_timestamp": "timestamp"},
                     optional={"last_seen": "timestamp"})
    frame = pd.DataFrame({"customer_id": ["1", "2"], "event_timestamp": ["2024-01-01", "soon"],
                          "last_seen": ["later", "2024-01-01"]})

    # when
    result = validate(frame, spec)

    # then only the event time is "bad_timestamp"
    assert result.quarantined["reason"].tolist() == ["bad_last_seen", "bad_timestamp"]


def test_truncated_texts_are_counted_over_every_text_column() -> None:
    # given a long text in the first text column and a short one in the second
    spec = TableSpec(name="notes", required={"customer_id": "int", "event_timestamp": "timestamp", "text": "text"},
                     optional={"note": "text"})
    frame = pd.DataFrame({"customer_id": ["1", "2"], "event_timestamp": ["2024-01-01"] * 2,
                          "text": ["x" * (MAX_TEXT_CHARS + 1), "short"], "note": ["a", "b"]})

    # when
    result = validate(frame, spec)

    # then
    assert result.truncated == 1
    assert result.accepted["text"].str.len().tolist() == [MAX_TEXT_CHARS, 5]


def test_the_callers_index_never_becomes_a_column_and_source_rows_are_integers() -> None:
    # given a frame under a foreign index, with one bad row
    frame = _tx(["1", "-1", "2"]).set_axis([10, 20, 30])

    # when
    result = validate(frame, TABLES["transactions"])

    # then
    assert result.accepted.columns.tolist() == [*TABLES["transactions"].required, *TABLES["transactions"].optional,
                                                "_row_id"]
    assert result.quarantined.columns.tolist() == ["customer_id", "event_timestamp", "amount", "source_row",
                                                   "reason", "_row_id"]
    assert result.quarantined["source_row"].dtype == np.int64
    assert result.quarantined["source_row"].tolist() == [2]


def test_a_table_whose_columns_are_all_optional_and_absent_accepts_every_row() -> None:
    # given rows that carry none of the table's (optional) columns
    spec = TableSpec(name="notes", required={}, optional={"note": "text"})
    frame = pd.DataFrame({"other": ["a", "b", "c"]})

    # when
    result = validate(frame, spec)

    # then every row is accepted, the absent column empty, the extra column kept
    assert (len(result.accepted), len(result.quarantined)) == (3, 0)
    assert result.accepted["note"].isna().all()
    assert result.accepted["other"].tolist() == ["a", "b", "c"]
