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
    assert _error(ingest_files, settings, {"bogus": tmp_path / "x.csv", "transactions": tmp_path / "x.csv"}) == (
        f"unknown table(s) bogus; expected one of {', '.join(INGEST_TABLES)}")


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
