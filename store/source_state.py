"""What each view's online values were materialized from, so a changed source is materialized again.

Feast records only event-time intervals: a late or corrected row for an event time already
materialized is never read again, and the store says "up to date". So each successful run also
records, per view, the source it read (path or table), a fingerprint of it (a file's size and
modification time; a table's row count and newest timestamps) and the newest ``created_timestamp``
it held. When the fingerprint changes, the rows created after that are the changed span: the
latest row per entity is read again from their earliest event time (the whole source when the view
has no created column or nothing newer is found). The online writers' newer-wins guard keeps
newer values, and an equal event time lets the re-read row win, so a correction (same event time,
newer ``created_timestamp``, which the latest-row read prefers) replaces the old value.

The record is a small JSON file under the home (:func:`core.catalog.materialized_sources`),
written atomically after the online writes; a Postgres row updated in place without a newer
``created_timestamp`` and without changing the row count is not seen as a change.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core import catalog

if TYPE_CHECKING:
    from datetime import datetime

    from core.settings import Settings


@dataclass(frozen=True)
class SourceState:
    """A view's source as it was read.

    Attributes:
        source: the parquet path or the Postgres table.
        fingerprint: changes whenever the source's rows may have changed.
        newest_created: the newest ``created_timestamp`` (ISO, UTC), None when the view has none.
    """

    source: str
    fingerprint: str
    newest_created: str | None = None


def source_file(settings: Settings, source) -> Path | None:
    """A file source's parquet path, a relative one read from the feature repo folder (None: not a file)."""
    path = getattr(source, "path", None)
    if path is None:
        return None
    return Path(path) if Path(path).is_absolute() else settings.feature_repo / path


def _table(source) -> str:
    return source.get_table_query_string().strip('"')


def _iso(value: object) -> str | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).isoformat()


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def read_state(settings: Settings, view) -> SourceState:
    """The current state of a view's source (read before its rows are, so a change during a run shows next time)."""
    source = view.batch_source
    created = source.created_timestamp_column or None
    file = source_file(settings, source)
    if file is not None:
        stat = file.stat()
        newest = None
        if created:
            from store.offline import parquet_span

            span = parquet_span(file, created)  # row-group statistics, not the column
            newest = None if span is None else _iso(span[1])
        return SourceState(str(file), f"{stat.st_size}:{stat.st_mtime_ns}", newest)
    from store.offline import table_fingerprint

    count, newest_created, newest_event = table_fingerprint(settings, _table(source), source.timestamp_field, created)
    fingerprint = f"{count}:{_iso(newest_created)}:{_iso(newest_event)}"
    return SourceState(_table(source), fingerprint, _iso(newest_created))


def changed_from(settings: Settings, view, previous: SourceState) -> pd.Timestamp | None:
    """The earliest event time of rows created after ``previous`` was read; None: unknown (re-read all)."""
    source = view.batch_source
    created = source.created_timestamp_column or None
    if not created or previous.newest_created is None:
        return None
    since = pd.Timestamp(previous.newest_created)
    file = source_file(settings, source)
    if file is not None:
        return _earliest_created_after(file, source.timestamp_field, created, since)
    from store.offline import earliest_created_after

    earliest = earliest_created_after(settings, _table(source), source.timestamp_field, created, since)
    return None if earliest is None else pd.Timestamp(earliest).tz_convert("UTC")


def _earliest_created_after(path: Path, timestamp: str, created: str, since: pd.Timestamp) -> pd.Timestamp | None:
    """The earliest event time among a parquet source's rows created after ``since``, a batch at a time."""
    import pyarrow.parquet as pq

    from store.latest_rows import parquet_files

    earliest = None
    for file in parquet_files(path):
        for batch in pq.ParquetFile(file).iter_batches(batch_size=262_144, columns=[timestamp, created]):
            frame = batch.to_pandas()
            newer = _utc(frame[timestamp])[_utc(frame[created]) > since]
            if not newer.empty and (earliest is None or newer.min() < earliest):
                earliest = newer.min()
    return earliest


def recorded(settings: Settings) -> dict[str, SourceState]:
    """The state each view was last materialized from (empty when nothing was recorded)."""
    path = catalog.materialized_sources(settings)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {name: SourceState(**fields) for name, fields in raw.items()}
    except (ValueError, TypeError):
        return {}  # an unreadable record only costs a full re-read


def record(settings: Settings, view_name: str, state: SourceState) -> None:
    """Remember what ``view_name`` was materialized from (atomic: temp file, then rename)."""
    states = recorded(settings)
    states[view_name] = state
    path = catalog.materialized_sources(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({name: asdict(s) for name, s in sorted(states.items())}, indent=1))
    os.replace(tmp, path)


def _stamp(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def run_start(
    settings: Settings, view, first: object, before: SourceState | None, now: SourceState
) -> tuple[datetime, bool]:
    """Where a view's run starts (UTC), and whether a changed source moved it back.

    Without a recorded interval: just before the source's first row. Otherwise where the last run
    stopped, unless the source changed since it was read: then just before the earliest event time
    among the rows created since, or before the first row when that is unknown (no created column,
    another source, nothing newer found).
    """
    done_until = max((iv[1] for iv in view.materialization_intervals), default=None)
    from_first = (_stamp(first) - pd.Timedelta(seconds=1)).to_pydatetime()
    if done_until is None:
        return from_first, False
    start = _stamp(done_until).to_pydatetime()
    if before is None or before == now:
        return start, False
    earliest = changed_from(settings, view, before) if before.source == now.source else None
    redo = from_first if earliest is None else (max(_stamp(first), _stamp(earliest)) - pd.Timedelta(seconds=1))
    return min(start, pd.Timestamp(redo).to_pydatetime()), True
