"""The raw store: accepted rows per table, quarantined rows beside them, never a row twice.

Rows are appended only when their ``_row_id`` is not stored yet, so re-ingesting a file adds
nothing. Quarantined rows keep their original values as text plus ``source_row``, ``reason``,
``source_file``, ``ingested_at`` and ``_row_id``; the quarantine file is deduplicated the same
way, with the source file as part of the identity, so re-ingesting a file does not grow it while
the same bad row from another file is recorded again. Customers are an upsert instead
(:func:`upsert_rows`): keyed on ``customer_id``, the later row wins.

Every write goes to a temp file that is renamed over the old one, so a crash never leaves half a
file. Callers hold the table's lock (:func:`core.catalog.ingest_lock`) around the whole
read-merge-write, so two writers never merge from the same old file and lose each other's rows;
under that lock any temp file beside the store is a leftover of a killed writer
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from core.errors import PersonaError
from ingest.parse import canonical_text
from ingest.validate import MIX as _MIX
from ingest.validate import ROW_ID, column_hash

if TYPE_CHECKING:
    from pathlib import Path

SOURCE_FILE = "source_file"
INGESTED_AT = "ingested_at"


def _temp_glob(path: Path) -> str:
    return f".{path.name}.*.tmp"


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temp file in the same directory, flush it to disk, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(_temp_glob(path).replace("*", f"{os.getpid()}.{uuid.uuid4().hex[:8]}"))
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


def remove_stale_temps(path: Path) -> int:
    """Delete temp files a killed writer of ``path`` left behind; how many were removed.

    Only call it while holding the table's lock: temp files are written only under that lock, so
    any found then belong to a writer that died (``kill -9``, power loss) before its rename.
    """
    removed = 0
    if path.parent.is_dir():
        for tmp in path.parent.glob(_temp_glob(path)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def append_new_rows(path: Path, rows: pd.DataFrame) -> tuple[int, int]:
    """Append rows whose ``_row_id`` the parquet file at ``path`` does not hold yet.

    The caller holds the table's lock (see the module docstring).

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


def _content_hash(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A uint64 per row over ``columns`` as canonical text, so CSV and parquet values compare equal."""
    combined = np.full(len(frame), np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    for name in columns:
        series = frame[name] if name in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="string")
        dtype = series.dtype
        if not (isinstance(dtype, pd.DatetimeTZDtype) or ptypes.is_datetime64_dtype(dtype)):
            series = canonical_text(series)
        combined = (combined ^ column_hash(series)) * _MIX
    return combined


def upsert_rows(path: Path, rows: pd.DataFrame, key: str) -> tuple[int, int, int]:
    """Insert or update rows keyed on ``key``: the later row wins, column by column it names.

    Rows are applied in order, as if one at a time: a key not stored yet is new; a key whose
    current values (stored, or an earlier row of ``rows``) equal this row's on every column
    ``rows`` has is already present; otherwise it is an update. Columns ``rows`` lacks keep
    their stored values. The caller holds the table's lock (see the module docstring).

    Args:
        path: the store file (created if absent).
        rows: rows with ``key`` and ``_row_id`` columns.
        key: the column identifying a row (``customer_id``).

    Returns:
        ``(new_rows, updated, already_present)``.
    """
    if rows.empty:
        return 0, 0, 0
    rows = rows.reset_index(drop=True)
    columns = sorted(c for c in rows.columns if c != ROW_ID)
    mine = _content_hash(rows, columns)
    old = _read_store(path) if path.exists() else rows.iloc[:0]
    current = old.drop_duplicates(key, keep="last").set_index(key)
    stored = pd.Series(_content_hash(current.reset_index(), columns), index=current.index)

    # what each row replaces: the previous row of its key in this file, else the stored row
    previous = pd.Series(np.arange(len(rows))).groupby(rows[key].to_numpy(), sort=False).shift(1)
    earlier = previous.notna().to_numpy()
    stored_pos = stored.index.get_indexer(rows[key])
    is_new = ~earlier & (stored_pos < 0)
    before = np.zeros(len(rows), dtype=np.uint64)
    before[earlier] = mine[previous[earlier].to_numpy(dtype=np.int64)]
    from_store = ~earlier & ~is_new
    before[from_store] = stored.to_numpy(dtype=np.uint64)[stored_pos[from_store]]
    same = ~is_new & (before == mine)
    if same.all():
        return 0, 0, len(rows)

    latest = rows.drop_duplicates(key, keep="last").set_index(key)
    kept = [c for c in current.columns if c not in latest.columns]
    if kept:  # columns this file lacks keep their stored values
        latest = latest.join(current[kept], how="left")
    latest = latest.reset_index()
    order = [c for c in old.columns if c in latest.columns]
    latest = latest[order + [c for c in latest.columns if c not in order]]
    untouched = old[~old[key].isin(latest[key])].reset_index(drop=True)
    _write_parquet_atomic(_concat_aligned(untouched, latest), path)
    return int(is_new.sum()), int((~is_new & ~same).sum()), int(same.sum())


def append_quarantined(path: Path, rows: pd.DataFrame, source: Path, ingested_at: pd.Timestamp) -> None:
    """Append rejected rows not quarantined yet, stamped with their file and ingestion time.

    Args:
        path: the quarantine file of the table (created if absent).
        rows: rows as :func:`ingest.validate.validate` quarantined them.
        source: the file they came from (recorded as an absolute path).
        ingested_at: when this ingestion ran (UTC).
    """
    bad = rows.copy()
    source_text = str(source.absolute())
    bad[SOURCE_FILE] = pd.Series(source_text, index=bad.index, dtype="string")
    file_hash = pd.util.hash_array(np.array([source_text], dtype=object), categorize=False)[0]
    bad[ROW_ID] = pd.util.hash_array((bad[ROW_ID].to_numpy(dtype=np.uint64) ^ file_hash) * _MIX,
                                     categorize=False)
    bad[INGESTED_AT] = pd.Series(ingested_at, index=bad.index).astype("datetime64[ns, UTC]")
    append_new_rows(path, bad)


__all__ = ["INGESTED_AT", "SOURCE_FILE", "append_new_rows", "append_quarantined", "remove_stale_temps",
           "upsert_rows"]
