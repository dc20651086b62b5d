"""Newer-wins writes of a view's rows into Feast's Redis layout, built as Redis protocol bytes.

Keys, hashed field names and value bytes are exactly those of Feast's Redis store
(:mod:`store.layout`, :mod:`store.codec`; tests compare them with what Feast writes), so
``get_online_features`` and ``feast serve`` read the result unchanged. Rows go as one script
call per few hundred entities (newer-wins per entity, :data:`REDIS_UPSERT`), several calls sent
per round trip, the next write sent before the previous one is answered.

Where the time goes for 1M behavior rows: the Redis server's CPU (the hash write itself, then
the script's guard and argument handling); the client's reading, encoding and sending is small
next to it (see the benchmark table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from store.codec import NO_FRAMING, RESP_FRAMING, Framing, encode_value_array, fixed_width, resp
from store.layout import encode_int64_entity_keys, entity_key_block, redis_field_names

if TYPE_CHECKING:
    from collections.abc import Callable


# Newer-wins upsert of several entity hashes in one call. KEYS: the hashes. ARGV[1]: the guard
# field; ARGV[2]: n; ARGV[3 .. 2 + n]: the n field names (``_ts:<view>``, then each feature's
# hashed name); then per entity its sortable event time and its n values. An entity whose stored
# event time is newer is left as it is.
REDIS_UPSERT = """
local guard = ARGV[1]
local n = tonumber(ARGV[2])
local args = {guard, ''}
for j = 1, n do
  args[2 * j + 1] = ARGV[2 + j]
  args[2 * j + 2] = ''
end
local written = 0
for i = 1, #KEYS do
  local first = 3 + n + (i - 1) * (n + 1)
  local current = redis.call('HGET', KEYS[i], guard)
  if not current or current <= ARGV[first] then
    args[2] = ARGV[first]
    for j = 1, n do
      args[2 * j + 2] = ARGV[first + j]
    end
    redis.call('HSET', KEYS[i], unpack(args, 1, 2 + 2 * n))
    written = written + 1
  end
