"""Ingest raw files: validate them against the data contract, keep good rows, quarantine bad ones.

The pipeline per table is ``read_table -> validate_table -> append`` and nothing is dropped
silently: every row read is either accepted (appended to ``raw_dir/<table>.parquet``) or
quarantined (appended to ``quarantine_dir/<table>.parquet`` with a ``reason``), so
``accepted + quarantined == rows read`` always holds.

Rules (see :mod:`core.contract` for which columns carry which kind):

* ``int``: an integer, also written ``12.0``; anything else (``12a``, ``3.5``, empty) -> ``bad_<col>``.
* ``timestamp``: ISO 8601 with or without an offset (naive means UTC; a trailing ``UTC``/``GMT``
  is understood) or plain numbers as Unix epoch seconds; ambiguous forms such as ``05/01/2024``
  are rejected. Stored as ``datetime64[ns, UTC]``, so anything pandas cannot represent
  (before 1677-09-22 or after 2262-04-11, e.g. the year 3000) -> ``bad_timestamp``.
* ``float>=0``: a finite number >= 0; non-numeric -> ``bad_<col>``, negative -> ``negative_<col>``.
* ``share`` (0..1) and ``rating`` (1..5): out of range -> ``out_of_range_<col>``.
* ``bool``: true/false, yes/no, t/f, y/n, 1/0 -> otherwise ``bad_<col>``.
* ``text``: empty or whitespace-only -> ``empty_<col>``; longer than :data:`MAX_TEXT_CHARS`
  characters -> accepted, truncated, and counted.
* ``any``: kept as text.

Optional columns may be empty. The reason recorded is the first failing rule, in contract
column order. Extra columns are kept (from CSV as text, from parquet with their own type).

Each accepted row gets a ``_row_id`` (uint64): a hash of its normalized contract values
(SipHash per value via :func:`pandas.util.hash_array`, combined in contract order) mixed with
its occurrence number among identical rows of the same file. Re-ingesting a file, or an export
that overlaps an earlier one, therefore adds nothing twice, while two genuinely identical
rows in one file are both kept. Extra columns do not take part in the identity.

Quarantined rows keep their original values as text plus ``source_row`` (1-based row of the
file), ``reason``, ``source_file``, ``ingested_at`` and ``_row_id``; the quarantine file is
deduplicated on ``_row_id``, so re-ingesting a file does not grow it. Every write goes to a
temp file that is renamed over the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from core import catalog
from core.contract import TABLES, TableSpec
from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from core.settings import Settings

MAX_TEXT_CHARS = 5_000
"""Review texts longer than this many characters are truncated (and counted) on ingest."""

ROW_ID = "_row_id"
REASON = "reason"
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"
INGESTED_AT = "ingested_at"

PARQUET_SUFFIXES = frozenset({".parquet", ".pq", ".parq"})
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

_SNIFF_BYTES = 64 * 1024
_EMPTY = "the file is empty; export the table again with a header row and data"
_AS_CSV_OR_PARQUET = "export the table as UTF-8 CSV or as parquet"
# Epoch seconds representable as datetime64[ns] (pandas' bounds are about +-9.22e9 s).
_EPOCH_LIMIT_S = 9.2e9
_TS_MIN = pd.Timestamp.min.tz_localize("UTC")
_TS_MAX = pd.Timestamp.max.tz_localize("UTC")
_OFFSET_SUFFIX = r":\d{2}(?:[.,]\d+)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_UTC_WORD_SUFFIX = r"\s*(?:UTC|GMT)$"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


# --------------------------------------------------------------------------- report
@dataclass
class IngestReport:
    """What one ingested file contributed.

    Attributes:
        table: contract table name.
        source: the file ingested.
        rows_read: data rows in the file.
        accepted: rows that passed validation (``new_rows + already_present``).
        new_rows: accepted rows appended to the raw store.
        already_present: accepted rows the raw store already held (same ``_row_id``).
        quarantined: rows that failed validation.
        reasons: quarantine reason code -> count.
        quarantine_path: where quarantined rows were written (``None`` when there were none).
        truncated: accepted texts cut to :data:`MAX_TEXT_CHARS` characters.
        raw_path: the raw store file of this table.
    """

    table: str
    source: str
    rows_read: int
    accepted: int
    new_rows: int
    already_present: int
    quarantined: int
    reasons: dict[str, int]
    quarantine_path: Path | None
    truncated: int = 0
    raw_path: Path | None = None

    def summary(self) -> str:
        """One human line, e.g. ``transactions: read 1,204 · accepted 1,200 (new 1,200, ...) · ...``."""
        accepted = (f"accepted {self.accepted:,} (new {self.new_rows:,}, "
                    f"already present {self.already_present:,}")
        if self.truncated:
            accepted += f"; {self.truncated:,} text(s) truncated to {MAX_TEXT_CHARS:,} chars"
        line = f"{self.table}: read {self.rows_read:,} · {accepted}) · quarantined {self.quarantined:,}"
        if self.quarantined:
            ordered = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
            line += " (" + ", ".join(f"{code.replace('_', ' ')} {n:,}" for code, n in ordered) + ")"
            if self.quarantine_path is not None:
                line += f" -> {self.quarantine_path}"
        return line


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class _Format:
    """How to read a file, and what its first bytes already tell (CSV: the header)."""

    kind: str  # "csv" | "parquet"
    sep: str = ","
    compression: str | None = None
    header: tuple[str, ...] = ()
    header_lines: int = 1  # physical lines up to and including the header
    has_rows: bool = False


def _sniff_format(path: Path, head: bytes) -> _Format:
    """Decide how to read ``path`` from its first bytes (the suffix only breaks ties)."""
    if not head.strip():
        raise PersonaError(f"{path}: {_EMPTY}")
    if head.startswith(b"PAR1"):
        return _Format("parquet")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise PersonaError(f"{path}: named .parquet but is not a parquet file; {_AS_CSV_OR_PARQUET}")
    compression = None
    if head.startswith(b"\x1f\x8b"):
        compression = "gzip"
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except (OSError, EOFError) as exc:
            raise PersonaError(f"{path}: a damaged gzip file ({exc}); export it again") from None
        if not head.strip():
            raise PersonaError(f"{path}: {_EMPTY}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PersonaError(f"{path}: is UTF-16 text; {_AS_CSV_OR_PARQUET}")
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in head or control > 0.01 * len(head):
        raise PersonaError(f"{path}: not a CSV or parquet file (binary content); {_AS_CSV_OR_PARQUET}")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise PersonaError(f"{path}: not UTF-8 text; {_AS_CSV_OR_PARQUET}") from None
    start = text.lstrip()[:1]
    if start in ("{", "["):
        raise PersonaError(f"{path}: looks like JSON, not CSV; {_AS_CSV_OR_PARQUET}")
    if start == "<":
        raise PersonaError(f"{path}: looks like HTML/XML, not CSV; {_AS_CSV_OR_PARQUET}")
    first_line = text.lstrip().splitlines()[0]
    sep = max((",", ";", "\t", "|"), key=first_line.count)
    sep = sep if first_line.count(sep) else ","
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    rows = (row for row in reader if row)
    header = tuple(next(rows, ()))
    header_lines = reader.line_num
    try:
        has_rows = next(rows, None) is not None
    except csv.Error:  # the sample ends inside a quoted field: there is a row
        has_rows = True
    return _Format("csv", sep, compression, header, header_lines, has_rows)


def _read_head(path: Path) -> bytes:
    if not path.exists():
        raise PersonaError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise PersonaError(f"{path}: is a directory; pass a CSV or parquet file")
    try:
        with path.open("rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise PersonaError(f"{path}: cannot read it ({exc.strerror}); check the path and its permissions"
                           ) from None


def _clean_name(name: object) -> str:
    return str(name).replace("\ufeff", "").strip()  # a stray byte-order mark is not part of a name


def _tidy_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    columns = [_clean_name(c) for c in frame.columns]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise PersonaError(f"{path}: column {name!r} appears twice; keep one and ingest again")
        seen.add(name)
    frame.columns = columns
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PersonaError(f"{path}: cannot read it as parquet ({detail}); export it again") from None


def _read_csv(path: Path, fmt: _Format) -> pd.DataFrame:
    """Every cell as text, verbatim: Arrow's multithreaded reader, pandas for what Arrow refuses."""
    import pyarrow.csv as pcsv

    names = list(fmt.header)
    try:
        with pa.input_stream(str(path), compression=fmt.compression) as source:
            table = pcsv.read_csv(
                source,
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=fmt.header_lines),
                parse_options=pcsv.ParseOptions(delimiter=fmt.sep, newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.large_string()),
                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
        return table.to_pandas(types_mapper={pa.large_string(): pd.StringDtype("pyarrow")}.get)
    except (pa.ArrowInvalid, OSError):
        pass  # pandas reads rows longer than Arrow's block and names the line of a malformed one
    try:
        return pd.read_csv(
            path, sep=fmt.sep, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
            compression=fmt.compression, low_memory=False,
        )
    except pd.errors.EmptyDataError:
        raise PersonaError(f"{path}: {_EMPTY}") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().split("C error: ")[-1].rstrip(".")
        raise PersonaError(f"{path}: malformed CSV ({detail}); fix that line or export the file again"
                           ) from None
    except UnicodeDecodeError as exc:
        raise PersonaError(f"{path}: not UTF-8 text (byte {exc.start}); {_AS_CSV_OR_PARQUET}") from None
    except OSError as exc:
        raise PersonaError(f"{path}: cannot read it ({exc}); check the file") from None


