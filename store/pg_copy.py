"""Postgres binary ``COPY`` decoded column by column into Arrow (the prod materialization fast path).

Feast's Postgres offline store returns rows one Python tuple at a time; a binary ``COPY`` of the
latest row per entity, decoded with numpy, streams a million rows in seconds. Only the column
types below are decoded here; anything else raises :class:`CopyUnsupported` and the caller falls
back to Feast's own reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

# --------------------------------------------------------------------------- latest rows by binary COPY
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (Postgres' epoch) in microseconds since 1970-01-01
# type OID -> (big-endian numpy type, Arrow type, a value of the type that stands in for NULL)
_PG_FIXED: dict[int, tuple[str, pa.DataType, str]] = {
    16: (">u1", pa.bool_(), "f"),
    20: (">i8", pa.int64(), "0"),
    21: (">i2", pa.int16(), "0"),
    23: (">i4", pa.int32(), "0"),
    700: (">f4", pa.float32(), "0"),
    701: (">f8", pa.float64(), "0"),
    1114: (">i8", pa.timestamp("us"), "epoch"),
    1184: (">i8", pa.timestamp("us", tz="UTC"), "epoch"),
}
_PG_TEXT = {25, 1042, 1043}  # text, character, character varying
_PG_ARRAYS = {1000: 16, 1005: 21, 1007: 23, 1016: 20, 1021: 700, 1022: 701}  # array OID -> element OID
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_FLAG_BITS = 62  # null flags per bigint column


class CopyUnsupported(Exception):
    """The source has a column the binary COPY reader does not decode (read it another way)."""


def latest_rows_query(from_expression: str, join_keys: list[str], columns: list[str], timestamp_field: str,
                      created_field: str | None, start: datetime, end: datetime):
    """Latest row per entity with ``start <= timestamp <= end``: the query Feast's Postgres store runs."""
    from psycopg import sql

    selected = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    partition = sql.SQL(", ").join(sql.Identifier(k) for k in join_keys)
    order = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(c))
                               for c in [timestamp_field, *([created_field] if created_field else [])])
    return sql.SQL(
        "SELECT {selected} FROM (SELECT {selected}, ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order}) "
        "AS _persona_row FROM {source} a WHERE {ts} BETWEEN {start} AND {end}) b WHERE _persona_row = 1"
    ).format(selected=selected, partition=partition, order=order, source=sql.SQL(from_expression),
             ts=sql.Identifier(timestamp_field), start=sql.Literal(start), end=sql.Literal(end))


