"""Exact outcomes of the column parsers, written against the mutants ``make mutate`` found in ``ingest/parse.py``.

Each test pins every row's value and masks (null, invalid, out of range, truncated) for inputs
on both sides of each rule: a bound applied at the bound itself, a regex that lets a shape
through, a branch for one input dtype that is skipped, an index that is lost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingest.parse import (
    KIND_DTYPES,
    MAX_TEXT_CHARS,
    PARSERS,
    Parsed,
    _range_parser,
    as_text,
    canonical_text,
    text_array,
)

UTC = "UTC"


def _parse(kind: str, values: list | pd.Series, dtype: str | None = None) -> tuple[list, list, list]:
    """(values, null rows, invalid rows) of one parser, on a frame slice whose index is not 0..n-1."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=dtype)
    series.index = pd.RangeIndex(10, 10 + len(series))
    parsed = PARSERS[kind](series)
    _check_shape(parsed, series, kind)
    return (parsed.values.tolist(), np.flatnonzero(parsed.null).tolist(), np.flatnonzero(parsed.invalid).tolist())


def _check_shape(parsed: Parsed, series: pd.Series, kind: str) -> None:
    """The values keep the input's index and take the kind's dtype; every mask is one bool per row."""
    assert parsed.values.index.equals(series.index)
    assert str(parsed.values.dtype) == str(pd.Series(dtype=KIND_DTYPES[kind]).dtype)
    masks = [parsed.null, parsed.invalid] + [m for m in (parsed.out_of_range, parsed.truncated) if m is not None]
    for mask in masks:
        assert isinstance(mask, np.ndarray)
        assert (mask.dtype, mask.shape) == (np.dtype(bool), (len(series),))


def _ts(*stamps: str) -> list:
    return [pd.NaT if s == "NaT" else pd.Timestamp(s, tz=UTC) for s in stamps]


# --------------------------------------------------------------------------- int
def test_integers_from_text_with_signs_zeros_a_whole_decimal_and_19_digits() -> None:
    raw = ["12", "12.0", "+7", "-3", "007", "12a", "3.5", "", "NA", " 5 ", "9223372036854775807",
           "9223372036854775808", "-9223372036854775808", "1234567890123456789.00", None, "1e3", "-9223372036854775809"]
    assert _parse("int", raw) == (
        [12, 12, 7, -3, 7, 0, 0, 0, 0, 5, 2**63 - 1, 0, -(2**63), 1234567890123456789, 0, 0, 0],
        [7, 8, 14],
        [5, 6, 11, 15, 16],
    )


def test_integers_from_an_integer_column_below_the_int64_edge() -> None:
    assert _parse("int", [1, None, -5], dtype="Int64") == ([1, 0, -5], [1], [])
    assert _parse("int", [9_200_000_000_000_000_000, 9_199_999_999_999_999_000, -9_200_000_000_000_000_000]) == (
        [0, 9_199_999_999_999_999_000, 0], [], [0, 2])


def test_integers_from_a_float_column_must_be_whole_and_finite() -> None:
    assert _parse("int", [3.0, 3.5, np.inf, np.nan, 9.2e18, -2.0, 9.1e18, -9.2e18]) == (
        [3, 0, 0, 0, 0, -2, 9_100_000_000_000_000_000, 0], [3], [1, 2, 4, 7])


@pytest.mark.parametrize(
    ("values", "dtype"),
    [([True, None, False], "boolean"), ([True, False, False], "bool"),
     (["2024-01-01", None, "2024-01-02"], "datetime64[ns]")],
)
def test_booleans_and_datetimes_are_not_ids(values: list, dtype: str) -> None:
    null = [i for i, v in enumerate(values) if v is None]
    assert _parse("int", values, dtype=dtype) == ([0, 0, 0], null, [i for i in range(3) if i not in null])


def test_mixed_python_objects_are_read_as_their_text() -> None:
    assert _parse("int", [1, "2", None, 4.5], dtype=object) == ([1, 2, 0, 0], [2], [3])


# --------------------------------------------------------------------------- timestamp
def test_timestamps_from_numbers_are_epoch_seconds_or_compact_dates_at_the_range_edges() -> None:
    raw = [20240105, 19000101, 19000100, 21001231, 21001232, 20240230, 20240105.5, 1.25, -1.5, 9.2e9, -9.2e9,
           9_199_999_999, np.nan, np.inf]
    assert _parse("timestamp", raw) == (
        _ts("2024-01-05", "1900-01-01", "1970-08-08 21:48:20", "2100-12-31", "1970-09-01 01:40:32", "NaT",
            "1970-08-23 06:15:05.5", "1970-01-01 00:00:01.25", "1969-12-31 23:59:58.5", "NaT", "NaT",
            "2261-07-15 11:33:19", "NaT", "NaT"),
        [12],
        [5, 9, 10, 13],
    )