def _preflight(path: Path) -> tuple[list[str], bool]:
    """(column names, has data rows) from the file's first bytes or parquet footer, cheaply."""
    fmt = _sniff_format(path, _read_head(path))
    if fmt.kind == "csv":
        return [_clean_name(c) for c in fmt.header], fmt.has_rows
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PersonaError(f"{path}: cannot read it as parquet ({detail}); export it again") from None
    return [_clean_name(c) for c in parquet.schema_arrow.names], parquet.metadata.num_rows > 0


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or parquet file into a DataFrame, by content (the suffix is not trusted).

    CSV cells are read verbatim as text (``string`` dtype; the delimiter ``,``, ``;``, tab
    or ``|`` is sniffed from the header; UTF-8, optionally gzip-compressed; quoted values
    may span lines); parquet keeps its types. Header names are stripped of surrounding
    whitespace.

    Args:
        path: the file.

    Returns:
        The file's rows, unvalidated.

    Raises:
        PersonaError: the file is missing, unreadable, empty, or neither CSV nor parquet.
    """
    path = Path(path)
    fmt = _sniff_format(path, _read_head(path))
    frame = _read_parquet(path) if fmt.kind == "parquet" else _read_csv(path, fmt)
    return _tidy_columns(frame, path)


# --------------------------------------------------------------------------- validation
# Text is checked with Arrow compute kernels (C++), never row by row in Python.
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


@dataclass
class _Parsed:
    """A column parsed to its normalized dtype plus row masks of what went wrong."""

    values: pd.Series
    null: np.ndarray
    invalid: np.ndarray
    out_of_range: np.ndarray | None = None
    truncated: np.ndarray | None = None


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow boolean result as a numpy mask (null -> False)."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _as_text(series: pd.Series) -> pd.Series:
    """Values as ``str`` (object dtype) with ``None`` for nulls, without copying clean string columns."""
    if series.dtype == object and ptypes.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series
    null = series.isna().to_numpy()
    out = series.astype(object).astype(str).astype(object)
    out[null] = None
    return out


def _text_array(series: pd.Series) -> pa.ChunkedArray:
    """Values as an Arrow ``large_string`` array with nulls, for vectorized string kernels."""
    if isinstance(series.dtype, pd.StringDtype):
        arr = pa.array(series.array)
    else:
        arr = pa.array(_as_text(series).to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    return arr.cast(pa.large_string())


def _to_string_series(arr: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), index=index)


def _trim_and_nulls(series: pd.Series) -> tuple[pa.ChunkedArray, np.ndarray]:
    """(whitespace-trimmed text, rows that are null or spell null: ``''``, ``NA``, ``null``...)."""
    trimmed = pc.utf8_trim_whitespace(_text_array(series))
    null = _np(pc.is_null(trimmed)) | _np(pc.is_in(pc.utf8_lower(trimmed), value_set=_NULL_SET))
    return trimmed, null


def _take(arr: pa.ChunkedArray, mask: np.ndarray) -> pa.ChunkedArray:
    return pc.filter(arr, pa.array(mask))


def _is_bool(series: pd.Series) -> bool:
    return ptypes.is_bool_dtype(series.dtype) and not ptypes.is_object_dtype(series.dtype)


def _is_textual(series: pd.Series) -> bool:
    return not (ptypes.is_numeric_dtype(series.dtype) or ptypes.is_datetime64_any_dtype(series.dtype))


def _parse_int(series: pd.Series) -> _Parsed:
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
        return _Parsed(pd.Series(values, index=series.index), null, ~null & ~ok)
    null = series.isna().to_numpy()
    if _is_bool(series):
        return _Parsed(pd.Series(values, index=series.index), null, ~null)
    if ptypes.is_integer_dtype(series.dtype):
        as_float = series.astype("float64").to_numpy(na_value=np.nan)
        ok = ~null & (np.abs(as_float) < 9.2e18)
        values[ok] = series[ok].astype("int64").to_numpy()
        return _Parsed(pd.Series(values, index=series.index), null, ~null & ~ok)
    if ptypes.is_float_dtype(series.dtype):
        num = series.astype("float64").to_numpy(na_value=np.nan)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(num) & (num == np.floor(num)) & (np.abs(num) < 9.2e18)
        values[ok] = num[ok].astype(np.int64)
        return _Parsed(pd.Series(values, index=series.index), null, ~null & ~ok)
    return _Parsed(pd.Series(values, index=series.index), null, ~null)  # datetimes are not ids


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


def _parse_timestamp(series: pd.Series) -> _Parsed:
    index = series.index
    if _is_bool(series):
        null = series.isna().to_numpy()
        return _Parsed(pd.Series(pd.NaT, index=index, dtype=KIND_DTYPES["timestamp"]), null, ~null)
    if ptypes.is_datetime64_any_dtype(series.dtype):
        null = series.isna().to_numpy()
        stamps = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        ok = ~null & ((stamps >= _TS_MIN) & (stamps <= _TS_MAX)).to_numpy(dtype=bool, na_value=False)
        values = stamps.where(pd.Series(ok, index=index)).dt.as_unit("ns")
        return _Parsed(values, null, ~null & ~ok)
    if ptypes.is_numeric_dtype(series.dtype):
        null = series.isna().to_numpy()
        nanos, ok = _epoch_nanos(series.astype("float64").to_numpy(na_value=np.nan))
        return _Parsed(_utc_series(nanos, index), null, ~null & ~ok)
    trimmed, null = _trim_and_nulls(series)
    nanos = np.full(len(series), _NAT, dtype=np.int64)
    epoch_like = ~null & _np(pc.match_substring_regex(trimmed, _EPOCH_RE))
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
    return _Parsed(_utc_series(nanos, index), null, ~null & (nanos == _NAT))


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


def _range_parser(low: float, high: float) -> Callable[[pd.Series], _Parsed]:
    def parse(series: pd.Series) -> _Parsed:
        values, null, invalid = _parse_number(series)
        num = values.to_numpy()
        with np.errstate(invalid="ignore"):
            out = ~null & ~invalid & ((num < low) | (num > high))
        return _Parsed(values, null, invalid, out_of_range=out)

    return parse


def _parse_bool(series: pd.Series) -> _Parsed:
    if _is_bool(series):
        return _Parsed(series.astype("boolean"), series.isna().to_numpy(), np.zeros(len(series), bool))
    trimmed, null = _trim_and_nulls(series)
    lower = pc.utf8_lower(trimmed)
    true, false = _np(pc.is_in(lower, value_set=_TRUE_SET)), _np(pc.is_in(lower, value_set=_FALSE_SET))
    values = pd.arrays.BooleanArray(true, ~(true | false))
    return _Parsed(pd.Series(values, index=series.index), null, ~null & ~(true | false))


def _parse_text(series: pd.Series) -> _Parsed:
    arr = _text_array(series)
    blank = _np(pc.is_null(arr)) | _np(pc.equal(pc.utf8_trim_whitespace(arr), ""))
    too_long = ~blank & _np(pc.greater(pc.utf8_length(arr), MAX_TEXT_CHARS))
    if too_long.any():
        cut = pc.utf8_slice_codeunits(arr, 0, MAX_TEXT_CHARS)  # code points, not bytes
        arr = pc.if_else(pa.chunked_array([pa.array(too_long)]), cut, arr)
    values = _to_string_series(arr, series.index)
    return _Parsed(values, blank, np.zeros(len(series), bool), truncated=too_long)


def _canonical_text(series: pd.Series) -> pd.Series:
    """Trimmed text, the same whether a value came from CSV or parquet (``7.0`` -> ``"7"``, ``""`` -> NA)."""
    if ptypes.is_float_dtype(series.dtype):
        num = series.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(num) & (num == np.floor(num)) & (np.abs(num) < 9.2e18)
        if whole.any():
            text = _as_text(series).copy()
            text[whole] = num[whole].astype(np.int64).astype(str)
            series = text
    trimmed = pc.utf8_trim_whitespace(_text_array(series))
    trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.large_string()), trimmed)
    return _to_string_series(trimmed, series.index)


def _parse_any(series: pd.Series) -> _Parsed:
    values = _canonical_text(series)
    return _Parsed(values, values.isna().to_numpy(), np.zeros(len(series), bool))


_PARSERS: dict[str, Callable[[pd.Series], _Parsed]] = {
    "int": _parse_int,
    "timestamp": _parse_timestamp,
    "float>=0": _range_parser(0.0, np.inf),
    "share": _range_parser(0.0, 1.0),
    "rating": _range_parser(1.0, 5.0),
    "bool": _parse_bool,
    "text": _parse_text,
    "any": _parse_any,
}


def _reason_codes(column: str, kind: str, spec: TableSpec) -> tuple[str, str]:
    """(code for a null/invalid value, code for an out-of-range value) of one column."""
    if kind == "timestamp" and column == spec.timestamp:
        return "bad_timestamp", "bad_timestamp"
    if kind == "text":
        return f"empty_{column}", f"empty_{column}"
    if kind == "float>=0":
        return f"bad_{column}", f"negative_{column}"
    return f"bad_{column}", f"out_of_range_{column}"


def missing_columns(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Required columns of ``spec`` that ``frame`` lacks, in contract order."""
    return [c for c in spec.required if c not in frame.columns]