def copy_rows(conn, query, chunk_rows: int = 50_000) -> Iterator[pa.Table]:
    """The rows of ``query`` as Arrow tables of ``chunk_rows`` rows each (at least one table, maybe empty).

    Read with ``COPY ... TO STDOUT (FORMAT binary)``.

    No Python object is made per value: fixed-width columns are sent first, never NULL (a stand-in
    value plus a null-flag bit per column), so their bytes sit at the same offset in every row and
    numpy slices them out for all rows at once; text and array columns follow and are decoded
    column by column. Postgres sends one CopyData message per row, which gives the row boundaries.
    While waiting for Postgres the reader releases the GIL, so another thread can work meanwhile.

    Raises:
        CopyUnsupported: a column type this reader does not decode (before any row is read).
        PersonaError: Postgres refused the query or sent a stream that does not decode.
    """
    from psycopg import sql

    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM ({}) q LIMIT 0").format(query))
        described = [(d.name, d.type_code) for d in cur.description]
    for name, oid in described:
        if oid not in _PG_FIXED and oid not in _PG_TEXT and oid not in _PG_ARRAYS:
            raise CopyUnsupported(f"column {name} has Postgres type OID {oid}")
    fixed = [(name, oid) for name, oid in described if oid in _PG_FIXED]
    ragged = [(name, oid) for name, oid in described if oid not in _PG_FIXED]
    flag_columns = [fixed[i : i + _FLAG_BITS] for i in range(0, len(fixed), _FLAG_BITS)]
    outputs: list[sql.Composable] = [
        sql.SQL("coalesce({}, {})").format(sql.Identifier(name), sql.Literal(_PG_FIXED[oid][2])) for name, oid in fixed
    ]
    outputs += [sql.SQL(" | ").join(sql.SQL("(({} IS NULL)::int::int8 << {})").format(sql.Identifier(name),
                                                                                       sql.Literal(bit))
                                    for bit, (name, _) in enumerate(group)) for group in flag_columns]
    # a NULL element of a float array arrives as NaN, as Arrow's conversion of Feast's rows gives it
    outputs += [sql.SQL("array_replace({}, NULL, 'NaN')").format(sql.Identifier(name))
                if _PG_ARRAYS.get(oid) in (700, 701) else sql.Identifier(name) for name, oid in ragged]
    copy = sql.SQL("COPY (SELECT {} FROM ({}) q) TO STDOUT (FORMAT binary)").format(sql.SQL(", ").join(outputs),
                                                                                     query)
    dtypes = [_PG_FIXED[oid][0] for _, oid in fixed] + [">i8"] * len(flag_columns)
    first = True
    for data, sizes, last in _stream_copy(conn, copy.as_bytes(conn), chunk_rows):
        buf = np.frombuffer(data, dtype=np.uint8)
        starts, ends = _row_bounds(buf, sizes, len(dtypes) + len(ragged), first, last)
        first = False
        values, pos = _decode_fixed(buf, starts, ends, dtypes)
        columns: dict[str, pa.Array] = {}
        for index, (name, oid) in enumerate(fixed):
            flags = values[len(fixed) + index // _FLAG_BITS]
            nulls = (flags >> np.int64(index % _FLAG_BITS)) & 1 == 1
            arrow_type = _PG_FIXED[oid][1]
            column = values[index]
            if pa.types.is_timestamp(arrow_type):
                column = column + _PG_EPOCH_US
            elif pa.types.is_boolean(arrow_type):
                column = column.astype(bool)
            columns[name] = pa.array(column, type=arrow_type, mask=nulls if nulls.any() else None)
        for name, oid in ragged:
            lengths = _gather(buf, pos, ">i4").astype(np.int64)
            nulls = lengths < 0
            data_pos = pos + 4
            pos = data_pos + np.maximum(lengths, 0)
            if oid in _PG_TEXT:
                columns[name] = _decode_text(buf, data_pos, lengths, nulls)
            else:
                columns[name] = _decode_arrays(name, buf, _PG_ARRAYS[oid], data_pos, lengths, nulls)
        if not (pos == ends).all():
            raise PersonaError("COPY from Postgres: row lengths do not match the decoded fields")
        yield pa.Table.from_arrays([columns[name] for name, _ in described], names=[name for name, _ in described])


def _stream_copy(conn, statement: bytes, chunk_rows: int) -> Iterator[tuple[bytearray, np.ndarray, bool]]:
    """Run a ``COPY ... TO STDOUT``: its bytes every ``chunk_rows`` CopyData messages.

    Each part comes with each message's size and whether the stream ended; waits for the socket
    outside the GIL.
    """
    import select

    from psycopg import pq

    pgconn = conn.pgconn
    pgconn.send_query(statement)
    result = pgconn.get_result()
    if result.status != pq.ExecStatus.COPY_OUT:
        message = result.error_message.decode(errors="replace").strip()
        while pgconn.get_result() is not None:
            pass
        raise PersonaError(f"COPY from Postgres failed: {message}")
    data = bytearray()
    sizes: list[int] = []
    get = pgconn.get_copy_data
    try:
        while True:
            size, chunk = get(1)
            if size > 0:
                data += chunk
                sizes.append(size)
                if len(sizes) > chunk_rows:  # the newest message opens the next part: the last holds the trailer
                    cut = len(data) - size
                    yield data[:cut], np.asarray(sizes[:-1], dtype=np.int64), False
                    data, sizes = data[cut:], sizes[-1:]
            elif size == 0:  # nothing buffered: wait for Postgres
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
            else:
                break
    except BaseException:
        conn.close()  # abandoned mid-stream (a reader that stopped, an interrupt): nothing more to read
        raise
    error = None
    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            error = result.error_message.decode(errors="replace").strip()
    if error:
        raise PersonaError(f"COPY from Postgres failed: {error}")
    yield data, np.asarray(sizes, dtype=np.int64), True


def _row_bounds(buf: np.ndarray, sizes: np.ndarray, fields: int, first: bool, last: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offset of every row of a part of a binary COPY stream (one message per row).

    The ``first`` part begins with the stream's header, the ``last`` one ends with its trailer.
    """
    ends = np.cumsum(sizes)
    starts = ends - sizes
    if first:
        if buf[: len(_COPY_SIGNATURE)].tobytes() != _COPY_SIGNATURE:
            raise PersonaError("COPY from Postgres: not a binary COPY stream")
        starts[0] = len(_COPY_SIGNATURE) + 8 + int(_gather(buf, np.array([len(_COPY_SIGNATURE) + 4]), ">i4")[0])
    if last:
        if buf[-2:].tobytes() != b"\xff\xff":
            raise PersonaError("COPY from Postgres: the stream ends without its trailer")
        ends[-1] -= 2
    keep = ends > starts  # the header and the trailer may come in messages of their own
    starts, ends = starts[keep], ends[keep]
    if len(starts) and not (_gather(buf, starts, ">i2") == fields).all():
        raise PersonaError("COPY from Postgres: a row does not hold one field per column")
    return starts, ends


def _decode_fixed(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, dtypes: list[str]
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """The leading never-NULL fixed-width fields of every row; and where each row's next field starts.

    Their bytes sit at the same offset of every row: read as a numpy record per row, straight from
    the buffer when all rows have one length, else from the rows' gathered leading bytes.
    """
    names = [f"f{i}" for i in range(len(dtypes))]
    layout = [("fields", ">i2")] + [item for name, dtype in zip(names, dtypes, strict=True)
                                    for item in ((f"{name}_size", ">i4"), (name, dtype))]
    record = np.dtype(layout)
    count = len(starts)
    length = int(ends[0] - starts[0]) if count else record.itemsize
    if count and length >= record.itemsize and (ends - starts == length).all() \
            and ends[-1] - starts[0] == count * length:
        field_names = record.names or ()  # a record dtype: never None
        fields: dict[str, Any] = dict(record.fields or {})
        spec: Any = {"names": list(field_names), "formats": [fields[n][0] for n in field_names],
                                "offsets": [fields[n][1] for n in field_names], "itemsize": length}
        padded = np.dtype(spec)
        rows = np.frombuffer(buf, dtype=padded, count=count, offset=int(starts[0]))
    else:
        if ((ends - starts) < record.itemsize).any():
            raise PersonaError("COPY from Postgres: a row is shorter than its fixed-width fields")
        windows = np.lib.stride_tricks.as_strided(buf, shape=(max(len(buf) - record.itemsize + 1, 0),
                                                              record.itemsize), strides=(1, 1))
        rows = np.ascontiguousarray(windows[starts]).view(record).ravel()
    values = []
    for name, dtype in zip(names, dtypes, strict=True):
        if not (rows[f"{name}_size"] == np.dtype(dtype).itemsize).all():
            raise PersonaError("COPY from Postgres: a fixed-width field has an unexpected length")
        values.append(rows[name].astype(np.dtype(dtype).newbyteorder("=")))
    return values, starts + record.itemsize


def _gather(buf: np.ndarray, pos: np.ndarray, dtype: str) -> np.ndarray:
    """Values of big-endian ``dtype`` at byte offsets ``pos`` of ``buf``, in native byte order."""
    width = np.dtype(dtype).itemsize
    view = np.ndarray(shape=(max(len(buf) - width + 1, 0),), dtype=dtype, buffer=buf, strides=(1,))
    return view[pos].astype(np.dtype(dtype).newbyteorder("="))


def _ragged_bytes(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bytes ``[start, start + length)`` of every row, packed, and their int64 offsets."""
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return buf[index], offsets


def _decode_text(buf: np.ndarray, pos: np.ndarray, lengths: np.ndarray, nulls: np.ndarray) -> pa.Array:
    data, offsets = _ragged_bytes(buf, pos, np.maximum(lengths, 0))
    validity = pa.array(~nulls).buffers()[1] if nulls.any() else None
    return pa.LargeStringArray.from_buffers(len(pos), pa.py_buffer(offsets), pa.py_buffer(data), validity,
                                            int(nulls.sum()))


def _decode_arrays(name: str, buf: np.ndarray, element_oid: int, pos: np.ndarray, lengths: np.ndarray,
                   nulls: np.ndarray) -> pa.Array:
    """One-dimensional arrays without NULL elements (a feature value is a list, never a matrix)."""
    dtype, arrow_type, _ = _PG_FIXED[element_oid]
    width = np.dtype(dtype).itemsize
    present = np.flatnonzero(~nulls)
    head = pos[present]
    ndim = _gather(buf, head, ">i4")
    if (ndim > 1).any():
        raise PersonaError(f"column {name} holds a multi-dimensional array; a feature value must be a list")
    if _gather(buf, head + 4, ">i4").any():
        raise PersonaError(f"column {name} holds an array with NULL elements; a list feature cannot hold nulls")
    counts = np.zeros(len(pos), dtype=np.int64)
    counts[present[ndim == 1]] = _gather(buf, head[ndim == 1] + 12, ">i4")
    # header: dimensions, null flag, element type (12 bytes), then length and lower bound per dimension
    if (lengths[present] != np.where(ndim == 1, 20 + counts[present] * (4 + width), 12)).any():
        raise PersonaError(f"COPY from Postgres: column {name} holds array elements of an unexpected width")
    offsets = np.zeros(len(pos) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    first = np.repeat(head + 20, counts[present])
    rank = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[present], counts[present])
    raw = _gather(buf, first + 4 + (4 + width) * rank, dtype)
    values = pa.array(raw.astype(bool) if pa.types.is_boolean(arrow_type) else raw, type=arrow_type)
    return pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=pa.array(nulls) if nulls.any() else None)