def test_timestamps_from_text_numbers_follow_the_same_rules() -> None:
    raw = ["20240105", " 19000101 ", "19000100", "21001231", "21001232", "20240230", "+20240105", "1.25", "-1.5",
           "9200000000", "-9200000000", "-9199999999", "2024010", "", "nat"]
    assert _parse("timestamp", raw) == (
        _ts("2024-01-05", "1900-01-01", "1970-08-08 21:48:20", "2100-12-31", "1970-09-01 01:40:32", "NaT",
            "1970-08-23 06:15:05", "1970-01-01 00:00:01.25", "1969-12-31 23:59:58.5", "NaT", "NaT",
            "1678-06-18 12:26:41", "1970-01-24 10:13:30", "NaT", "NaT"),
        [13, 14],
        [5, 9, 10],
    )


def test_iso_text_with_and_without_offsets_naive_meaning_utc() -> None:
    raw = ["2024-01-05T10:00:00+01:00", "2024-01-05", "2024-01-05 10:00", "2024-01-05T10:00:00Z",
           "2024-01-05T10:00:00+0130", "2024-01-05T10:00:00.123456", "05/01/2024", "3000-01-01", "1600-01-01T00:00Z"]
    assert _parse("timestamp", raw) == (
        _ts("2024-01-05 09:00", "2024-01-05", "2024-01-05 10:00", "2024-01-05 10:00", "2024-01-05 08:30",
            "2024-01-05 10:00:00.123456", "NaT", "NaT", "NaT"),
        [],
        [6, 7, 8],
    )


def test_the_last_microseconds_pandas_can_hold_are_kept_and_the_next_ones_refused() -> None:
    raw = ["1677-09-21T00:12:43.145225", "1677-09-21T00:12:43.145224", "2262-04-11T23:47:16.854774",
           "2262-04-11T23:47:16.854775"]
    assert _parse("timestamp", raw) == (
        _ts("1677-09-21 00:12:43.145225", "NaT", "2262-04-11 23:47:16.854774", "NaT"), [], [1, 3])


def test_shapes_arrow_refuses_go_to_pandas_with_offsets_parsed_apart() -> None:
    # given nanosecond fractions, an hour-only time with an offset, UTC/GMT words and an impossible date
    raw = ["2024-01-05T10:00:00.1234567+01:00", "2024-01-05T10:00:00.1234567", "2024-01-05T10+01:00",
           "2024-01-05 10:00 UTC", "2024-01-05 10:00 gmt", "2024-02-30", "2024-01-06", "2024-02-30T10:00:00Z",
           "2024-01-05T10:00:00Z", "someday UTC"]

    # when / then a batch Arrow refuses is parsed by pandas; only the impossible dates are invalid
    assert _parse("timestamp", raw) == (
        _ts("2024-01-05 09:00:00.1234567", "2024-01-05 10:00:00.1234567", "2024-01-05 09:00", "2024-01-05 10:00",
            "2024-01-05 10:00", "NaT", "2024-01-06", "NaT", "2024-01-05 10:00", "NaT"),
        [],
        [5, 7, 9],
    )


def test_naive_text_after_an_offset_is_still_utc() -> None:
    # pandas parsing these together would apply the first offset to the naive one (pandas-dev/pandas#61389)
    raw = ["2024-01-05T10:00:00.1234567+05:00", "2024-01-05T10:00:00.1234567"]
    assert _parse("timestamp", raw)[0] == _ts("2024-01-05 05:00:00.1234567", "2024-01-05 10:00:00.1234567")


def test_timestamps_from_datetime_columns_are_converted_and_bounded() -> None:
    assert _parse("timestamp", ["2024-01-05 10:00", None], dtype="datetime64[ns]") == (
        _ts("2024-01-05 10:00", "NaT"), [1], [])
    aware = pd.Series(pd.to_datetime(["2024-01-05 10:00+01:00"]))
    assert _parse("timestamp", aware) == (_ts("2024-01-05 09:00"), [], [])
    seconds = pd.Series(np.array(["3000-01-01", "2024-01-01", "NaT"], dtype="datetime64[s]"))
    assert _parse("timestamp", seconds) == (_ts("NaT", "2024-01-01", "NaT"), [2], [0])