# ---- row identity: explicit, so it does not depend on how pandas stores a dtype
_MIX = np.uint64(0x100000001B3)
_NULL_TEXT = "\x00<null>"


def _column_hash(series: pd.Series) -> np.ndarray:
    """A uint64 hash per value (SipHash via :func:`pandas.util.hash_array`), nulls included."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or ptypes.is_datetime64_dtype(dtype):
        data = series.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    elif isinstance(dtype, pd.BooleanDtype):
        data = series.astype("Int8").fillna(-1).to_numpy(dtype=np.int8)
    elif ptypes.is_float_dtype(dtype):
        data = series.to_numpy(dtype=np.float64, na_value=np.nan) + 0.0
    elif ptypes.is_integer_dtype(dtype) and not series.hasnans:
        data = series.to_numpy(dtype=np.int64)
    else:  # text: hash each distinct value once
        encoded = pc.dictionary_encode(_text_array(series)).combine_chunks()
        uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        hashes = pd.util.hash_array(np.append(uniques, _NULL_TEXT).astype(object), categorize=False)
        codes = pc.fill_null(encoded.indices, len(uniques)).to_numpy().astype(np.intp)
        return hashes[codes]
    return pd.util.hash_array(data, categorize=False)


def _row_ids(frame: pd.DataFrame) -> np.ndarray:
    """Hash of each row's values (in column order) mixed with its occurrence among identical rows."""
    combined = np.full(len(frame), np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    for name in frame.columns:
        combined = (combined ^ _column_hash(frame[name])) * _MIX
    occurrence = pd.Series(combined).groupby(combined, sort=False).cumcount().to_numpy(dtype=np.uint64)
    return pd.util.hash_array((combined ^ occurrence) * _MIX, categorize=False)


def _normalize_extra(series: pd.Series) -> pd.Series:
    if ptypes.is_object_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype | pd.StringDtype):
        return _canonical_text(series)
    return series


