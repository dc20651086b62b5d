"""Parse raw columns to their contract types, vectorized, with a mask of what went wrong per row.

One parser per contract column kind (see :mod:`core.contract`); each returns the column in its
normalized dtype (:data:`KIND_DTYPES`) plus null / invalid / out-of-range masks, and decides
nothing about rows: turning masks into reasons is :mod:`ingest.validate`'s job.

* ``int``: an integer, also written ``12.0``; anything else (``12a``, ``3.5``, empty) is invalid.
* ``timestamp``: ISO 8601 with or without an offset (naive means UTC; a trailing ``UTC``/``GMT``
  is understood), a compact date ``YYYYMMDD`` (an 8-digit integer from ``19000101`` to
  ``21001231``, text or number; e.g. ``20240105`` is 2024-01-05, and ``20241345`` is invalid),
  or other plain numbers as Unix epoch seconds; ambiguous forms such as ``05/01/2024`` are
  invalid. The compact-date rule shadows epoch seconds in that range (August 1970) only.
  Stored as ``datetime64[ns, UTC]``, so anything pandas cannot represent (before 1677-09-22 or
  after 2262-04-11, e.g. the year 3000) is invalid.
* ``float>=0``, ``share`` (0..1), ``rating`` (1..5): a finite number; outside the range is
  out of range.
* ``bool``: true/false, yes/no, t/f, y/n, 1/0; anything else is invalid.
* ``text``: empty or whitespace-only is null; longer than :data:`MAX_TEXT_CHARS` characters is
  truncated (and flagged).
* ``any``: kept as text.

Text is checked with Arrow compute kernels (C++), never row by row in Python.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_TEXT_CHARS = 5_000
"""Review texts longer than this many characters are truncated (and counted) on ingest."""

NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "nat"})
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})

KIND_DTYPES: dict[str, str] = {
    "int": "int64",
    "timestamp": "datetime64[ns, UTC]",
    "float>=0": "float64",
    "share": "float64",
    "rating": "float64",
    "bool": "boolean",
    "text": "string[pyarrow]",
    "any": "string[pyarrow]",
}
"""Normalized dtype of each contract column kind (text is Arrow-backed in memory; pandas reads it
back from parquet as ``string``)."""

# Epoch seconds representable as datetime64[ns] (pandas' bounds are about +-9.22e9 s).
_EPOCH_LIMIT_S = 9.2e9
_TS_MIN = pd.Timestamp.min.tz_localize("UTC")
_TS_MAX = pd.Timestamp.max.tz_localize("UTC")
_OFFSET_SUFFIX = r":\d{2}(?:[.,]\d+)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_UTC_WORD_SUFFIX = r"\s*(?:UTC|GMT)$"
_NULL_SET = pa.array(sorted(NULL_TOKENS), type=pa.large_string())
_TRUE_SET = pa.array(sorted(TRUE_WORDS), type=pa.large_string())
_FALSE_SET = pa.array(sorted(FALSE_WORDS), type=pa.large_string())
_ISO_NAIVE_RE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?$"
_ISO_AWARE_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})$"
_NAT = np.iinfo(np.int64).min
_INT_RE = r"^[+-]?0*\d{1,18}(?:\.0*)?$"
_LONG_INT_RE = r"^[+-]?0*\d{19}(?:\.0*)?$"
_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_EPOCH_RE = r"^[+-]?\d+(?:\.\d*)?$"
_COMPACT_DATE_RE = r"^\d{8}$"
COMPACT_DATE_RANGE = (19000101, 21001231)
"""8-digit integers in this range are dates ``YYYYMMDD``, not epoch seconds."""


@dataclass
class Parsed:
    """A column parsed to its normalized dtype plus row masks of what went wrong."""

    values: pd.Series
    null: np.ndarray
    invalid: np.ndarray
    out_of_range: np.ndarray | None = None
    truncated: np.ndarray | None = None


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow boolean result as a numpy mask (null -> False)."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def as_text(series: pd.Series) -> pd.Series:
    """Values as ``str`` (object dtype) with ``None`` for nulls, without copying clean string columns."""
    if series.dtype == object and ptypes.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series
    null = series.isna().to_numpy()
    out = series.astype(object).astype(str).astype(object)
    out[null] = None
    return out


def text_array(series: pd.Series) -> pa.ChunkedArray:
    """Values as an Arrow ``large_string`` array with nulls, for vectorized string kernels."""
    if isinstance(series.dtype, pd.StringDtype):
        arr = pa.array(series.array)
    else:
        arr = pa.array(as_text(series).to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    return arr.cast(pa.large_string())


def _to_string_series(arr: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), index=index)


def _trim_and_nulls(series: pd.Series) -> tuple[pa.ChunkedArray, np.ndarray]:
    """(whitespace-trimmed text, rows that are null or spell null: ``''``, ``NA``, ``null``...)."""
    trimmed = pc.utf8_trim_whitespace(text_array(series))
    null = _np(pc.is_null(trimmed)) | _np(pc.is_in(pc.utf8_lower(trimmed), value_set=_NULL_SET))
    return trimmed, null


def _take(arr: pa.ChunkedArray, mask: np.ndarray) -> pa.ChunkedArray:
    return pc.filter(arr, pa.array(mask))


def _is_bool(series: pd.Series) -> bool:
    return ptypes.is_bool_dtype(series.dtype) and not ptypes.is_object_dtype(series.dtype)


def _is_textual(series: pd.Series) -> bool:
    return not (ptypes.is_numeric_dtype(series.dtype) or ptypes.is_datetime64_any_dtype(series.dtype))


def _parse_int(series: pd.Series) -> Parsed:
    values = np.zeros(len(series), dtype=np.int64)
    if _is_textual(series):
        trimmed, null = _trim_and_nulls(series)
        ok = ~null & _np(pc.match_substring_regex(trimmed, _INT_RE))
        if ok.any():
            digits = pc.replace_substring_regex(_take(trimmed, ok), r"^\+|\.0*$", "")
            values[ok] = pc.cast(digits, pa.int64()).to_numpy()
        for i in np.flatnonzero(~null & _np(pc.match_substring_regex(trimmed, _LONG_INT_RE))):
            number = int(str(trimmed[int(i)]).split(".")[0])  # 19 digits: rare, may not fit int64
            if -(2**63) <= number < 2**63:
                values[i], ok[i] = number, True
        return Parsed(pd.Series(values, index=series.index), null, ~null & ~ok)
    null = series.isna().to_numpy()
    if _is_bool(series):
        return Parsed(pd.Series(values, index=series.index), null, ~null)
    if ptypes.is_integer_dtype(series.dtype):
        as_float = series.astype("float64").to_numpy(na_value=np.nan)
        ok = ~null & (np.abs(as_float) < 9.2e18)
        values[ok] = series[ok].astype("int64").to_numpy()
        return Parsed(pd.Series(values, index=series.index), null, ~null & ~ok)
    if ptypes.is_float_dtype(series.dtype):
        num = series.astype("float64").to_numpy(na_value=np.nan)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(num) & (num == np.floor(num)) & (np.abs(num) < 9.2e18)
        values[ok] = num[ok].astype(np.int64)
        return Parsed(pd.Series(values, index=series.index), null, ~null & ~ok)
    return Parsed(pd.Series(values, index=series.index), null, ~null)  # datetimes are not ids


def _epoch_nanos(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unix epoch seconds -> (int64 nanoseconds, ok); not representable -> NaT sentinel, ok False.

    Converted by hand rather than ``to_datetime(unit="s")``, which can raise a spurious
    FloatingPointError on arrays holding NaN (pandas-dev/pandas#58419).
    """
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(seconds) & (np.abs(seconds) < _EPOCH_LIMIT_S)
    nanos = np.full(len(seconds), _NAT, dtype=np.int64)
    valid = seconds[ok]
    whole = np.floor(valid)
    nanos[ok] = whole.astype(np.int64) * 1_000_000_000 + np.round((valid - whole) * 1e9).astype(np.int64)
    return nanos, ok