def test_epoch_seconds_alone_keep_their_fraction_to_the_nanosecond() -> None:
    # given numbers with no compact date among them (so no date is parsed at all)
    assert _parse("timestamp", [1.75, np.nan, -0.25]) == (
        _ts("1970-01-01 00:00:01.75", "NaT", "1969-12-31 23:59:59.75"), [1], [])
    assert _parse("timestamp", ["1.75", "19000100"])[0] == _ts("1970-01-01 00:00:01.75", "1970-08-08 21:48:20")


def test_epoch_seconds_beside_iso_text_are_not_parsed_again() -> None:
    assert _parse("timestamp", ["2024-01-05T10:00:00Z", "1.25", "2024-01-05"]) == (
        _ts("2024-01-05 10:00", "1970-01-01 00:00:01.25", "2024-01-05"), [], [])


def test_the_first_and_last_instants_pandas_holds_are_kept_from_a_datetime_column() -> None:
    stamps = pd.Series([pd.Timestamp.min, pd.Timestamp.max])
    assert _parse("timestamp", stamps) == (
        [pd.Timestamp.min.tz_localize(UTC), pd.Timestamp.max.tz_localize(UTC)], [], [])


def test_booleans_are_no_timestamps() -> None:
    assert _parse("timestamp", [True, None], dtype="boolean") == (_ts("NaT", "NaT"), [1], [0])


# --------------------------------------------------------------------------- numbers and ranges
def test_numbers_from_text_in_every_written_form() -> None:
    raw = ["0", "1", "-0.0", " .5 ", "1.", "5e-1", "+1E-1", "inf", "1e400", "x", "1,5", "", "nan", None]
    values, null, invalid = _parse("float>=0", raw)
    assert values[:7] == [0.0, 1.0, 0.0, 0.5, 1.0, 0.5, 0.1]
    assert not np.signbit(values[2])
    assert all(np.isnan(v) for v in values[7:])
    assert (null, invalid) == ([11, 12, 13], [7, 8, 9, 10])


@pytest.mark.parametrize(
    ("kind", "raw", "out"),
    [
        ("share", [0.0, 1.0, -0.001, 1.0001, 0.5, np.nan, np.inf], [2, 3]),
        ("rating", [1.0, 5.0, 0.99, 5.01, 3.0, np.nan, -np.inf], [2, 3]),
        ("float>=0", [0.0, -0.0, -1e-9, 1e300, 3.0, np.nan, np.inf], [2]),
    ],
)
def test_a_value_on_a_bound_is_in_range_and_nulls_and_invalid_values_are_not_out_of_range(
    kind: str, raw: list, out: list
) -> None:
    series = pd.Series(raw)
    parsed = PARSERS[kind](series)
    assert parsed.out_of_range is not None
    assert np.flatnonzero(parsed.out_of_range).tolist() == out
    assert (np.flatnonzero(parsed.null).tolist(), np.flatnonzero(parsed.invalid).tolist()) == ([5], [6])
    assert parsed.values.tolist()[:5] == [0.0 if v == 0 else v for v in raw[:5]]


@pytest.mark.parametrize(("values", "dtype"), [([True, None], "boolean"), (["2024-01-01", None], "datetime64[ns]")])
def test_booleans_and_datetimes_are_no_numbers(values: list, dtype: str) -> None:
    result, null, invalid = _parse("share", values, dtype=dtype)
    assert np.isnan(result).all()
    assert (null, invalid) == ([1], [0])
    assert not PARSERS["share"](pd.Series(values, dtype=dtype)).out_of_range.any()


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (1.0, 5.0), (0.0, np.inf)])
def test_a_range_parser_built_now_bounds_like_the_registered_one(low: float, high: float) -> None:
    # given the parser built at call time (PARSERS holds ones built at import)
    parse = _range_parser(low, high)
    top, above = (high, high + 0.001) if np.isfinite(high) else (1e300, -1.0)
    raw = pd.Series([low, top, low - 0.001, above, np.nan, np.inf, 0.5], index=pd.RangeIndex(10, 17))

    # when
    parsed = parse(raw)

    # then
    _check_shape(parsed, raw, "share")
    assert parsed.values.tolist()[:4] == [low, top, low - 0.001, above]
    assert np.flatnonzero(parsed.null).tolist() == [4]
    assert np.flatnonzero(parsed.invalid).tolist() == [5]
    assert parsed.out_of_range is not None
    assert np.flatnonzero(parsed.out_of_range).tolist() == [2, 3] + ([6] if low == 1.0 else [])