@dataclass
class _Validation:
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    truncated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _validate(frame: pd.DataFrame, spec: TableSpec) -> _Validation:
    missing = missing_columns(frame, spec)
    if missing:
        raise PersonaError(f"{spec.name}: missing required column(s) {', '.join(missing)}; "
                           f"expected {', '.join(spec.required)}")
    reserved = [c for c in (ROW_ID, REASON) if c in frame.columns]
    if reserved:
        frame = frame.drop(columns=reserved)
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    normalized: dict[str, pd.Series] = {}
    truncated = np.zeros(n, dtype=bool)
    contract = {**spec.required, **spec.optional}
    for column, kind in contract.items():
        if column not in frame.columns:
            continue
        parsed = _PARSERS[kind](frame[column])
        bad_code, range_code = _reason_codes(column, kind, spec)
        failed = parsed.invalid | (parsed.null if column in spec.required else False)
        reason = np.where((reason == None) & failed, bad_code, reason)  # noqa: E711 - elementwise
        if parsed.out_of_range is not None:
            reason = np.where((reason == None) & parsed.out_of_range, range_code, reason)  # noqa: E711
        if parsed.truncated is not None:
            truncated |= parsed.truncated
        normalized[column] = parsed.values
    ok = reason == None  # noqa: E711
    n_ok = int(ok.sum())

    columns: dict[str, pd.Series] = {}
    for column, kind in contract.items():
        if column in normalized:
            values = normalized[column][ok].reset_index(drop=True)
        else:
            values = pd.Series(np.nan if KIND_DTYPES[kind] in ("float64", "datetime64[ns, UTC]") else pd.NA,
                               index=pd.RangeIndex(n_ok), dtype=object)
        columns[column] = values.astype(KIND_DTYPES[kind])
    accepted = pd.DataFrame(columns, index=pd.RangeIndex(n_ok))
    accepted[ROW_ID] = _row_ids(accepted)
    for column in frame.columns:
        if column not in contract:
            accepted[column] = _normalize_extra(frame[column][ok]).reset_index(drop=True)

    bad = frame[~ok]
    quarantined = pd.DataFrame({c: _as_text(bad[c]).astype("string") for c in frame.columns},
                               index=bad.index)
    quarantined[SOURCE_ROW] = (bad.index.to_numpy() + 1).astype(np.int64)
    quarantined[REASON] = pd.Series(reason[~ok], index=bad.index, dtype="string")
    quarantined = quarantined.reset_index(drop=True)
    quarantined[ROW_ID] = _row_ids(quarantined[sorted(frame.columns)])
    reasons = {str(k): int(v) for k, v in quarantined[REASON].value_counts().items()}
    return _Validation(accepted, quarantined, int((truncated & ok).sum()), reasons)


