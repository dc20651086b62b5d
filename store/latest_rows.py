"""The latest row per entity of a parquet source within an interval, read in bounded memory.

Feast's DuckDB offline store answers ``pull_latest_from_table_or_query`` by loading every row of
the interval (every snapshot of every customer, text rows with their 384 floats) and ranking
them. Here a parquet source (one file or a folder of files) is read twice, a row group at a time:

1. only the entity key, event timestamp and created timestamp columns, skipping row groups whose
   statistics put them outside the interval, keeping per entity the position of its latest row
   (latest event time, then latest created time, then the row written last, which is what a
   rewrite of the same snapshot means);
2. the wanted columns of just the row groups holding a chosen row, handed on in tables of at most
   ``chunk_rows`` rows.

Memory is one row group's batch plus a few integers per entity, whatever the number of snapshots.
The rows chosen are the ones Feast's ``ROW_NUMBER() OVER (PARTITION BY key ORDER BY event DESC,
created DESC) = 1`` picks (a null created time ranks below any other, as DuckDB orders nulls last).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from datetime import datetime
    from pathlib import Path

_SCAN_ROWS = 262_144  # rows per batch of the first pass (the key and timestamp columns)
_READ_ROWS = 4_096  # rows per batch of the second pass: a text row holds 384 floats, so keep batches small
_NULL_CREATED = np.iinfo(np.int64).min
_REDUCE_AT = 4_000_000  # candidate rows kept before they are reduced to one per entity
CHUNK_BYTES = 64 * 2**20  # bytes of rows handed to the writer at a time


def parquet_files(path: Path) -> list[Path]:
    """The parquet files of a source: the file itself, or a folder's files in name order."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if p.is_file())
    return [path]


def readable(path: Path, key: str, timestamps: list[str], columns: list[str]) -> bool:
    """Whether every file of ``path`` holds ``columns`` with an integer ``key`` and timestamp ``timestamps``.

    Anything else (a missing file, a string timestamp, a partition column) is left to Feast's reader.
    """
    files = parquet_files(path) if path.exists() else []
    if not files:
        return False
    try:
        schemas = [pq.read_schema(f) for f in files]
    except (OSError, pa.ArrowInvalid):
        return False
    for schema in schemas:
        if not set(columns) <= set(schema.names) or not pa.types.is_integer(schema.field(key).type):
            return False
        if not all(pa.types.is_timestamp(schema.field(t).type) for t in timestamps):
            return False
    return True