# --------------------------------------------------------------------------- bool
def test_booleans_from_words_numbers_and_boolean_columns() -> None:
    raw = [" Yes", "n", "T", "f", "1", "0.0", "1.0", "maybe", "", "NULL", None, "FALSE", "y", "no", "true", "0"]
    assert _parse("bool", raw) == (
        [True, False, True, False, True, False, True, pd.NA, pd.NA, pd.NA, pd.NA, False, True, False, True, False],
        [8, 9, 10],
        [7],
    )
    assert _parse("bool", [1, 0, 2]) == ([True, False, pd.NA], [], [2])
    assert _parse("bool", [True, None, False], dtype="boolean") == ([True, pd.NA, False], [1], [])
    assert _parse("bool", [True, False]) == ([True, False], [], [])


# --------------------------------------------------------------------------- text
def test_text_is_null_when_blank_and_cut_to_the_limit_in_characters() -> None:
    raw = ["  ", "", None, "a", "é" * (MAX_TEXT_CHARS + 1), "x" * MAX_TEXT_CHARS, " b ", " " * (MAX_TEXT_CHARS + 1)]
    series = pd.Series(raw, index=pd.RangeIndex(10, 18))
    parsed = PARSERS["text"](series)
    assert parsed.values.tolist() == ["  ", "", pd.NA, "a", "é" * MAX_TEXT_CHARS, "x" * MAX_TEXT_CHARS, " b ",
                                      " " * (MAX_TEXT_CHARS + 1)]
    assert parsed.values.index.equals(series.index)
    assert np.flatnonzero(parsed.null).tolist() == [0, 1, 2, 7]
    assert parsed.truncated is not None
    assert np.flatnonzero(parsed.truncated).tolist() == [4]
    assert not parsed.invalid.any()


def test_any_text_is_trimmed_with_empty_as_null_and_whole_floats_without_decimals() -> None:
    assert _parse("any", ["", " a ", None, "NA", "  "]) == ([pd.NA, "a", pd.NA, "NA", pd.NA], [0, 2, 4], [])
    assert _parse("any", [7.0, 7.5, np.nan, -0.0, 9.2e18, 9.1e18, np.inf, -3.0]) == (
        ["7", "7.5", pd.NA, "0", "9.2e+18", "9100000000000000000", "inf", "-3"], [2], [])
    assert _parse("any", [7, None], dtype="Int64") == (["7", pd.NA], [1], [])
    assert _parse("any", [7.0, None, 7.5], dtype="Float64") == (["7", pd.NA, "7.5"], [1], [])


def test_canonical_text_of_csv_and_parquet_values_agrees() -> None:
    csv, parquet = pd.Series(["7", " 12 ", ""]), pd.Series([7.0, 12.0, np.nan])
    assert canonical_text(csv).tolist() == canonical_text(parquet).tolist() == ["7", "12", pd.NA]


# --------------------------------------------------------------------------- text helpers
def test_as_text_keeps_a_clean_string_column_and_writes_others_as_str_with_none() -> None:
    clean, empty = pd.Series(["a", None], dtype=object), pd.Series([None, None], dtype=object)
    assert as_text(clean) is clean
    assert as_text(empty) is empty
    mixed = as_text(pd.Series([1, "a", None, 2.5], dtype=object))
    assert mixed.tolist() == ["1", "a", None, "2.5"]
    floats = as_text(pd.Series([1.5, np.nan]))
    assert (floats.tolist(), floats.dtype) == (["1.5", None], np.dtype(object))


@pytest.mark.parametrize("dtype", [object, "string", "string[pyarrow]"])
def test_text_array_is_one_large_string_array_with_nulls(dtype: object) -> None:
    arr = text_array(pd.Series(["a", None, "b"], dtype=dtype))
    assert isinstance(arr, pa.ChunkedArray)
    assert arr.type == pa.large_string()
    assert arr.to_pylist() == ["a", None, "b"]


def test_text_array_reads_nan_in_a_text_column_as_null() -> None:
    arr = text_array(pd.Series(["a", np.nan, "b"], dtype=object))
    assert (arr.type, arr.to_pylist()) == (pa.large_string(), ["a", None, "b"])
