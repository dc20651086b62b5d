"""Read a raw file by its content: CSV or parquet, compression, encoding, delimiter.

The suffix is not trusted: the first bytes decide (``PAR1`` is parquet, ``1f 8b`` gzip, then
UTF-8 text with a sniffed delimiter). Files that are neither (JSON, HTML, UTF-16, binary) are
refused with one line that says how to export them instead. CSV cells are read verbatim as
text; typing them is :mod:`ingest.parse`'s job.

Two export mistakes are recognized rather than misread:

* a trailing delimiter on every row (an empty, unnamed last column) is dropped, so the columns
  do not shift;
* an unterminated quote makes a cell swallow the rows after it: a cell holding a line break
  followed by a line with at least as many delimiters as a row has is flagged
  (:attr:`RawFile.damaged`) so ingest quarantines it as ``unterminated_quote`` instead of
  storing it as one row (also when the quote runs to the end of the file).

Lines may end in LF, CRLF or a lone CR.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import PersonaError

PARQUET_SUFFIXES = frozenset({".parquet", ".pq", ".parq"})

_SNIFF_BYTES = 64 * 1024
_EMPTY = "the file is empty; export the table again with a header row and data"
_AS_CSV_OR_PARQUET = "export the table as UTF-8 CSV or as parquet"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_PEEK_ROWS = 50
_TRAILING = "\x00trailing"
UNTERMINATED_QUOTE = "unterminated_quote"
"""Reason of a row whose quoted cell swallowed the rows after it."""
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class _Format:
    """How to read a file, and what its first bytes already tell (CSV: the header)."""

    kind: str  # "csv" | "parquet"
    sep: str = ","
    compression: str | None = None
    header: tuple[str, ...] = ()
    header_lines: int = 1  # physical lines up to and including the header
    has_rows: bool = False
    trailing_empty: bool = False  # every row ends in a delimiter: an empty, unnamed last column


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
        except (OSError, *_GZIP_ERRORS) as exc:
            raise PersonaError(f"{path}: truncated or corrupt gzip ({exc}); compress or export it again"
                               ) from None
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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)  # "": \n, \r\n and a lone \r
    rows = (row for row in reader if row)
    header = tuple(next(rows, ()))
    header_lines = reader.line_num
    peeked: list[list[str]] = []
    try:
        for row in rows:
            peeked.append(row)
            if len(peeked) >= _PEEK_ROWS:
                break
    except csv.Error:  # the sample ends inside a quoted field: there is a row
        peeked.append([])
    has_rows = bool(peeked)
    complete = peeked[:-1] if len(peeked) > 1 else peeked  # the last row may be cut by the sample
    trailing = len(header) > 1 and bool(complete) and all(
        len(row) == len(header) + (0 if header[-1].strip() == "" else 1) and row[-1].strip() == ""
        for row in complete)
    if trailing and header[-1].strip() == "":
        header = header[:-1]
    return _Format("csv", sep, compression, header, header_lines, has_rows, trailing)


def _read_head(path: Path) -> bytes:
    """The first bytes of ``path`` (enough to sniff its format), or a one-line error."""
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
    """A header name without surrounding whitespace or a stray byte-order mark."""
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


def _drop_trailing(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop the empty column a trailing delimiter makes; refuse the file if a row fills it."""
    filled = np.flatnonzero(frame[_TRAILING].fillna("").astype(str).str.strip().ne("").to_numpy())
    if len(filled):
        raise PersonaError(f"{path}: data row {filled[0] + 1} has a value after the last named column "
                           "while other rows end in an empty one; name the column or remove the value")
    return frame.drop(columns=[_TRAILING])


def _read_csv(path: Path, fmt: _Format) -> pd.DataFrame:
    """Every cell as text, verbatim: Arrow's multithreaded reader, pandas for what Arrow refuses."""
    frame = _read_csv_cells(path, fmt)
    return _drop_trailing(frame, path) if fmt.trailing_empty else frame


def _read_csv_cells(path: Path, fmt: _Format) -> pd.DataFrame:
    import pyarrow.csv as pcsv

    names = [*fmt.header, _TRAILING] if fmt.trailing_empty else list(fmt.header)
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
            compression=fmt.compression, low_memory=False, header=0, names=names, index_col=False,
        )
    except _GZIP_ERRORS as exc:
        raise PersonaError(f"{path}: truncated or corrupt gzip ({exc}); compress or export it again"
                           ) from None
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


def preflight(path: Path) -> tuple[list[str], bool]:
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


def swallowed_rows(frame: pd.DataFrame, sep: str) -> np.ndarray:
    """Rows with a cell that holds a line break followed by a whole row's worth of delimiters.

    That is what an unterminated quote leaves: the reader keeps reading one cell until the next
    quote, taking the following rows with it. A legitimate multi-line text rarely holds a line
    with as many delimiters as a row has. Checked with Arrow's regex kernel, not row by row.
    """
    damaged = np.zeros(len(frame), dtype=bool)
    if len(frame.columns) < 2:
        return damaged
    pattern = rf"[\r\n](?:[^\r\n]*{re.escape(sep)}){{{len(frame.columns) - 1}}}"
    for name in frame.columns:
        column = frame[name]
        if not (isinstance(column.dtype, pd.StringDtype) or column.dtype == object):
            continue
        values = pa.array(column.array) if isinstance(column.dtype, pd.StringDtype) else pa.array(
            column.astype(str).to_numpy(dtype=object), type=pa.large_string())
        found = pc.match_substring_regex(values, pattern)
        damaged |= np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)
    return damaged


@dataclass(frozen=True)
class RawFile:
    """A file's rows as read, and what reading them revealed.

    Attributes:
        frame: the rows, unvalidated (see :func:`read_table`).
        damaged: per row, :data:`UNTERMINATED_QUOTE` where a cell swallowed following rows, else
            ``None`` (an object array).
    """

    frame: pd.DataFrame
    damaged: np.ndarray


def read_raw(path: Path) -> RawFile:
    """Read a file as :func:`read_table` does, flagging rows an unterminated quote swallowed.

    Raises:
        PersonaError: as :func:`read_table`.
    """
    path = Path(path)
    fmt = _sniff_format(path, _read_head(path))
    frame = _tidy_columns(_read_parquet(path) if fmt.kind == "parquet" else _read_csv(path, fmt), path)
    damaged = np.full(len(frame), None, dtype=object)
    if fmt.kind == "csv":
        damaged[swallowed_rows(frame, fmt.sep)] = UNTERMINATED_QUOTE
    return RawFile(frame, damaged)


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


__all__ = ["PARQUET_SUFFIXES", "UNTERMINATED_QUOTE", "RawFile", "preflight", "read_raw", "read_table",
           "swallowed_rows"]