def _ns(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch in UTC (nulls as the smallest int64)."""
    if pa.types.is_timestamp(values.type):
        values = pc.cast(values, pa.timestamp("ns", tz=values.type.tz))
        values = values.view(pa.int64()) if isinstance(values, pa.Array) else pc.cast(values, pa.int64())
    return np.asarray(pc.fill_null(values, _NULL_CREATED).to_numpy(zero_copy_only=False), dtype=np.int64)


def _bound(ts: datetime) -> int:
    import pandas as pd

    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def leaf_index(meta: pq.FileMetaData, column: str) -> int:
    """Index of a top-level primitive column among a file's parquet leaf columns (-1: none)."""
    return next((i for i in range(meta.num_columns) if meta.schema.column(i).path == column), -1)


def column_bounds(path: Path, column: str) -> tuple[Any, Any] | None:
    """Min and max of a parquet file's column from its row-group statistics (None: no values).

    Falls back to scanning the column a batch at a time when a row group has no statistics.
    """
    handle = pq.ParquetFile(path)
    meta = handle.metadata
    index = leaf_index(meta, column)
    lows: list[Any] = []
    highs: list[Any] = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stats = group.column(index).statistics if index >= 0 else None
        if stats is not None and stats.has_min_max:
            lows.append(stats.min)
            highs.append(stats.max)
        elif group.num_rows and (stats is None or stats.null_count != group.num_rows):
            for batch in handle.iter_batches(batch_size=_SCAN_ROWS, row_groups=[g], columns=[column]):
                bounds = pc.min_max(batch.column(0))
                if bounds["min"].is_valid:
                    lows.append(bounds["min"].as_py())
                    highs.append(bounds["max"].as_py())
    if not lows:
        return None
    return min(lows), max(highs)


def _stat_bounds(meta: pq.FileMetaData, group: int, column: int) -> tuple[int, int] | None:
    if column < 0:
        return None
    stats = meta.row_group(group).column(column).statistics
    if stats is None or not stats.has_min_max:
        return None
    low, high = stats.min, stats.max
    try:
        return _bound(low), _bound(high)
    except (TypeError, ValueError):
        return None


def _reduce(key: np.ndarray, event: np.ndarray, created: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep the latest row per key: by event time, then created time, then position."""
    order = np.lexsort((position, created, event, key))
    key, event, created, position = key[order], event[order], created[order], position[order]
    last = np.ones(len(key), bool)
    last[:-1] = key[1:] != key[:-1]
    return key[last], event[last], created[last], position[last]


def _choose(files: list[Path], key: str, timestamp: str, created: str | None, start: int, end: int) -> np.ndarray:
    """Global positions (file << 48 | group << 32 | row) of each entity's latest row in [start, end]."""
    parts: list[tuple[np.ndarray, ...]] = []
    held = 0
    columns = [key, timestamp, *([created] if created else [])]
    for f, path in enumerate(files):
        handle = pq.ParquetFile(path)
        meta = handle.metadata
        ts_index = leaf_index(meta, timestamp)
        for g in range(meta.num_row_groups):
            bounds = _stat_bounds(meta, g, ts_index)
            if bounds is not None and (bounds[1] < start or bounds[0] > end):
                continue
            offset = 0
            for batch in handle.iter_batches(batch_size=_SCAN_ROWS, row_groups=[g], columns=columns):
                event = _ns(batch.column(timestamp))
                rows = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
                offset += batch.num_rows
                keep = (event >= start) & (event <= end)
                if not keep.any():
                    continue
                keys = np.asarray(batch.column(key).to_numpy(zero_copy_only=False), dtype=np.int64)[keep]
                made = _ns(batch.column(created))[keep] if created else np.full(int(keep.sum()), _NULL_CREATED)
                position = (np.int64(f) << 48) | (np.int64(g) << 32) | rows[keep]
                parts.append(_reduce(keys, event[keep], made, position))
                held += len(parts[-1][0])
                if held > _REDUCE_AT and len(parts) > 1:
                    parts = [_reduce(*(np.concatenate(p) for p in zip(*parts, strict=True)))]
                    held = len(parts[0][0])
    if not parts:
        return np.zeros(0, np.int64)
    chosen = _reduce(*(np.concatenate(p) for p in zip(*parts, strict=True)))[3]
    return np.sort(chosen)


def _tables(files: list[Path], positions: np.ndarray, columns: list[str]) -> Iterator[pa.Table]:
    """The rows at ``positions`` (sorted), a batch of a row group at a time."""
    group_of = positions >> 32
    for f, path in enumerate(files):
        handle = pq.ParquetFile(path)
        lo, hi = np.searchsorted(group_of, [np.int64(f) << 16, (np.int64(f) + 1) << 16])
        if lo == hi:
            continue
        for g in np.unique(group_of[lo:hi] & 0xFFFF):
            wanted = positions[lo:hi][(group_of[lo:hi] & 0xFFFF) == g] & 0xFFFFFFFF
            offset = 0
            for batch in handle.iter_batches(batch_size=_READ_ROWS, row_groups=[int(g)], columns=columns):
                a, b = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                if b > a:
                    yield pa.Table.from_batches([batch]).take(pa.array(wanted[a:b] - offset))
                offset += batch.num_rows


def latest_rows(path: Path, key: str, timestamp: str, created: str | None, columns: list[str],
                start: datetime, end: datetime, chunk_rows: int = 50_000,
                chunk_bytes: int = CHUNK_BYTES) -> Generator[pa.Table]:
    """Each entity's latest row with start <= timestamp <= end, as tables of at most ``chunk_rows`` rows.

    A table is also handed on once it holds about ``chunk_bytes`` (a text row holds 384 floats: 100,000
    of them would be 150 MB before the writer encodes them).

    Args:
        path: a parquet file or a folder of parquet files.
        key: the (int64) entity key column.
        timestamp: the event timestamp column.
        created: the created timestamp column (None: none).
        columns: the columns to return (in this order).
        start: first event time (inclusive).
        end: last event time (inclusive).
        chunk_rows: most rows per table handed on.
        chunk_bytes: a table is handed on once its rows take this many bytes (one small batch more at most).
    """
    files = parquet_files(path)
    positions = _choose(files, key, timestamp, created, _bound(start), _bound(end))
    pending: list[pa.Table] = []
    held = held_bytes = 0
    for table in _tables(files, positions, columns):
        pending.append(table)
        held += table.num_rows
        held_bytes += table.nbytes
        while held >= chunk_rows or (held and held_bytes >= chunk_bytes):
            whole = pa.concat_tables(pending)
            size = min(held, chunk_rows)
            yield whole.slice(0, size).combine_chunks()
            rest = whole.slice(size)
            pending, held = [rest], rest.num_rows
            held_bytes = rest.nbytes if held else 0
    if held or not len(positions):
        yield (pa.concat_tables(pending).combine_chunks() if pending
               else pq.read_schema(files[0]).empty_table().select(columns))