def validate_table(frame: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a raw frame into rows that meet the data contract and rows that do not.

    Pure: ``frame`` is not modified. Every input row ends up in exactly one output.

    Args:
        frame: rows as read (strings from CSV, typed from parquet).
        spec: the contract table the rows claim to belong to.

    Returns:
        ``(accepted, quarantined)``. ``accepted`` has every contract column (absent optional
        ones as nulls) with normalized dtypes (:data:`KIND_DTYPES`), then ``_row_id``, then
        extra columns (text from CSV, trimmed, empty -> NA; other types as they came).
        ``quarantined`` has the original values as strings plus ``source_row`` (1-based
        position in ``frame``), ``reason`` (first failing rule) and ``_row_id``.

    Raises:
        PersonaError: a required column is missing.
    """
    result = _validate(frame, spec)
    return result.accepted, result.quarantined


# --------------------------------------------------------------------------- storage
def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temp file in the same directory, flush it to disk, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_store(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as exc:
        raise PersonaError(f"{path}: the stored table cannot be read ({type(exc).__name__}); "
                           "move it aside and ingest the source files again") from None


def _concat_aligned(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Concatenate, turning columns whose dtypes disagree between runs into text."""
    for column in old.columns.intersection(new.columns):
        before, after = old[column].dtype, new[column].dtype
        if before == after:
            continue
        if isinstance(before, pd.StringDtype) and isinstance(after, pd.StringDtype):
            old = old.assign(**{column: old[column].astype(after)})  # same text, another storage
        elif not (ptypes.is_numeric_dtype(before) and ptypes.is_numeric_dtype(after)):
            old = old.assign(**{column: _canonical_text(old[column])})
            new = new.assign(**{column: _canonical_text(new[column])})
    frames = [f for f in (old, new) if not f.empty]
    if not frames:
        return old
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return combined[list(dict.fromkeys([*old.columns, *new.columns]))]


def append_new_rows(path: Path, rows: pd.DataFrame) -> tuple[int, int]:
    """Append rows whose ``_row_id`` the parquet file at ``path`` does not hold yet.

    Args:
        path: the store file (created if absent).
        rows: rows with a ``_row_id`` column.

    Returns:
        ``(new_rows, already_present)``.
    """
    if path.exists():
        known = _read_store(path, columns=[ROW_ID])[ROW_ID]
        fresh = rows[~rows[ROW_ID].isin(known)]
    else:
        fresh = rows
    if fresh.empty:
        return 0, len(rows)
    combined = _concat_aligned(_read_store(path), fresh) if path.exists() else fresh.reset_index(drop=True)
    _write_parquet_atomic(combined, path)
    return len(fresh), len(rows) - len(fresh)


# --------------------------------------------------------------------------- job
def _check_header(table: str, path: Path) -> None:
    """Fail early (before anything is written) on a file that cannot be ingested at all."""
    spec = TABLES[table]
    columns, has_rows = _preflight(path)
    missing = [c for c in spec.required if c not in columns]
    if missing:
        found = ", ".join(columns[:12]) or "none"
        raise PersonaError(f"{path}: missing required column(s) {', '.join(missing)}; "
                           f"expected {', '.join(spec.required)} (found: {found})")
    if not has_rows:
        raise PersonaError(f"{path}: has no data rows; nothing to ingest")


def ingest_files(
    settings: Settings, files: Mapping[str, Path | str], *, now: pd.Timestamp | None = None
) -> list[IngestReport]:
    """Validate files against the data contract; append good rows, quarantine bad ones.

    Every file is checked (readable, CSV or parquet, required columns, not empty) before
    anything is written. Writes are atomic (temp file + rename).

    Args:
        settings: locates ``raw_dir`` and ``quarantine_dir``.
        files: contract table name (``customers``, ``transactions``, ``sessions``,
            ``reviews``) -> file.
        now: ingestion time recorded on quarantined rows (default: now, UTC).

    Returns:
        One report per file, in the order given.

    Raises:
        PersonaError: an unknown table, or a file that cannot be ingested at all.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    unknown = [t for t in files if t not in TABLES]
    if unknown:
        raise PersonaError(f"unknown table(s) {', '.join(unknown)}; expected one of {', '.join(TABLES)}")
    paths = {table: Path(p) for table, p in files.items()}
    for table, path in paths.items():
        _check_header(table, path)

    ingested_at = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if ingested_at.tzinfo is None:
        ingested_at = ingested_at.tz_localize("UTC")
    ingested_at = ingested_at.tz_convert("UTC")
    reports: list[IngestReport] = []
    steps = ("reading", "validating", "writing")
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("ingest", total=len(paths) * len(steps))
        for table, path in paths.items():
            spec = TABLES[table]
            progress.update(task, description=f"{table}: {steps[0]} {path.name}")
            frame = read_table(path)
            if frame.empty:
                raise PersonaError(f"{path}: has no data rows; nothing to ingest")
            progress.update(task, advance=1, description=f"{table}: {steps[1]} {len(frame):,} rows")
            try:
                result = _validate(frame, spec)
            except PersonaError as exc:
                raise PersonaError(f"{path}: {exc}") from None
            progress.update(task, advance=1, description=f"{table}: {steps[2]}")
            raw_path = catalog.raw_table(settings, table)
            new_rows, present = append_new_rows(raw_path, result.accepted)
            quarantine_path = None
            if len(result.quarantined):
                quarantine_path = catalog.quarantine_table(settings, table)
                bad = result.quarantined.copy()
                bad[SOURCE_FILE] = pd.Series(str(path.absolute()), index=bad.index, dtype="string")
                bad[INGESTED_AT] = pd.Series(ingested_at, index=bad.index).astype("datetime64[ns, UTC]")
                append_new_rows(quarantine_path, bad)
            progress.update(task, advance=1)
            reports.append(IngestReport(
                table=table, source=str(path), rows_read=len(frame), accepted=len(result.accepted),
                new_rows=new_rows, already_present=present, quarantined=len(result.quarantined),
                reasons=result.reasons, quarantine_path=quarantine_path, truncated=result.truncated,
                raw_path=raw_path,
            ))
    return reports


__all__ = [
    "KIND_DTYPES",
    "MAX_TEXT_CHARS",
    "IngestReport",
    "append_new_rows",
    "ingest_files",
    "missing_columns",
    "read_table",
    "validate_table",
]
