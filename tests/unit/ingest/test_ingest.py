"""Ingestion: contract validation, quarantine, idempotent append, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from typer.testing import CliRunner

from core.contract import TABLES
from core.errors import PersonaError
from ingest.parse import KIND_DTYPES, MAX_TEXT_CHARS
from ingest.read import read_table
from ingest.run import IngestReport, ingest_files
from ingest.validate import validate_table
from tests.unit.ingest.conftest import transactions, write_csv

if TYPE_CHECKING:
    from core.settings import Settings

GOOD_ROWS: dict[str, dict[str, str]] = {
    "transactions": {"customer_id": "1", "event_timestamp": "2024-03-01T10:00:00Z", "amount": "19.90",
                     "discount": "0.1", "returned": "no"},
    "sessions": {"customer_id": "1", "event_timestamp": "2024-03-01 10:00:00", "page_views": "4"},
    "reviews": {"customer_id": "1", "event_timestamp": "2024-03-01", "text": "Great shop", "rating": "5"},
    "customers": {"customer_id": "1", "signup_date": "2023-12-24"},
}








# --------------------------------------------------------------------------- validate_table
@pytest.mark.parametrize(
    ("table", "column", "value", "reason"),
    [
        ("transactions", "customer_id", "12a", "bad_customer_id"),
        ("transactions", "customer_id", "3.5", "bad_customer_id"),
        ("transactions", "customer_id", "", "bad_customer_id"),
        ("transactions", "customer_id", "99999999999999999999", "bad_customer_id"),
        ("transactions", "amount", "-3", "negative_amount"),
        ("transactions", "amount", "12,50", "bad_amount"),
        ("transactions", "amount", "", "bad_amount"),
        ("transactions", "event_timestamp", "not a date", "bad_timestamp"),
        ("transactions", "event_timestamp", "3000-01-01", "bad_timestamp"),
        ("transactions", "event_timestamp", "", "bad_timestamp"),
        ("transactions", "discount", "1.5", "out_of_range_discount"),
        ("transactions", "returned", "maybe", "bad_returned"),
        ("sessions", "page_views", "-1", "negative_page_views"),
        ("reviews", "text", "   ", "empty_text"),
        ("reviews", "text", "", "empty_text"),
        ("reviews", "rating", "0", "out_of_range_rating"),
        ("reviews", "rating", "9", "out_of_range_rating"),
        ("customers", "signup_date", "last tuesday", "bad_timestamp"),
    ],
)
def test_bad_row_is_quarantined_with_its_reason(table: str, column: str, value: str, reason: str) -> None:
    # given one good row and one row broken in a single column
    bad = {**GOOD_ROWS[table], column: value}
    frame = pd.DataFrame([GOOD_ROWS[table], bad])

    # when
    accepted, quarantined = validate_table(frame, TABLES[table])

    # then the good row passes, the bad one keeps its original value and gets the reason
    assert len(accepted) == 1
    assert quarantined["reason"].tolist() == [reason]
    assert quarantined[column].tolist() == [value]
    assert quarantined["source_row"].tolist() == [2]


def test_first_failing_rule_in_contract_order_is_the_reason() -> None:
    # given a row with a bad customer id, a bad timestamp and a negative amount
    frame = pd.DataFrame([{"customer_id": "x", "event_timestamp": "never", "amount": "-1"},
                          {"customer_id": "2", "event_timestamp": "never", "amount": "-1"}])

    # when
    _, quarantined = validate_table(frame, TABLES["transactions"])

    # then
    assert quarantined["reason"].tolist() == ["bad_customer_id", "bad_timestamp"]


def test_valid_values_are_normalized_to_contract_dtypes() -> None:
    # given messy but valid spellings
    frame = pd.DataFrame({
        "customer_id": [" 7 ", "8.0", "+9", "0010"],
        "event_timestamp": ["2024-01-05T10:00:00+02:00", "2024-01-05 08:00", "1704441600",
                            "2024-01-05 08:00:00 UTC"],
        "amount": ["1", " 2.5 ", "0", "1e2"],
        "returned": ["yes", "FALSE", "", "1"],
        "loyalty_tier": ["gold", "", "silver", "gold"],
    })

    # when
    accepted, quarantined = validate_table(frame, TABLES["transactions"])

    # then
    assert quarantined.empty
    assert accepted["customer_id"].tolist() == [7, 8, 9, 10]
    assert (accepted["event_timestamp"] == pd.Timestamp("2024-01-05 08:00", tz="UTC")).all()
    assert accepted["amount"].tolist() == [1.0, 2.5, 0.0, 100.0]
    assert accepted["returned"].tolist() == [True, False, pd.NA, True]
    assert accepted["loyalty_tier"].tolist() == ["gold", pd.NA, "silver", "gold"]
    for name, kind in {**TABLES["transactions"].required, **TABLES["transactions"].optional}.items():
        assert str(accepted[name].dtype) == str(pd.Series(dtype=KIND_DTYPES[kind]).dtype), name


def test_naive_timestamps_after_offset_ones_stay_utc() -> None:
    # given naive strings following offset strings (pandas alone shifts them: pandas#61389),
    # once in shapes Arrow parses and once with an impossible date that sends all to pandas
    stamps = ["2024-01-05T10:00:00+02:00", "2024-01-05 08:00:00", "2024-01-05T08:00",
              "2024-01-05 09:00:00+01:00"]
    frames = [pd.DataFrame({"customer_id": "1", "event_timestamp": stamps + extra, "amount": "1"})
              for extra in ([], ["2024-02-30 10:00:00"], ["2024-01-05 08:00:00.123456789"])]

    # when
    results = [validate_table(frame, TABLES["transactions"])[0] for frame in frames]

    # then every variant reads the four instants as 08:00 UTC
    eight = pd.Timestamp("2024-01-05 08:00", tz="UTC")
    for accepted in results:
        assert accepted["event_timestamp"].iloc[:4].tolist() == [eight] * 4
    assert len(results[1]) == 4
    assert results[2]["event_timestamp"].iloc[4] == pd.Timestamp("2024-01-05 08:00:00.123456789", tz="UTC")


def test_nanosecond_timestamps_with_and_without_offsets_go_through_pandas_unshifted() -> None:
    # given shapes Arrow does not take, so pandas parses all of them
    frame = pd.DataFrame({"customer_id": "1", "amount": "1", "event_timestamp": [
        "2024-01-05T10:00:00.000000001+02:00", "2024-01-05 08:00:00.000000001", "2024-01-05 08:00:00 UTC"]})

    # when
    accepted, _ = validate_table(frame, TABLES["transactions"])

    # then
    one_ns_past_eight = pd.Timestamp("2024-01-05 08:00:00.000000001", tz="UTC")
    expected = [one_ns_past_eight, one_ns_past_eight, pd.Timestamp("2024-01-05 08:00", tz="UTC")]
    assert accepted["event_timestamp"].tolist() == expected


def test_epoch_seconds_read_the_same_from_text_and_numbers() -> None:
    # given epoch seconds as CSV text and as parquet numbers
    as_text = pd.DataFrame({"customer_id": ["1", "2"], "event_timestamp": ["857476800", "1704441600.5"],
                            "amount": ["1", "2"]})
    as_numbers = as_text.assign(event_timestamp=[857476800, 1704441600.5])

    # when
    from_text, _ = validate_table(as_text, TABLES["transactions"])
    from_numbers, _ = validate_table(as_numbers, TABLES["transactions"])

    # then
    expected = [pd.Timestamp("1997-03-04 12:00", tz="UTC"), pd.Timestamp("2024-01-05 08:00:00.5", tz="UTC")]
    assert from_text["event_timestamp"].tolist() == expected
    assert from_numbers["event_timestamp"].tolist() == expected


def test_1997_log_is_accepted() -> None:
    # given a log from 1997, naive (UTC) and with an offset
    frame = pd.DataFrame({"customer_id": ["1", "2"], "event_timestamp": ["1997-03-04 12:00:00",
                                                                          "1997-12-31T23:30:00-05:00"],
                          "amount": ["10", "20"]})

    # when
    accepted, quarantined = validate_table(frame, TABLES["transactions"])

    # then
    assert quarantined.empty
    assert accepted["event_timestamp"].tolist() == [pd.Timestamp("1997-03-04 12:00", tz="UTC"),
                                                    pd.Timestamp("1998-01-01 04:30", tz="UTC")]


def test_parquet_timestamp_beyond_pandas_range_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    # given a parquet file whose microsecond timestamps include the year 3000
    stamps = pd.Series(np.array(["3000-01-01", "1997-01-01"], dtype="datetime64[us]"))
    path = tmp_path / "t.parquet"
    pd.DataFrame({"customer_id": [1, 2], "event_timestamp": stamps, "amount": [1.0, 2.0]}).to_parquet(path)

    # when
    accepted, quarantined = validate_table(read_table(path), TABLES["transactions"])

    # then
    assert quarantined["reason"].tolist() == ["bad_timestamp"]
    assert accepted["event_timestamp"].tolist() == [pd.Timestamp("1997-01-01", tz="UTC")]


def test_long_text_is_truncated_and_non_english_text_kept() -> None:
    # given a very long review and reviews in other scripts
    texts = ["x" * (MAX_TEXT_CHARS + 10), "Très bien, merci !", "とても良い店です", "ممتاز 👍"]
    frame = pd.DataFrame({"customer_id": ["1", "2", "3", "4"], "event_timestamp": ["2024-01-01"] * 4,
                          "text": texts})

    # when
    accepted, quarantined = validate_table(frame, TABLES["reviews"])

    # then
    assert quarantined.empty
    assert accepted["text"].str.len().tolist() == [MAX_TEXT_CHARS, *(len(t) for t in texts[1:])]
    assert accepted["text"].tolist()[1:] == texts[1:]


def test_identical_rows_in_one_file_are_both_kept_with_distinct_ids() -> None:
    # given two genuinely identical purchases
    frame = pd.DataFrame([GOOD_ROWS["transactions"]] * 2)

    # when
    accepted, _ = validate_table(frame, TABLES["transactions"])

    # then
    assert len(accepted) == 2
    assert accepted["_row_id"].nunique() == 2


def test_missing_required_column_raises() -> None:
    # given
    frame = pd.DataFrame({"customer_id": ["1"], "event_timestamp": ["2024-01-01"]})

    # when / then
    with pytest.raises(PersonaError, match="missing required column"):
        validate_table(frame, TABLES["transactions"])


def test_validate_table_does_not_modify_its_input() -> None:
    # given
    frame = pd.DataFrame([GOOD_ROWS["transactions"], {**GOOD_ROWS["transactions"], "amount": "-1"}])
    before = frame.copy()

    # when
    validate_table(frame, TABLES["transactions"])

    # then
    pd.testing.assert_frame_equal(frame, before)


MESSY = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["", " ", "12a", "1997-03-04", "3000-01-01", "2024-01-01T00:00:00+05:30", "nan", "-0",
                     "1e400", "NULL", "１２", "2024-02-30 10:00", "1700000000", "2024-01-05 08:00 UTC",
                     "9223372036854775807", "0.5", "yes"]),
    st.datetimes(timezones=st.none() | st.just(__import__("datetime").timezone.utc)),
)


@hypothesis_settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=data_frames(
        columns=[column(name, elements=MESSY, dtype=object)
                 for name in ("customer_id", "event_timestamp", "amount", "discount", "returned", "extra")],
        index=range_indexes(min_size=0, max_size=25),
    )
)
def test_every_row_is_either_accepted_or_quarantined(frame: pd.DataFrame) -> None:
    # given any messy frame (when)
    accepted, quarantined = validate_table(frame, TABLES["transactions"])

    # then nothing is lost and what is accepted honours the contract
    assert len(accepted) + len(quarantined) == len(frame)
    assert quarantined["reason"].notna().all()
    assert accepted["customer_id"].dtype == np.int64
    assert (accepted["amount"] >= 0).all()
    assert accepted["event_timestamp"].notna().all()
    assert ((accepted["discount"].isna()) | accepted["discount"].between(0, 1)).all()
    assert sorted(quarantined["source_row"]) == sorted(set(quarantined["source_row"]))


# --------------------------------------------------------------------------- reading files
def test_csv_and_parquet_give_the_same_rows(tmp_path: Path) -> None:
    # given the same transactions as CSV text and as typed parquet
    typed = pd.DataFrame({
        "customer_id": [1, 2, 2],
        "event_timestamp": pd.to_datetime(
            ["2024-01-01 10:00:00", "1997-05-06 00:00:00", "2024-02-29 23:59:59"], utc=True),
        "amount": [1.5, 0.0, 100.0],
        "order_id": [1001, 1002, 1003],
        "channel": ["web", "store", None],
    })
    typed.to_parquet(tmp_path / "t.parquet")
    typed.to_csv(tmp_path / "t.csv", index=False)

    # when
    from_csv, _ = validate_table(read_table(tmp_path / "t.csv"), TABLES["transactions"])
    from_parquet, _ = validate_table(read_table(tmp_path / "t.parquet"), TABLES["transactions"])

    # then
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_content_decides_the_format_when_the_suffix_is_odd(tmp_path: Path) -> None:
    # given a parquet file named .bin and a semicolon CSV named .dat
    pd.DataFrame({"customer_id": [1]}).to_parquet(tmp_path / "a.bin")
    (tmp_path / "b.dat").write_text("customer_id;amount\n1;2.5\n", encoding="utf-8")

    # when
    parquet, csv = read_table(tmp_path / "a.bin"), read_table(tmp_path / "b.dat")

    # then
    assert parquet["customer_id"].tolist() == [1]
    assert csv.to_dict("records") == [{"customer_id": "1", "amount": "2.5"}]


def test_csv_quirks_are_read_verbatim(tmp_path: Path) -> None:
    # given a BOM, a leading blank line, CRLF, a quoted value spanning lines and a padded header
    path = tmp_path / "reviews.csv"
    path.write_bytes(b'\xef\xbb\xbf\r\n customer_id ,text\r\n'
                     b'1,"line one\r\nline two, with comma"\r\n2,  \r\n')

    # when
    frame = read_table(path)

    # then
    assert frame.to_dict("records") == [{"customer_id": "1", "text": "line one\r\nline two, with comma"},
                                        {"customer_id": "2", "text": "  "}]


def test_a_row_longer_than_the_reader_block_is_read(tmp_path: Path) -> None:
    # given a review of 3 million characters (Arrow's CSV block is 1 MB)
    path = write_csv(tmp_path / "reviews.csv", [{"customer_id": "1", "event_timestamp": "2024-01-01",
                                                 "text": "ü" * 3_000_000}])

    # when
    accepted, _ = validate_table(read_table(path), TABLES["reviews"])

    # then
    assert accepted["text"].str.len().tolist() == [MAX_TEXT_CHARS]


def test_gzipped_csv_is_read(tmp_path: Path) -> None:
    # given
    import gzip

    path = tmp_path / "transactions.csv.gz"
    path.write_bytes(gzip.compress(b"customer_id,amount\n1,2.5\n"))

    # when / then
    assert read_table(path).to_dict("records") == [{"customer_id": "1", "amount": "2.5"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (bytes(range(256)) * 8, "not a CSV or parquet"),
        (b'[{"customer_id": 1, "amount": 2}]', "JSON"),
        (b"\xff\xfe" + "customer_id".encode("utf-16-le"), "UTF-16"),
        (b"customer_id,amount\n1,caf\xe9\n", "not UTF-8"),
        (b"a,b\n1,2\n3,4,5\n", "malformed CSV"),
    ],
)
def test_unreadable_content_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    # given
    path = tmp_path / "transactions.csv"
    path.write_bytes(content)

    # when / then
    with pytest.raises(PersonaError, match=message) as info:
        read_table(path)
    assert "transactions.csv" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_path_and_directory_are_clear_errors(tmp_path: Path) -> None:
    # given / when / then
    with pytest.raises(PersonaError, match="file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(PersonaError, match="is a directory"):
        read_table(tmp_path)


# --------------------------------------------------------------------------- ingest_files
def test_ingest_appends_good_rows_and_quarantines_bad_ones(settings: Settings, tmp_path: Path) -> None:
    # given 4 good rows and 2 bad ones
    rows = [*transactions(4), {"customer_id": "12a", "event_timestamp": "2024-01-01", "amount": "1"},
            {"customer_id": "5", "event_timestamp": "2024-01-01", "amount": "-2"}]
    path = write_csv(tmp_path / "transactions.csv", rows)
    now = pd.Timestamp("2025-06-01", tz="UTC")

    # when
    [report] = ingest_files(settings, {"transactions": path}, now=now)

    # then
    assert (report.rows_read, report.accepted, report.new_rows, report.quarantined) == (6, 4, 4, 2)
    assert report.accepted + report.quarantined == report.rows_read
    assert report.reasons == {"bad_customer_id": 1, "negative_amount": 1}
    raw = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    assert len(raw) == 4
    assert raw["customer_id"].dtype == np.int64
    assert str(raw["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    bad = pd.read_parquet(report.quarantine_path)
    assert report.quarantine_path == settings.quarantine_dir / "transactions.parquet"
    assert bad["reason"].tolist() == ["bad_customer_id", "negative_amount"]
    assert bad["source_file"].tolist() == [str(path)] * 2
    assert (bad["ingested_at"] == now).all()
    assert report.summary() == (
        f"transactions: read 6 · accepted 4 (new 4, already present 0) · quarantined 2 "
        f"(bad customer id 1, negative amount 1) -> {report.quarantine_path}"
    )


def test_reingesting_the_same_file_adds_nothing(settings: Settings, tmp_path: Path) -> None:
    # given a file with a duplicate row and a bad row, ingested once
    rows = [*transactions(3), transactions(1)[0], {"customer_id": "x", "event_timestamp": "2024-01-01",
                                                   "amount": "1"}]
    path = write_csv(tmp_path / "transactions.csv", rows)
    ingest_files(settings, {"transactions": path})

    # when
    [again] = ingest_files(settings, {"transactions": path})

    # then
    assert (again.accepted, again.new_rows, again.already_present) == (4, 0, 4)
    assert len(pd.read_parquet(settings.raw_dir / "transactions.parquet")) == 4
    assert len(pd.read_parquet(settings.quarantine_dir / "transactions.parquet")) == 1


def test_overlapping_export_adds_only_the_new_rows(settings: Settings, tmp_path: Path) -> None:
    # given an export of rows 0..5 and a later one of rows 3..9
    first = write_csv(tmp_path / "jan.csv", transactions(6))
    second = write_csv(tmp_path / "feb.csv", transactions(7, start=3))
    ingest_files(settings, {"transactions": first})

    # when
    [report] = ingest_files(settings, {"transactions": second})

    # then
    assert (report.new_rows, report.already_present) == (4, 3)
    raw = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    assert len(raw) == 10
    assert raw["_row_id"].is_unique


def test_parquet_export_of_already_ingested_csv_adds_nothing(settings: Settings, tmp_path: Path) -> None:
    # given a CSV ingested, and the same rows exported as typed parquet
    rows = pd.DataFrame(transactions(5))
    rows.to_csv(tmp_path / "t.csv", index=False)
    typed = rows.assign(customer_id=rows["customer_id"].astype(int), amount=rows["amount"].astype(float),
                        event_timestamp=pd.to_datetime(rows["event_timestamp"], utc=True))
    typed.to_parquet(tmp_path / "t.parquet")
    ingest_files(settings, {"transactions": tmp_path / "t.csv"})

    # when
    [report] = ingest_files(settings, {"transactions": tmp_path / "t.parquet"})

    # then
    assert (report.new_rows, report.already_present) == (0, 5)


def test_several_tables_in_one_call(settings: Settings, tmp_path: Path) -> None:
    # given
    files = {table: write_csv(tmp_path / f"{table}.csv", [row]) for table, row in GOOD_ROWS.items()}

    # when
    reports = ingest_files(settings, files)

    # then
    assert [r.table for r in reports] == list(GOOD_ROWS)
    assert all((r.rows_read, r.new_rows) == (1, 1) for r in reports)
    assert sorted(p.name for p in settings.raw_dir.iterdir()) == sorted(f"{t}.parquet" for t in GOOD_ROWS)


def test_extra_column_types_may_differ_between_runs(settings: Settings, tmp_path: Path) -> None:
    # given an extra column that is text in one export and a number in the next
    write_csv(tmp_path / "a.csv", [{**GOOD_ROWS["customers"], "tier": "gold"}])
    typed = pd.DataFrame({"customer_id": [2], "signup_date": ["2024-01-01"], "tier": [3]})
    typed.to_parquet(tmp_path / "b.pq")

    # when
    ingest_files(settings, {"customers": tmp_path / "a.csv"})
    ingest_files(settings, {"customers": tmp_path / "b.pq"})

    # then both runs are kept, the column as text
    raw = pd.read_parquet(settings.raw_dir / "customers.parquet")
    assert raw["tier"].tolist() == ["gold", "3"]
    assert raw["customer_id"].tolist() == [1, 2]


def test_long_review_truncation_is_counted_in_the_report(settings: Settings, tmp_path: Path) -> None:
    # given
    path = write_csv(tmp_path / "reviews.csv", [
        {"customer_id": "1", "event_timestamp": "2024-01-01", "text": "é" * (MAX_TEXT_CHARS + 1)},
        {"customer_id": "2", "event_timestamp": "2024-01-01", "text": "Sehr gut, danke"},
    ])

    # when
    [report] = ingest_files(settings, {"reviews": path})

    # then
    assert report.truncated == 1
    assert "1 text(s) truncated to 5,000 chars" in report.summary()
    raw = pd.read_parquet(settings.raw_dir / "reviews.parquet")
    assert raw["text"].str.len().tolist() == [MAX_TEXT_CHARS, len("Sehr gut, danke")]


def test_customers_use_signup_date_as_their_timestamp(settings: Settings, tmp_path: Path) -> None:
    # given
    path = write_csv(tmp_path / "customers.csv", [{"customer_id": "1", "signup_date": "1997-01-01",
                                                   "region": "north"},
                                                  {"customer_id": "2", "signup_date": "soon", "region": ""}])

    # when
    [report] = ingest_files(settings, {"customers": path})

    # then
    assert report.reasons == {"bad_timestamp": 1}
    raw = pd.read_parquet(settings.raw_dir / "customers.parquet")
    assert raw["signup_date"].tolist() == [pd.Timestamp("1997-01-01", tz="UTC")]
    assert raw["region"].tolist() == ["north"]


def test_missing_column_fails_before_anything_is_written(settings: Settings, tmp_path: Path) -> None:
    # given one good file and one lacking amount
    good = write_csv(tmp_path / "customers.csv", [GOOD_ROWS["customers"]])
    bad = write_csv(tmp_path / "transactions.csv", [{"customer_id": "1", "event_timestamp": "2024-01-01"}])

    # when / then
    with pytest.raises(PersonaError) as info:
        ingest_files(settings, {"customers": good, "transactions": bad})
    assert str(info.value).startswith(f"{bad}: missing required column(s) amount; "
                                      "expected customer_id, event_timestamp, amount")
    assert not settings.raw_dir.exists()


def test_header_only_file_is_an_error(settings: Settings, tmp_path: Path) -> None:
    # given
    path = tmp_path / "transactions.csv"
    path.write_text("customer_id,event_timestamp,amount\n", encoding="utf-8")

    # when / then
    with pytest.raises(PersonaError, match="no data rows"):
        ingest_files(settings, {"transactions": path})


def test_unknown_table_is_an_error(settings: Settings, tmp_path: Path) -> None:
    # given / when / then
    with pytest.raises(PersonaError, match="unknown table"):
        ingest_files(settings, {"orders": tmp_path / "orders.csv"})


def test_a_failed_write_leaves_the_stored_table_intact(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a stored table, then a write that crashes halfway
    ingest_files(settings, {"transactions": write_csv(tmp_path / "a.csv", transactions(3))})
    stored = settings.raw_dir / "transactions.parquet"
    before = stored.read_bytes()

    def crash(self: pd.DataFrame, path: Path, **_: object) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)

    # when
    with pytest.raises(PersonaError, match="disk full"):
        ingest_files(settings, {"transactions": write_csv(tmp_path / "b.csv", transactions(3, start=10))})

    # then the old file is untouched and no temp file is left behind
    assert stored.read_bytes() == before
    assert [p.name for p in settings.raw_dir.iterdir()] == ["transactions.parquet"]


def test_report_summary_without_quarantine() -> None:
    # given
    report = IngestReport("sessions", "s.csv", 1204, 1204, 1200, 4, 0, {}, None)

    # when / then
    assert report.summary() == ("sessions: read 1,204 · accepted 1,204 (new 1,200, already present 4) · "
                                "quarantined 0")


# --------------------------------------------------------------------------- CLI
def test_cli_missing_column_exits_1_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    from app.cli import app

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    path = write_csv(tmp_path / "transactions.csv", [{"customer_id": "1", "event_timestamp": "2024-01-01"}])

    # when
    result = CliRunner().invoke(app, ["ingest", "--transactions", str(path)])

    # then
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "missing required column(s) amount" in lines[0]
    assert "transactions.csv" in lines[0]


def test_cli_good_file_exits_0_with_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    from app.cli import app

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    path = write_csv(tmp_path / "transactions.csv", transactions(3))

    # when
    result = CliRunner().invoke(app, ["ingest", "--transactions", str(path)])

    # then
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ("transactions: read 3 · accepted 3 (new 3, already present 0) · "
                                     "quarantined 0")
    assert (tmp_path / "home" / "data" / "raw" / "transactions.parquet").exists()
