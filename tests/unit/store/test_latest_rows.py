"""The bounded-memory latest-row reader against a brute-force oracle (sort everything, keep the last)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.latest_rows import latest_rows, readable
from store.offline import parquet_span

T0 = pd.Timestamp("2001-03-01", tz="UTC")


def _frame(seed: int, rows: int, customers: int, null_created: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 20, rows)
    created = T0 + pd.to_timedelta(rng.integers(0, 3, rows), unit="h") + pd.to_timedelta(days, unit="D")
    frame = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, rows).astype("int64"),
        "event_timestamp": T0 + pd.to_timedelta(days, unit="D"),
        "created_timestamp": created,
        "value": rng.normal(size=rows).astype("float32"),
        "vector": [rng.normal(size=3).astype("float32") for _ in range(rows)],
    })
    # one (customer, event time, created time) each: which of two identical ranks wins is not defined
    frame = frame.drop_duplicates(["customer_id", "event_timestamp", "created_timestamp"]).reset_index(drop=True)
    if null_created:
        frame.loc[frame.index % 5 == 0, "created_timestamp"] = pd.NaT
    return frame


def _oracle(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    inside = frame[(frame["event_timestamp"] >= start) & (frame["event_timestamp"] <= end)]
    ranked = inside.assign(_c=inside["created_timestamp"].fillna(pd.Timestamp.min.tz_localize("UTC")))
    ranked = ranked.sort_values(["customer_id", "event_timestamp", "_c"], kind="stable")
    return ranked.groupby("customer_id").tail(1).drop(columns="_c")


def _read(path, start, end, chunk_rows: int = 7) -> pd.DataFrame:
    columns = ["customer_id", "value", "vector", "event_timestamp", "created_timestamp"]
    tables = list(latest_rows(path, "customer_id", "event_timestamp", "created_timestamp", columns,
                              start.to_pydatetime(), end.to_pydatetime(), chunk_rows=chunk_rows))
    assert all(t.num_rows <= chunk_rows for t in tables)
    return pa.concat_tables(tables).to_pandas()


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.sort_values("customer_id").reset_index(drop=True)
    want = want.sort_values("customer_id").reset_index(drop=True)[got.columns]
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    pd.testing.assert_series_equal(got["event_timestamp"], want["event_timestamp"], check_dtype=False)
    pd.testing.assert_series_equal(got["created_timestamp"], want["created_timestamp"], check_dtype=False)
    pd.testing.assert_series_equal(got["value"], want["value"])
    assert [list(v) for v in got["vector"]] == [list(v) for v in want["vector"]]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), first=st.integers(0, 19), span=st.integers(0, 20),
       row_group=st.integers(3, 60), null_created=st.booleans())
def test_the_latest_row_per_customer_is_the_one_the_brute_force_oracle_keeps(tmp_path_factory, seed, first, span,
                                                                             row_group, null_created):
    # given a source of many snapshots per customer in several small row groups
    frame = _frame(seed, 300, 25, null_created)
    path = tmp_path_factory.mktemp("src") / "source.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)
    start, end = T0 + pd.Timedelta(days=first), T0 + pd.Timedelta(days=first + span)

    # when the latest rows in [start, end] are read
    got = _read(path, start, end)

    # then they are exactly the oracle's (bounds inclusive, later created wins, null created loses)
    _same(got, _oracle(frame, start, end))


def test_a_folder_of_files_is_one_source(tmp_path):
    # given a source split over three files (customers' snapshots spread across them)
    frame = _frame(3, 400, 30)
    folder = tmp_path / "source"
    folder.mkdir()
    shuffled = frame.sample(frac=1, random_state=1)
    for i, part in enumerate(shuffled.iloc[j::3] for j in range(3)):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / f"part-{i}.parquet",
                       row_group_size=50)

    # when / then
    _same(_read(folder, T0, T0 + pd.Timedelta(days=30)), _oracle(frame, T0, T0 + pd.Timedelta(days=30)))


def test_an_interval_with_no_rows_yields_one_empty_table_with_the_columns(tmp_path):
    # given a source whose rows all lie before the interval
    frame = _frame(4, 50, 5)
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)

    # when
    got = _read(path, T0 + pd.Timedelta(days=100), T0 + pd.Timedelta(days=200))

    # then
    assert got.empty
    assert list(got.columns) == ["customer_id", "value", "vector", "event_timestamp", "created_timestamp"]


def test_a_source_it_cannot_read_is_left_to_feast(tmp_path):
    # given a source with string timestamps, and a missing one
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"customer_id": [1], "event_timestamp": ["2001-01-01"]}), path)

    # when / then
    assert not readable(path, "customer_id", ["event_timestamp"], ["customer_id", "event_timestamp"])
    assert not readable(tmp_path / "missing.parquet", "customer_id", ["event_timestamp"], ["customer_id"])


@pytest.mark.parametrize("statistics", [True, False])
def test_a_source_span_is_the_min_and_max_of_the_column_with_or_without_statistics(tmp_path, statistics):
    # given a source in time order in small row groups (the first and last hold the bounds), some rows
    # without a created time
    frame = _frame(5, 200, 20, null_created=True).sort_values("event_timestamp")
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=13,
                   write_statistics=statistics)

    # when / then
    for column in ("event_timestamp", "created_timestamp"):
        assert parquet_span(path, column) == (frame[column].min(), frame[column].max())


def test_wide_rows_are_handed_on_in_chunks_of_about_the_byte_budget(tmp_path):
    # given many customers' rows of three floats each, in row groups of 100 rows
    frame = _frame(6, 2_000, 1_500)
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=100)
    columns = ["customer_id", "value", "vector", "event_timestamp", "created_timestamp"]

    # when they are read with a byte budget far below the row budget
    tables = list(latest_rows(path, "customer_id", "event_timestamp", "created_timestamp", columns,
                              T0.to_pydatetime(), (T0 + pd.Timedelta(days=30)).to_pydatetime(),
                              chunk_rows=100_000, chunk_bytes=4_000))

    # then several tables come, none much above the budget, together every customer once
    assert len(tables) > 3
    assert max(t.nbytes for t in tables) < 4_000 + 100 * 60  # the budget, plus one batch at most
    assert sum(t.num_rows for t in tables) == frame["customer_id"].nunique()
