"""The raw store: accepted rows per table, quarantined rows beside them, never a row twice.

Rows are appended only when their ``_row_id`` is not stored yet, so re-ingesting a file adds
nothing. Quarantined rows keep their original values as text plus ``source_row``, ``reason``,
``source_file``, ``ingested_at`` and ``_row_id``; the quarantine file is deduplicated the same
way, so re-ingesting a file does not grow it. Every write goes to a temp file that is renamed
over the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import pandas as pd
from pandas.api import types as ptypes

from core.errors import PersonaError
from ingest.parse import canonical_text
from ingest.validate import ROW_ID

if TYPE_CHECKING:
    from pathlib import Path

SOURCE_FILE = "source_file"
INGESTED_AT = "ingested_at"


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
            old = old.assign(**{column: canonical_text(old[column])})
            new = new.assign(**{column: canonical_text(new[column])})
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



def append_quarantined(path: Path, rows: pd.DataFrame, source: Path, ingested_at: pd.Timestamp) -> None:
    """Append rejected rows not quarantined yet, stamped with their file and ingestion time.

    Args:
        path: the quarantine file of the table (created if absent).
        rows: rows as :func:`ingest.validate.validate` quarantined them.
        source: the file they came from (recorded as an absolute path).
        ingested_at: when this ingestion ran (UTC).
    """
    bad = rows.copy()
    bad[SOURCE_FILE] = pd.Series(str(source.absolute()), index=bad.index, dtype="string")
    bad[INGESTED_AT] = pd.Series(ingested_at, index=bad.index).astype("datetime64[ns, UTC]")
    append_new_rows(path, bad)


__all__ = ["INGESTED_AT", "SOURCE_FILE", "append_new_rows", "append_quarantined"]