end
return written
"""
REDIS_KEYS_PER_CALL = 500  # entity hashes per script call
REDIS_BATCH_ROWS = 20_000  # entity rows per write (one round trip)
CHUNK_ROWS = 50_000  # rows read and encoded at once (~20 MB for 50k behavior rows)


def _sortable_nanos(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Event times as 20 decimal digits that sort like time (offset past int64's sign), one row each."""
    nanos = pc.cast(column, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    shifted = nanos.astype(np.uint64) ^ np.uint64(1 << 63)
    powers = np.uint64(10) ** np.arange(19, -1, -1, dtype=np.uint64)
    return ((shifted[:, None] // powers) % np.uint64(10)).astype(np.uint8) + ord("0")


def _timestamp_protos(column: pa.ChunkedArray | pa.Array, framing: Framing | None = None) -> pa.Array:
    """Serialized ``google.protobuf.Timestamp`` per row, as Feast's Redis store writes ``_ts:<view>``."""
    from google.protobuf.timestamp_pb2 import Timestamp

    head_of, tail = framing or NO_FRAMING
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(column)
    table = []
    for value in encoded.dictionary.to_pandas():
        proto = Timestamp()
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        proto.FromDatetime(stamp.to_pydatetime())
        serialized = proto.SerializeToString()
        table.append(head_of(len(serialized)) + serialized + tail)
    return pa.array(table, pa.large_binary()).take(encoded.indices)


def _redis_rows(view, batch: pa.Table, framing: Framing) -> list[pa.Array]:
    """Per entity row, its script arguments: sortable event time, ``_ts`` Timestamp, then each feature's value."""
    head_of, tail = framing
    timestamps = batch.column(view.batch_source.timestamp_field)
    digits = _sortable_nanos(timestamps)
    head = head_of(20)
    layout = ([("head", f"S{len(head)}")] if head else []) + [("digits", "S20")]
    order = np.empty(len(digits), dtype=np.dtype(layout + ([("tail", f"S{len(tail)}")] if tail else [])))
    if head:
        order["head"] = head
    order["digits"] = digits.view("S20").ravel()
    if tail:
        order["tail"] = tail
    args = [fixed_width(order), _timestamp_protos(timestamps, framing)]
    args += [encode_value_array(batch.column(f.name), f.dtype.to_value_type(), framing) for f in view.features]
    return args


class RedisUpsert:
    """Newer-wins writes of a view's rows into Feast's Redis layout over one connection.

    Keys, hashed field names and value bytes are exactly those of Feast's Redis store, so
    ``get_online_features`` reads them; an extra field ``_persona_ts:<view>`` holds a sortable
    event time that the server-side script (:data:`REDIS_UPSERT`) compares before writing each
    entity. Each write sends ``batch_rows`` entity rows in one go, as script calls of up to
    ``keys_per_call`` entities built as Redis protocol bytes column by column (no Python object
    per value). One write may wait for its replies while the next is sent, so Redis is kept busy
    while the caller encodes; ``progress`` hears of rows once Redis has answered for them.
    """

    def __init__(self, client, project: str, view, batch_rows: int = 20_000,
                 progress: Callable[[int], None] | None = None, keys_per_call: int = REDIS_KEYS_PER_CALL) -> None:
        self.pool = client.connection_pool
        self.connection: Any = None  # a redis-py connection of the pool, while entered
        self.view = view
        self.join_key = view.entity_columns[0].name
        self.project = project.encode("utf8")
        self.batch_rows = batch_rows
        self.keys_per_call = keys_per_call
        self.progress = progress
        names = redis_field_names(view)
        self.stride = 1 + len(names)  # sortable time, then one value per field
        self.script_arg = resp(REDIS_UPSERT.encode())
        self.shared_args = b"".join(resp(v) for v in [f"_persona_ts:{view.name}".encode(),
                                                        str(len(names)).encode(), *names])
        self.shared_count = 2 + len(names)
        self.unanswered: list[tuple[int, int]] = []  # (script calls, rows) per write sent
        self.written = 0

    def __enter__(self) -> RedisUpsert:
        self.connection = self.pool.get_connection()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        clean = kind is None
        try:
            if clean:
                self._collect(0)
        except BaseException:
            clean = False
            raise
        finally:
            if not clean:
                self.connection.disconnect()  # replies may be left unread
            self.pool.release(self.connection)

    def write(self, table: pa.Table) -> None:
        """Send the rows of ``table`` (one per entity) in writes of ``batch_rows`` rows."""
        chunk_rows = self.batch_rows * max(1, CHUNK_ROWS // self.batch_rows)  # whole writes per chunk
        for chunk_start in range(0, table.num_rows, chunk_rows):
            self._write_chunk(table.slice(chunk_start, chunk_rows))

    def _write_chunk(self, chunk: pa.Table) -> None:
        keys = entity_key_block(self.join_key, chunk.column(self.join_key).to_numpy(), self.project, RESP_FRAMING)
        key_bytes = keys.view(np.uint8).reshape(len(keys), keys.dtype.itemsize)
        rows = pc.binary_join_element_wise(*_redis_rows(self.view, chunk, RESP_FRAMING),
                                           pa.scalar(b"", pa.large_binary()))
        offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + len(rows) + 1]
        data = memoryview(rows.buffers()[2])
        for write_start in range(0, chunk.num_rows, self.batch_rows):
            write_stop = min(write_start + self.batch_rows, chunk.num_rows)
            parts: list[Any] = []  # bytes and memoryviews, joined once
            calls = 0
            for first in range(write_start, write_stop, self.keys_per_call):
                last = min(first + self.keys_per_call, write_stop)
                count = last - first
                # EVAL script numkeys key... guard n name... (time value...)...
                parts += [b"*%d\r\n$4\r\nEVAL\r\n" % (3 + count + self.shared_count + count * self.stride),
                          self.script_arg, resp(b"%d" % count), key_bytes[first:last].tobytes(), self.shared_args,
                          data[offsets[first] : offsets[last]]]
                calls += 1
            self._collect(1)
            self.connection.send_packed_command([b"".join(parts)], check_health=False)
            self.unanswered.append((calls, write_stop - write_start))

    def _collect(self, keep: int) -> None:
        """Read replies until at most ``keep`` writes are unanswered."""
        while len(self.unanswered) > keep:
            calls, rows = self.unanswered.pop(0)
            for _ in range(calls):
                self.connection.read_response()
            self.written += rows
            if self.progress:
                self.progress(rows)


def redis_writer(store, view, batch_rows: int | None = None,
                 progress: Callable[[int], None] | None = None) -> RedisUpsert:
    """A :class:`RedisUpsert` on the store's Redis (use as ``with ... as writer: writer.write(table)``)."""
    from store.feast_internals import redis_client_of

    client = redis_client_of(store)
    return RedisUpsert(client, store.config.project, view, batch_rows or REDIS_BATCH_ROWS, progress)


def write_redis(
    store,
    view,
    table: pa.Table,
    batch_rows: int = REDIS_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Upsert rows into Feast's Redis layout (one hash per entity), newer-wins (see :class:`RedisUpsert`).

    Returns:
        Entity rows written.
    """
    from redis.cluster import RedisCluster

    from store.feast_internals import redis_client_of

    client = redis_client_of(store)
    if isinstance(client, RedisCluster):  # keys of one call must share a slot: one entity per call
        return _write_redis_per_key(client, store.config.project.encode(), view, table, batch_rows, progress)
    with RedisUpsert(client, store.config.project, view, batch_rows, progress) as writer:
        writer.write(table)
    return writer.written


def _write_redis_per_key(client, project: bytes, view, table: pa.Table, batch_rows: int,
                         progress: Callable[[int], None] | None) -> int:
    """The same upsert through redis-py, one entity per script call (Redis Cluster)."""
    script = client.register_script(REDIS_UPSERT)
    join_key = view.entity_columns[0].name
    names = redis_field_names(view)
    shared = [f"_persona_ts:{view.name}".encode(), str(len(names)).encode(), *names]
    written = 0
    for offset in range(0, table.num_rows, batch_rows):
        batch = table.slice(offset, batch_rows)
        keys = [k + project for k in encode_int64_entity_keys(join_key, batch.column(join_key).to_numpy())]
        columns = [c.to_pylist() for c in _redis_rows(view, batch, NO_FRAMING)]
        with client.pipeline(transaction=False) as pipe:
            for row, key in enumerate(keys):
                script(keys=[key], args=[*shared, *(column[row] for column in columns)], client=pipe)
            pipe.execute()
        written += batch.num_rows
        if progress:
            progress(batch.num_rows)
    return written


def is_cluster(store) -> bool:
    """Whether the store's Redis is a Redis Cluster (keys of one script call must then share a slot)."""
    from redis.cluster import RedisCluster

    from store.feast_internals import redis_client_of

    return isinstance(redis_client_of(store), RedisCluster)