def _compact_dates(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows in :data:`COMPACT_DATE_RANGE` that are whole numbers, their dates as int64 ns).

    The nanoseconds are NaT's int value where the digits are no calendar date (``20240230``).
    """
    low, high = COMPACT_DATE_RANGE
    with np.errstate(invalid="ignore"):
        compact = np.isfinite(numbers) & (numbers >= low) & (numbers <= high) & (numbers == np.floor(numbers))
    digits = numbers[compact].astype(np.int64)
    parts = pd.DataFrame({"year": digits // 10000, "month": digits // 100 % 100, "day": digits % 100})
    dates = pd.to_datetime(parts, errors="coerce") if len(digits) else pd.Series([], dtype="datetime64[ns]")
    nanos = np.full(len(numbers), _NAT, dtype=np.int64)
    nanos[compact] = pd.DatetimeIndex(dates).as_unit("ns").asi8
    return compact, nanos


def _utc_series(nanos: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(nanos.view("datetime64[ns]"), index=index).dt.tz_localize("UTC")


def _arrow_iso_nanos(text: pa.ChunkedArray, aware: bool) -> np.ndarray | None:
    """Arrow's C++ ISO 8601 parser (microseconds); None if any string defeats it."""
    try:
        micros = pc.cast(text, pa.timestamp("us", tz="UTC" if aware else None))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    micros = micros.cast(pa.int64()).to_numpy().astype(np.int64)
    nanos = np.full(len(micros), _NAT, dtype=np.int64)
    fits = (micros > _TS_MIN.value // 1000) & (micros < _TS_MAX.value // 1000)
    nanos[fits] = micros[fits] * 1000
    return nanos


def _parse_timestamp(series: pd.Series) -> Parsed:
    index = series.index
    if _is_bool(series):
        null = series.isna().to_numpy()
        return Parsed(pd.Series(pd.NaT, index=index, dtype=KIND_DTYPES["timestamp"]), null, ~null)
    if ptypes.is_datetime64_any_dtype(series.dtype):
        null = series.isna().to_numpy()
        stamps = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        ok = ~null & ((stamps >= _TS_MIN) & (stamps <= _TS_MAX)).to_numpy(dtype=bool, na_value=False)
        values = stamps.where(pd.Series(ok, index=index)).dt.as_unit("ns")
        return Parsed(values, null, ~null & ~ok)
    if ptypes.is_numeric_dtype(series.dtype):
        null = series.isna().to_numpy()
        numbers = series.astype("float64").to_numpy(na_value=np.nan)
        nanos, ok = _epoch_nanos(numbers)
        compact, dates = _compact_dates(numbers)
        nanos[compact] = dates[compact]
        ok[compact] = dates[compact] != _NAT
        return Parsed(_utc_series(nanos, index), null, ~null & ~ok)
    trimmed, null = _trim_and_nulls(series)
    nanos = np.full(len(series), _NAT, dtype=np.int64)
    epoch_like = ~null & _np(pc.match_substring_regex(trimmed, _EPOCH_RE))
    eight_digits = epoch_like & _np(pc.match_substring_regex(trimmed, _COMPACT_DATE_RE))
    if eight_digits.any():
        compact, dates = _compact_dates(pc.cast(_take(trimmed, eight_digits), pa.float64()).to_numpy())
        rows = np.flatnonzero(eight_digits)[compact]
        nanos[rows] = dates[compact]
        epoch_like[rows] = False
    if epoch_like.any():
        nanos[epoch_like] = _epoch_nanos(pc.cast(_take(trimmed, epoch_like), pa.float64()).to_numpy())[0]
    pending = ~null & ~epoch_like
    for pattern, aware in ((_ISO_AWARE_RE, True), (_ISO_NAIVE_RE, False)):  # the common shapes, fast
        simple = pending & _np(pc.match_substring_regex(trimmed, pattern))
        parsed = _arrow_iso_nanos(_take(trimmed, simple), aware) if simple.any() else None
        if parsed is not None:
            nanos[simple] = parsed
            pending &= ~simple
    if pending.any():  # everything else, and a batch Arrow refused: pandas' ISO 8601 parser
        text = _take(trimmed, pending).to_pandas().set_axis(index[pending])
        nanos[pending] = pd.DatetimeIndex(_parse_iso(text)).asi8
    return Parsed(_utc_series(nanos, index), null, ~null & (nanos == _NAT))


def _parse_iso(text: pd.Series) -> pd.Series:
    """ISO 8601 strings -> UTC timestamps (naive strings mean UTC); NaT where unparseable.

    Strings with and without an offset are parsed apart: pandas 2.x parsing them together
    applies an earlier string's offset to later naive ones (pandas-dev/pandas#61389).
    """
    arrow = pa.array(text.to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
    aware = _np(pc.match_substring_regex(arrow, _OFFSET_SUFFIX))
    parts = []
    if aware.any():
        parts.append(_to_utc(text[aware], utc=True))
    if (~aware).any():
        naive = _to_utc(text[~aware], utc=False)
        if naive is None:  # an offset the pattern missed: parse one by one (rare, slow)
            naive = pd.concat([_to_utc(text[~aware].iloc[[i]], utc=True) for i in range(int((~aware).sum()))])
        parts.append(naive)
    values = pd.concat(parts).reindex(text.index)
    utc_word = _np(pc.match_substring_regex(arrow, _UTC_WORD_SUFFIX, ignore_case=True))
    retry = values.isna().to_numpy() & utc_word
    if retry.any():  # "2024-01-05 10:00 UTC": only these few leftovers pay for a second pass
        fixed = text[retry].str.replace(_UTC_WORD_SUFFIX, "+00:00", case=False, regex=True)
        values = values.where(~pd.Series(retry, index=text.index), _to_utc(fixed, utc=True))
    return values


def _to_utc(text: pd.Series, *, utc: bool) -> pd.Series | None:
    """Parse ISO strings as UTC; with ``utc=False`` return None unless every string was naive."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mixed offsets among "naive" strings
        parsed = pd.to_datetime(text, format="ISO8601", utc=utc, errors="coerce")
    if not ptypes.is_datetime64_any_dtype(parsed.dtype):
        return None
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize("UTC")
    elif not utc:
        return None
    return parsed.dt.as_unit("ns")


def _parse_number(series: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """(float values, null, invalid) for any numeric-ish column."""
    if _is_textual(series):
        trimmed, null = _trim_and_nulls(series)
        numeric = ~null & _np(pc.match_substring_regex(trimmed, _NUMBER_RE))
        num = np.full(len(series), np.nan)
        num[numeric] = pc.cast(_take(trimmed, numeric), pa.float64()).to_numpy()
    else:
        null = series.isna().to_numpy()
        if _is_bool(series) or ptypes.is_datetime64_any_dtype(series.dtype):
            return pd.Series(np.nan, index=series.index), null, ~null
        num = series.astype("float64").to_numpy(na_value=np.nan)
    with np.errstate(invalid="ignore"):
        invalid = ~null & ~np.isfinite(num)
    num = np.where(null | invalid, np.nan, num) + 0.0  # + 0.0 turns -0.0 into 0.0
    return pd.Series(num, index=series.index), null, invalid


def _range_parser(low: float, high: float) -> Callable[[pd.Series], Parsed]:
    def parse(series: pd.Series) -> Parsed:
        values, null, invalid = _parse_number(series)
        num = values.to_numpy()
        with np.errstate(invalid="ignore"):
            out = ~null & ~invalid & ((num < low) | (num > high))
        return Parsed(values, null, invalid, out_of_range=out)

    return parse


def _parse_bool(series: pd.Series) -> Parsed:
    if _is_bool(series):
        return Parsed(series.astype("boolean"), series.isna().to_numpy(), np.zeros(len(series), bool))
    trimmed, null = _trim_and_nulls(series)
    lower = pc.utf8_lower(trimmed)
    true, false = _np(pc.is_in(lower, value_set=_TRUE_SET)), _np(pc.is_in(lower, value_set=_FALSE_SET))
    values = pd.arrays.BooleanArray(true, ~(true | false))
    return Parsed(pd.Series(values, index=series.index), null, ~null & ~(true | false))


def _parse_text(series: pd.Series) -> Parsed:
    arr = text_array(series)
    blank = _np(pc.is_null(arr)) | _np(pc.equal(pc.utf8_trim_whitespace(arr), ""))
    too_long = ~blank & _np(pc.greater(pc.utf8_length(arr), MAX_TEXT_CHARS))
    if too_long.any():
        cut = pc.utf8_slice_codeunits(arr, 0, MAX_TEXT_CHARS)  # code points, not bytes
        arr = pc.if_else(pa.chunked_array([pa.array(too_long)]), cut, arr)
    values = _to_string_series(arr, series.index)
    return Parsed(values, blank, np.zeros(len(series), bool), truncated=too_long)


def canonical_text(series: pd.Series) -> pd.Series:
    """Trimmed text, the same whether a value came from CSV or parquet (``7.0`` -> ``"7"``, ``""`` -> NA)."""
    if ptypes.is_float_dtype(series.dtype):
        num = series.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(num) & (num == np.floor(num)) & (np.abs(num) < 9.2e18)
        if whole.any():
            text = as_text(series).copy()
            text[whole] = num[whole].astype(np.int64).astype(str)
            series = text
    trimmed = pc.utf8_trim_whitespace(text_array(series))
    trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.large_string()), trimmed)
    return _to_string_series(trimmed, series.index)


def _parse_any(series: pd.Series) -> Parsed:
    values = canonical_text(series)
    return Parsed(values, values.isna().to_numpy(), np.zeros(len(series), bool))


PARSERS: dict[str, Callable[[pd.Series], Parsed]] = {
    "int": _parse_int,
    "timestamp": _parse_timestamp,
    "float>=0": _range_parser(0.0, np.inf),
    "share": _range_parser(0.0, 1.0),
    "rating": _range_parser(1.0, 5.0),
    "bool": _parse_bool,
    "text": _parse_text,
    "any": _parse_any,
}

__all__ = [
    "COMPACT_DATE_RANGE",
    "KIND_DTYPES",
    "MAX_TEXT_CHARS",
    "PARSERS",
    "Parsed",
    "as_text",
    "canonical_text",
    "text_array",
]
