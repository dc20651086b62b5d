"""Materialize one view into Persona's SQLite online store or Feast's Redis layout, fast.

Feast's local engine writes about 1.5k entity rows per second here: it builds a ``ValueProto``
object per value and an ``execute`` per (entity, feature). This path reads the latest source row
per entity in Arrow tables and hands them to a columnar writer (:mod:`store.write_sqlite`,
:mod:`store.write_redis`) that produces the *same bytes* as Feast. A Postgres source is read with
a binary ``COPY`` (:func:`store.pg_copy.copy_rows`) by a background thread while Redis writes.
The materialized interval is recorded in Feast's registry exactly as ``feast materialize`` does,
so ``get_online_features`` and ``feast serve`` read the result unchanged.

An older row never overwrites a newer one: the SQLite upsert and the Redis script only replace
a value when the incoming event timestamp is at least as new as the stored one.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING

import pyarrow as pa

from store.latest_rows import latest_rows, readable
from store.write_redis import CHUNK_ROWS, is_cluster, redis_writer, write_redis
from store.write_sqlite import SQLITE_BATCH_ROWS, write_online

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from datetime import datetime


def pull_latest_chunks(config, view, start: datetime, end: datetime,
                       chunk_rows: int = 50_000) -> Generator[pa.Table]:
    """Latest source row per entity with start <= event_timestamp <= end, in tables of ``chunk_rows`` rows.

    A Postgres source is streamed with a binary ``COPY`` of the query Feast's Postgres store runs
    (:func:`store.pg_copy.copy_rows`); other sources, and Postgres columns that reader does
    not decode, are read whole through Feast's offline store. A local parquet source (the embedded
    profile's files) is read in bounded memory by :func:`store.latest_rows.latest_rows`.
    """
    source = view.batch_source
    join_keys = [e.name for e in view.entity_columns]
    features = [f.name for f in view.features]
    created = source.created_timestamp_column or None
    columns = list(dict.fromkeys([*join_keys, *features, source.timestamp_field, *([created] if created else [])]))
    if config.offline_store.type == "postgres" and hasattr(source, "get_table_query_string"):
        from store.feast_internals import postgres_offline_connection
        from store.pg_copy import CopyUnsupported, copy_rows, latest_rows_query

        query = latest_rows_query(source.get_table_query_string(), join_keys, columns, source.timestamp_field,
                                  created, start, end)
        with postgres_offline_connection(config) as conn:
            conn.read_only = True
            conn.execute("SET LOCAL work_mem = '64MB'")  # sort the latest rows in memory, not on disk
            try:
                yield from copy_rows(conn, query, chunk_rows)
                return
            except CopyUnsupported:
                conn.rollback()
    file = _local_parquet(config, source)
    if (file is not None and len(join_keys) == 1 and not source.field_mapping
            and readable(file, join_keys[0], [source.timestamp_field, *([created] if created else [])], columns)):
        yield from latest_rows(file, join_keys[0], source.timestamp_field, created, columns, start, end, chunk_rows)
        return
    from store.feast_internals import offline_store_of

    job = offline_store_of(config).pull_latest_from_table_or_query(
        config=config,
        data_source=source,
        join_key_columns=join_keys,
        feature_name_columns=features,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        start_date=start,
        end_date=end,
    )
    yield job.to_arrow()


def _local_parquet(config, source) -> Path | None:
    """The local parquet file or folder of a file source (None: another source, or a remote path)."""
    path = getattr(source, "path", None)
    if config.offline_store.type != "duckdb" or not path or "://" in str(path):
        return None
    file = Path(path)
    return file if file.is_absolute() else Path(config.repo_path) / file


def pull_latest(store, view, start: datetime, end: datetime) -> pa.Table:
    """Latest source row per entity with start <= event_timestamp <= end (see :func:`pull_latest_chunks`)."""
    return pa.concat_tables(pull_latest_chunks(store.config, view, start, end))


def _read_ahead(produce: Callable[[], Generator[pa.Table]], depth: int = 2) -> Generator[pa.Table]:
    """The tables of ``produce()``, made by a background thread up to ``depth`` tables ahead.

    Reading the source (mostly waiting for Postgres) then overlaps writing the online store.
    An error of the producer is raised here; a consumer that stops early stops the producer.
    """
    done = object()
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            with contextlib.closing(produce()) as tables:
                for table in tables:
                    while not stop.is_set():
                        try:
                            queue.put(table, timeout=0.1)
                            break
                        except Full:
                            continue
                    if stop.is_set():
                        return
            queue.put(done)
        except BaseException as exc:  # handed to the consumer
            queue.put(exc)

    thread = threading.Thread(target=run, name="persona-materialize-read", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                queue.get(timeout=0.1)
            except Empty:
                continue
        thread.join()


def materialize_view_fast(
    store,
    view,
    start: datetime,
    end: datetime,
    progress: Callable[[int], None] | None = None,
    batch_rows: int | None = None,
) -> int:
    """Materialize one view (Persona's SQLite store or Redis) and record the interval in the registry.

    The interval is recorded only after every row is written: a run that dies part way leaves
    the view's interval where it was, so the next run writes the whole interval again (rows
    already written are rewritten with the same values; newer ones are kept).

    Args:
        store: the Feast store.
        view: the feature view.
        start: first event time to load.
        end: last event time to load.
        progress: called with the rows of each written batch.
        batch_rows: entity rows per write (one SQLite ``executemany`` or one Redis round trip);
            default: the writer's own.

    Returns:
        Entity rows written.
    """
    sizing = {"batch_rows": batch_rows} if batch_rows else {}
    if store.config.online_store.type == "redis" and not is_cluster(store):
        # the source is read (a background thread) while Redis writes; chunks hold whole writes
        with redis_writer(store, view, batch_rows, progress) as writer:
            rows = writer.batch_rows
            chunk_rows = rows * max(1, CHUNK_ROWS // rows)
            with contextlib.closing(_read_ahead(lambda: pull_latest_chunks(store.config, view, start, end,
                                                                           chunk_rows))) as tables:
                for table in tables:
                    writer.write(table)
        written = writer.written
    elif store.config.online_store.type == "redis":
        written = write_redis(store, view, pull_latest(store, view, start, end), progress=progress, **sizing)
    else:
        # one chunk of latest rows at a time: memory holds a chunk, not the view's whole interval
        chunk_rows = batch_rows or SQLITE_BATCH_ROWS
        written = 0
        with contextlib.closing(pull_latest_chunks(store.config, view, start, end, chunk_rows)) as tables:
            for table in tables:
                written += write_online(store, view, table, progress=progress, **sizing)
    store.registry.apply_materialization(view, store.project, start, end)
    return written


# Failures a rerun can cure: the online store or the source was unreachable, or the run was cut short.
_TRANSIENT = frozenset({"ConnectionError", "TimeoutError", "OperationalError", "BusyLoadingError", "InterruptedError"})


def failure_remedy(exc: BaseException) -> str:
    """What to say after a view failed: rerun after a passing outage, else fix the view or its rows.

    Only an unreachable store or source is cured by running again; a value that does not fit the
    view's declared type fails the same way every time.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, (ConnectionError, TimeoutError)) or names & _TRANSIENT:
        return "rerun `persona features materialize` once the store is reachable (it converges)"
    return ("a rerun will not fix this: check the view's declared types and its source's rows "
            "(`persona features apply` checks the types)")
