"""Exact outcomes of ingest counting and validation, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from core import catalog
from core.contract import INGEST_TABLES, TABLES
from core.errors import PersonaError
from core.settings import load_settings
from ingest.run import ingest_files
from ingest.suppression import add_ids
from ingest.validate import validate_table

if TYPE_CHECKING:
    from pathlib import Path


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(PersonaError) as raised:
        call(*args, **kwargs)
    return str(raised.value)


# --------------------------------------------------------------------------- ingest counting and validation
def _tx(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [str(i + 1) for i in range(n)],
                         "event_timestamp": ["2024-01-01T00:00:00Z"] * n, "amount": ["1.5"] * n})


def test_an_unknown_table_is_named_with_every_known_one(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    files = {"bogus": tmp_path / "x.csv", "transactions": tmp_path / "x.csv", "nope": tmp_path / "y.csv"}
    assert _error(ingest_files, settings, files) == (
        f"unknown table(s) bogus, nope; expected one of {', '.join(INGEST_TABLES)}")


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


def test_progress_counts_every_step_of_every_file(tmp_path: Path) -> None:
    # given two files
    settings = load_settings(home=tmp_path / "home")
    _tx(2).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"customer_id": ["1"], "event_timestamp": ["2024-01-01"]}).to_csv(tmp_path / "s.csv", index=False)
    events: list[tuple[int, int, str]] = []

    # when
    ingest_files(settings, {"transactions": tmp_path / "t.csv", "sessions": tmp_path / "s.csv"},
                 on_progress=lambda done, total, what: events.append((done, total, what)))

    # then three steps per file, counted across files
    assert events == [
        (0, 6, "transactions: reading t.csv"), (1, 6, "transactions: validating 2 rows"),
        (2, 6, "transactions: writing"), (3, 6, "transactions: writing"),
        (3, 6, "sessions: reading s.csv"), (4, 6, "sessions: validating 1 rows"),
        (5, 6, "sessions: writing"), (6, 6, "sessions: writing"),
    ]


def test_a_file_whose_only_row_is_blank_has_no_data_rows(tmp_path: Path) -> None:
    # given a header followed by an empty line and a line of one space (the header check sees a row)
    settings = load_settings(home=tmp_path / "home")
    path = tmp_path / "t.csv"
    path.write_text("customer_id,event_timestamp,amount\n \n")

    # when / then
    assert _error(ingest_files, settings, {"transactions": path}) == f"{path}: has no data rows; nothing to ingest"


def test_a_parquet_export_indexed_by_customer_names_the_file_and_the_missing_column(tmp_path: Path) -> None:
    # given a parquet file whose customer_id was written as its index (the header check sees it)
    settings = load_settings(home=tmp_path / "home")
    path = tmp_path / "t.parquet"
    _tx(2).set_index("customer_id").to_parquet(path)

    # when / then
    assert _error(ingest_files, settings, {"transactions": path}) == (
        f"{path}: transactions: missing required column(s) customer_id; "
        f"expected {', '.join(TABLES['transactions'].required)}")


def test_rows_of_an_erased_customer_are_quarantined_as_erased(tmp_path: Path) -> None:
    # given customer 2 was erased before the file arrives
    settings = load_settings(home=tmp_path / "home")
    add_ids(settings, [2], pd.Timestamp("2024-01-01", tz="UTC"))
    path = tmp_path / "t.csv"
    _tx(3).to_csv(path, index=False)

    # when
    [report] = ingest_files(settings, {"transactions": path})

    # then
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 2, 1)
    assert report.reasons == {"erased": 1}
    assert pd.read_parquet(report.quarantine_path)["customer_id"].isna().all()
