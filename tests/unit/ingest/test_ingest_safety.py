"""Ingest under hostile or clumsy input: bounds, broken CSV, upserts, unwritable homes, leftovers."""

from __future__ import annotations

import errno
import gzip
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from typer.testing import CliRunner

from core.contract import TABLES
from core.errors import PersonaError
from core.settings import Settings, load_settings
from ingest.run import ingest_files
from ingest.validate import validate_table

if TYPE_CHECKING:
    from pathlib import Path

HEADER = "customer_id,event_timestamp,amount"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    return load_settings()


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def stored(settings: Settings, table: str, kind: str = "raw") -> pd.DataFrame:
    folder = settings.raw_dir if kind == "raw" else settings.quarantine_dir
    return pd.read_parquet(folder / f"{table}.parquet")


# --------------------------------------------------------------------------- plausible bounds
def test_amounts_and_quantities_above_their_bounds_are_quarantined_naming_the_bound(
    settings: Settings, tmp_path: Path
) -> None:
    # given one plausible row, an amount of 1e16 and a quantity of 1e9 (defaults: 1e7 and 1e6)
    path = write(tmp_path / "t.csv", "customer_id,event_timestamp,amount,quantity\n"
                 "1,2024-01-01,9999999.5,2\n2,2024-01-01,1e16,1\n3,2024-01-01,5,1e9\n")

    # when
    [report] = ingest_files(settings, {"transactions": path})

    # then
    assert (report.accepted, report.quarantined) == (1, 2)
    assert report.reasons == {"amount_over_max_1e+07": 1, "quantity_over_max_1e+06": 1}
    assert stored(settings, "transactions")["customer_id"].tolist() == [1]
    assert "amount over max 1e+07 1" in report.summary()


