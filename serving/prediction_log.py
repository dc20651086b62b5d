"""The prediction log: every served feature vector and prediction, for monitoring.

Requests hand their rows to :meth:`PredictionLog.append` (a list append under a lock); a
background thread turns them into Arrow tables and writes one parquet file per flush under
``<serving_dir>/prediction_log/date=YYYY-MM-DD/`` (atomically: temp file + rename, so a reader
never sees half a file). :meth:`PredictionLog.close` writes whatever is pending, so a clean
shutdown loses nothing; and each request's rows are first appended to a write-ahead file
(:mod:`serving.wal`) before it is answered, so a killed process loses nothing it answered either:
the next start replays what the dead process left.

Columns: ``request_id, served_at`` (UTC), ``endpoint, customer_id, model_version``, every
feature column of the model that served the row, ``features_at`` (``predict`` only: the newest
event time of the online feature rows served, the online store's text; what the skew replay
rebuilds offline), every prediction column, ``cold_start_reason`` (null when the model
predicted). Rows served by models with different feature columns land in separate files;
:func:`read_prediction_log` reads them all back.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.wal import WriteAheadLog, encode, replay

logger = logging.getLogger(__name__)

META_COLUMNS = ("request_id", "served_at", "endpoint", "customer_id", "model_version")
REASON_COLUMN = "cold_start_reason"
FEATURES_AT = "features_at"


@dataclass
class LogBatch:
    """The rows of one request (columns of equal length; built on the request path, cheaply).

    Attributes:
        request_id: the request's id (also returned to the caller).
        served_at: when the request was answered (UTC).
        endpoint: ``predict`` or ``predict_features``.
        model_version: registered model version that served it (empty when none).
        customer_ids: one per row (None when the caller gave features without an id).
        features: feature column -> values (float64 or object arrays); or, cheaper on the request
            path, leave it empty and give ``numeric_columns``/``numeric`` and
            ``string_columns``/``strings`` blocks (split into columns by the writer thread).
        predictions: prediction column -> values (NaN / None for cold starts).
        reasons: cold-start reason per row (None when predicted).
    """

    request_id: str
    served_at: dt.datetime
    endpoint: str
    model_version: str
    customer_ids: list[int | None]
    features: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    reasons: list[str | None]
    numeric_columns: tuple[str, ...] = ()
    numeric: np.ndarray | None = None
    string_columns: tuple[str, ...] = ()
    strings: np.ndarray | None = None
    feature_order: tuple[str, ...] = ()
    row_meta: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    """Per-row request_id, served_at (µs since the epoch), endpoint and model_version of a
    :func:`combine`-d batch."""

    def __len__(self) -> int:
        return len(self.customer_ids)

    @property
    def layout(self) -> tuple:
        """Batches with the same layout are written together (one Arrow conversion per column)."""
        return (
            self.numeric_columns,
            self.string_columns,
            self.feature_order,
            tuple(self.features),
            tuple(self.predictions),
        )

    def to_arrow(self) -> pa.Table:
        """The rows as one Arrow table in the log's schema."""
        request_ids, served_us, endpoints, versions = self.row_meta or _meta([self])
        columns: dict[str, pa.Array] = {
            "request_id": _arrow(request_ids),
            "served_at": pa.array(served_us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "endpoint": _arrow(endpoints),
            "customer_id": pa.array(self.customer_ids, type=pa.int64()),
            "model_version": _arrow(versions),
        }
        features = dict(self.features)
        if self.numeric is not None:
            features.update({c: self.numeric[:, j] for j, c in enumerate(self.numeric_columns)})
        if self.strings is not None:
            features.update({c: self.strings[:, j] for j, c in enumerate(self.string_columns)})
        order = [c for c in self.feature_order if c in features] + [c for c in features if c not in self.feature_order]
        for name in order:
            columns[name] = _arrow(features[name])
        not_predicted = np.array([r is not None for r in self.reasons], dtype=bool)
        for name, values in self.predictions.items():
            columns[name] = _arrow(values, null=not_predicted)
        columns[REASON_COLUMN] = pa.array(self.reasons, type=pa.string())
        return pa.table(columns)


def combine(batches: list[LogBatch]) -> LogBatch:
    """Several batches of one layout as one (per-row request ids and times kept)."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]

    def stack(blocks: list[np.ndarray | None]) -> np.ndarray | None:
        present = [b for b in blocks if b is not None]
        return None if blocks[0] is None else np.concatenate(present)

    merged = LogBatch(
        request_id=first.request_id,
        served_at=first.served_at,
        endpoint=first.endpoint,
        model_version=first.model_version,
        customer_ids=[c for b in batches for c in b.customer_ids],
        features={k: np.concatenate([b.features[k] for b in batches]) for k in first.features},
        predictions={k: np.concatenate([np.asarray(b.predictions[k]) for b in batches]) for k in first.predictions},
        reasons=[r for b in batches for r in b.reasons],
        numeric_columns=first.numeric_columns,
        numeric=stack([b.numeric for b in batches]),
        string_columns=first.string_columns,
        strings=stack([b.strings for b in batches]),
        feature_order=first.feature_order,
        row_meta=_meta(batches),
    )
    return merged


def _meta(batches: list[LogBatch]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-row request ids, serve times (µs), endpoints and versions, repeated in C, not Python."""
    counts = np.array([len(b) for b in batches])
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def repeat(values: list) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return np.repeat(out, counts)

    micros = np.array([(b.served_at - epoch) // dt.timedelta(microseconds=1) for b in batches], dtype=np.int64)
    return (
        repeat([b.request_id for b in batches]),
        np.repeat(micros, counts),
        repeat([b.endpoint for b in batches]),
        repeat([b.model_version for b in batches]),
    )


def _arrow(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Numbers as float64 / int64, anything else as strings; ``null`` rows (and NaN) become null."""
    values = np.asarray(values)
    mask = np.zeros(len(values), dtype=bool) if null is None else null
    if values.dtype.kind == "f":
        return pa.array(values.astype(np.float64), mask=mask | ~np.isfinite(values))
    if values.dtype.kind in "iub":
        return pa.array(values.astype(np.int64), mask=mask)
    try:  # str/None object arrays convert in C
        return pa.array(values, type=pa.string(), mask=mask | (values == None))  # noqa: E711
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = [None if v is None or m else str(v) for v, m in zip(values.tolist(), mask.tolist(), strict=True)]
        return pa.array(texts, type=pa.string())


class PredictionLog:
    """Batched, background parquet writer (see module docstring).

    Args:
        directory: where partitions are written (``settings.serving_dir / "prediction_log"``).
        flush_seconds: longest time a row waits in memory.
        flush_rows: pending rows that trigger an early write.
        max_pending_rows: beyond this (a stuck disk), new rows are counted as dropped.
        wal: append each batch to the write-ahead file before :meth:`append` returns.
        fsync: fsync each write-ahead record (survives a power loss, not only a killed process).
    """

    def __init__(
        self,
        directory: Path,
        flush_seconds: float = 2.0,
        flush_rows: int = 20_000,
        max_pending_rows: int = 2_000_000,
        wal: bool = True,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self._wal = WriteAheadLog(self.directory, fsync) if wal else None
        self._segments: list[Path] = []  # closed write-ahead segments whose rows are pending
        self.rows_replayed = 0
        self.wal_errors = 0
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.max_pending_rows = max_pending_rows
        self._pending: list[LogBatch] = []
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.rows_dropped = 0
        self.files_written = 0
        self.last_error: str | None = None

    def start(self) -> PredictionLog:
        """Write what a stopped process left in the write-ahead file, then start the writer (idempotent)."""
        if self._thread is None and self._wal is not None:
            try:
                self.rows_replayed += replay(self.directory, self._write)[0]
            except Exception as exc:  # serve anyway; the segments stay for the next start
                self.last_error = f"replay: {type(exc).__name__}: {exc}"
                logger.exception("prediction log: replaying the write-ahead file failed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()
        return self

    def append(self, batch: LogBatch) -> None:
        """Queue a request's rows, after one write of them to the write-ahead file."""
        if not len(batch):
            return
        record = encode(batch) if self._wal is not None else None
        with self._lock:
            if self._pending_rows + len(batch) > self.max_pending_rows:
                self.rows_dropped += len(batch)
                return
            if self._wal is not None and record is not None:
                try:
                    self._wal.append(record)
                except OSError as exc:  # keep serving; the rows still reach parquet from memory
                    self.wal_errors += 1
                    self.last_error = f"write-ahead file: {type(exc).__name__}: {exc}"
            self._pending.append(batch)
            self._pending_rows += len(batch)
            wake = self._pending_rows >= self.flush_rows
        if wake:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        """Rows accepted but not yet written."""
        return self._pending_rows

    def flush(self) -> int:
        """Write everything pending now (from any thread). Returns rows written."""
        with self._lock:
            batches, self._pending, self._pending_rows = self._pending, [], 0
            segment = self._wal.rotate() if self._wal is not None else None
            segments, self._segments = [*self._segments, *([segment] if segment else [])], []
        if not batches:
            _unlink(segments)
            return 0
        try:
            written = self._write(batches)
        except Exception as exc:  # keep serving; put the rows back for the next attempt
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("prediction log write failed; will retry")
            with self._lock:
                self._pending = batches + self._pending
                self._pending_rows += sum(len(b) for b in batches)
                self._segments = segments + self._segments
            return 0
        _unlink(segments)  # their rows are in parquet now
        return written

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer and write every pending row."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def _write(self, batches: list[LogBatch]) -> int:
        groups: dict[tuple, list[LogBatch]] = {}
        for batch in batches:
            groups.setdefault((batch.served_at.date(), batch.layout), []).append(batch)
        written = 0
        for (served_on, _), group in groups.items():
            written += self._write_table(served_on.isoformat(), combine(group).to_arrow())
        self.rows_written += written
        return written

    def _write_table(self, day: str, table: pa.Table) -> int:
        folder = self.directory / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = path.with_name("." + path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self.files_written += 1
        return table.num_rows


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def read_prediction_log(directory: Path, since: dt.datetime | None = None) -> pd.DataFrame:
    """Every logged row (union of columns across model versions), oldest first.

    Args:
        directory: ``settings.serving_dir / "prediction_log"``.
        since: only rows served at or after this time (UTC).
    """
    files = sorted(Path(directory).glob("date=*/part-*.parquet"))
    if since is not None:
        first_day = (
            pd.Timestamp(since).tz_convert("UTC").date().isoformat()
            if pd.Timestamp(since).tzinfo
            else pd.Timestamp(since).date().isoformat()
        )
        files = [f for f in files if f.parent.name.removeprefix("date=") >= first_day]
    if not files:
        return pd.DataFrame(columns=[*META_COLUMNS, REASON_COLUMN])
    tables = [pq.read_table(f) for f in files]
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    if since is not None:
        stamp = pd.Timestamp(since)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        frame = frame[frame["served_at"] >= stamp]
    return frame.sort_values("served_at", kind="stable").reset_index(drop=True)