def test_the_amount_bound_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lower bound from the environment
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERSONA_MAX_AMOUNT", "100")
    path = write(tmp_path / "t.csv", f"{HEADER}\n1,2024-01-01,100\n2,2024-01-01,100.5\n")

    # when
    [report] = ingest_files(load_settings(), {"transactions": path})

    # then
    assert report.reasons == {"amount_over_max_100": 1}


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-5", "lots"])
def test_an_implausible_bound_is_refused_in_one_line(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given / when / then
    monkeypatch.setenv("PERSONA_MAX_AMOUNT", value)
    with pytest.raises(PersonaError, match="PERSONA_MAX_AMOUNT"):
        load_settings()


# --------------------------------------------------------------------------- CSV robustness
def test_rows_swallowed_by_an_unterminated_quote_are_quarantined_not_stored_as_one(
    settings: Settings, tmp_path: Path
) -> None:
    # given a quote opened on row 1 that only closes on row 3, swallowing rows 2 and 3
    path = write(tmp_path / "t.csv", "customer_id,event_timestamp,amount,category\n"
                 '1,2024-01-01,5,"books\n2,2024-01-02,6,toys\n3,2024-01-03,7,games"\n4,2024-01-04,8,food\n')

    # when
    [report] = ingest_files(settings, {"transactions": path})

    # then the damaged row is quarantined with its reason (its cell keeps the swallowed rows)
    assert (report.rows_read, report.accepted, report.quarantined) == (2, 1, 1)
    assert report.reasons == {"unterminated_quote": 1}
    bad = stored(settings, "transactions", "quarantine")
    assert "2,2024-01-02,6,toys" in bad["category"].iloc[0]
    assert stored(settings, "transactions")["customer_id"].tolist() == [4]


def test_a_multiline_review_text_is_not_mistaken_for_swallowed_rows(settings: Settings, tmp_path: Path) -> None:
    # given a quoted review over two lines
    path = write(tmp_path / "r.csv", 'customer_id,event_timestamp,text\n1,2024-01-01,"Good.\nWould buy again"\n')

    # when
    [report] = ingest_files(settings, {"reviews": path})

    # then
    assert (report.accepted, report.quarantined) == (1, 0)


def test_an_unterminated_quote_running_to_the_end_is_quarantined(settings: Settings, tmp_path: Path) -> None:
    # given a quote opened on row 2 that never closes
    path = write(tmp_path / "t.csv", f'{HEADER}\n1,2024-01-01,5\n2,2024-01-02,"6\n3,2024-01-03,7\n')

    # when
    [report] = ingest_files(settings, {"transactions": path})

    # then
    assert (report.accepted, report.reasons) == (1, {"unterminated_quote": 1})
    assert stored(settings, "transactions", "quarantine")["source_row"].tolist() == [2]


@pytest.mark.parametrize("header", [HEADER, f"{HEADER},"], ids=["plain-header", "header-with-comma"])
def test_a_trailing_comma_on_every_row_does_not_shift_columns(
    header: str, settings: Settings, tmp_path: Path
) -> None:
    # given every data row ending in a delimiter
    path = write(tmp_path / "t.csv", f"{header}\n7,2024-01-01,5.5,\n8,2024-01-02,6,\n")

    # when
    [report] = ingest_files(settings, {"transactions": path})

    # then
    assert (report.accepted, report.quarantined) == (2, 0)
    raw = stored(settings, "transactions")
    assert raw["customer_id"].tolist() == [7, 8]
    assert raw["amount"].tolist() == [5.5, 6.0]
    assert not [c for c in raw.columns if not c.strip() or "trailing" in c]


def test_cr_only_line_endings_are_read(settings: Settings, tmp_path: Path) -> None:
    # given an old Mac-style file
    path = write(tmp_path / "t.csv", f"{HEADER}\r1,2024-01-01,5\r2,2024-01-02,6\r")

    # when
    [report] = ingest_files(settings, {"transactions": path})

    # then
    assert (report.rows_read, report.accepted) == (2, 2)
    assert stored(settings, "transactions")["amount"].tolist() == [5.0, 6.0]


@pytest.mark.parametrize("rows", [2, 100_000], ids=["cut-in-the-head", "cut-in-the-body"])
def test_a_truncated_gzip_is_one_line_naming_the_file(rows: int, settings: Settings, tmp_path: Path) -> None:
    # given a gzipped CSV cut in half
    body = HEADER + "\n" + "".join(f"{i},2024-01-01,{i}.5\n" for i in range(rows))
    whole = gzip.compress(body.encode())
    path = tmp_path / "t.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])

    # when / then
    with pytest.raises(PersonaError, match=r"t\.csv\.gz: truncated or corrupt gzip"):
        ingest_files(settings, {"transactions": path})


def test_cli_truncated_gzip_exits_1_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    from app.cli import app

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    whole = gzip.compress((HEADER + "\n" + "1,2024-01-01,5\n" * 50_000).encode())
    path = tmp_path / "t.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])

    # when
    result = CliRunner().invoke(app, ["ingest", "--transactions", str(path)])

    # then
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "truncated or corrupt gzip" in lines[0]


# --------------------------------------------------------------------------- compact dates
def test_an_8_digit_integer_timestamp_is_a_yyyymmdd_date_from_text_and_numbers() -> None:
    # given 20240105 as text and as a number, an impossible date, and real epoch seconds
    as_text = pd.DataFrame({"customer_id": ["1", "2", "3"], "event_timestamp": ["20240105", "20240230",
                                                                                "857476800"],
                            "amount": ["1", "2", "3"]})
    as_numbers = as_text.assign(event_timestamp=[20240105, 20240230, 857476800])

    for frame in (as_text, as_numbers):
        # when
        accepted, quarantined = validate_table(frame, TABLES["transactions"])

        # then
        assert accepted["event_timestamp"].tolist() == [pd.Timestamp("2024-01-05", tz="UTC"),
                                                        pd.Timestamp("1997-03-04 12:00", tz="UTC")]
        assert quarantined["reason"].tolist() == ["bad_timestamp"]


# --------------------------------------------------------------------------- customers upsert
def test_reingesting_changed_customers_updates_them(settings: Settings, tmp_path: Path) -> None:
    # given customers 1 and 2 stored, then a later file changing 1, repeating 2 and adding 3
    write(tmp_path / "a.csv", "customer_id,signup_date,tier,region\n1,2024-01-01,gold,north\n"
          "2,2024-01-02,silver,south\n")
    later = write(tmp_path / "b.csv", "customer_id,signup_date,tier\n1,2024-01-01,platinum\n"
                  "2,2024-01-02,silver\n3,2024-01-03,bronze\n")
    ingest_files(settings, {"customers": tmp_path / "a.csv"})

    # when
    [report] = ingest_files(settings, {"customers": later})

    # then the later file wins; a column it lacks keeps its stored value
    assert (report.new_rows, report.updated, report.already_present) == (1, 1, 1)
    assert "(new 1, updated 1, already present 1)" in report.summary()
    raw = stored(settings, "customers").sort_values("customer_id")
    assert raw["customer_id"].tolist() == [1, 2, 3]
    assert raw["tier"].tolist() == ["platinum", "silver", "bronze"]
    assert raw["region"].tolist()[:2] == ["north", "south"]


def test_reingesting_the_same_customers_adds_nothing(settings: Settings, tmp_path: Path) -> None:
    # given
    path = write(tmp_path / "c.csv", "customer_id,signup_date,tier\n1,2024-01-01,gold\n2,2024-01-02,\n")
    ingest_files(settings, {"customers": path})

    # when
    [report] = ingest_files(settings, {"customers": path})

    # then
    assert (report.new_rows, report.updated, report.already_present) == (0, 0, 2)
    assert len(stored(settings, "customers")) == 2


def test_a_repeated_bad_row_from_a_later_file_is_recorded_for_that_file(
    settings: Settings, tmp_path: Path
) -> None:
    # given the same bad row in two files
    body = f"{HEADER}\nx,2024-01-01,5\n"
    first, second = write(tmp_path / "jan.csv", body), write(tmp_path / "feb.csv", body)
    ingest_files(settings, {"transactions": first})

    # when
    ingest_files(settings, {"transactions": second})
    ingest_files(settings, {"transactions": second})

    # then one record per file, none twice
    bad = stored(settings, "transactions", "quarantine")
    assert sorted(bad["source_file"]) == sorted([str(first), str(second)])


# --------------------------------------------------------------------------- unwritable homes, leftovers
def test_disk_full_is_one_line(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a disk that is full
    def full(self: pd.DataFrame, path: Path, **_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    path = write(tmp_path / "t.csv", f"{HEADER}\n1,2024-01-01,5\n")

    # when / then
    with pytest.raises(PersonaError, match="No space left on device.*PERSONA_HOME") as info:
        ingest_files(settings, {"transactions": path})
    assert "\n" not in str(info.value)


def test_a_file_in_place_of_the_home_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a home that is a file (permissions do not stop root, a file does)
    home = write(tmp_path / "home", "not a directory")
    monkeypatch.setenv("PERSONA_HOME", str(home))
    path = write(tmp_path / "t.csv", f"{HEADER}\n1,2024-01-01,5\n")

    # when / then
    with pytest.raises(PersonaError, match="cannot write .*writable directory"):
        ingest_files(load_settings(), {"transactions": path})


def test_temp_files_left_by_a_killed_ingest_are_removed_by_the_next(settings: Settings, tmp_path: Path) -> None:
    # given the temp files a kill -9 left beside the raw store and the quarantine file
    leftovers = [settings.raw_dir / ".transactions.parquet.4242.deadbeef.tmp",
                 settings.quarantine_dir / ".transactions.parquet.4242.cafebabe.tmp"]
    for leftover in leftovers:
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"PAR1 half a file")
    other_table = settings.raw_dir / ".sessions.parquet.4242.deadbeef.tmp"
    other_table.write_bytes(b"PAR1")

    # when
    ingest_files(settings, {"transactions": write(tmp_path / "t.csv", f"{HEADER}\n1,2024-01-01,5\n")})

    # then this table's leftovers are gone; another table's are that table's writer's business
    assert not any(p.exists() for p in leftovers)
    assert other_table.exists()
