"""The bytes of Feast's online values: one codec for the writers and the readers.

A feature value is a serialized ``feast.types.Value`` protobuf. Its tags are defined once here
and both directions sit side by side: the writers encode whole Arrow columns at once
(:func:`encode_value_array`), the readers decode scalars straight from the wire format
(:func:`decode_value`, :class:`PayloadDecoder`); anything rarer goes through Feast's own
conversion (:mod:`store.feast_internals`). Tests compare these bytes with Feast's encoders
byte for byte.

An online row's payload (Persona's SQLite store) is a sequence of ``varint(len(name)) name
varint(len(value)) value``. A Redis ``_ts:<view>`` field is a serialized
``google.protobuf.Timestamp``. Feast is imported only on the rare fallback paths, so the serving
hot path stays cheap.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Tags of the scalar ``feast.types.Value`` fields (field number << 3 | wire type).
TAG_STRING = (2 << 3) | 2  # string_val, length-delimited
TAG_INT32 = (3 << 3) | 0  # int32_val, varint
TAG_INT64 = (4 << 3) | 0  # int64_val, varint
TAG_DOUBLE = (5 << 3) | 1  # double_val, 64-bit
TAG_FLOAT = (6 << 3) | 5  # float_val, 32-bit
TAG_BOOL = (7 << 3) | 0  # bool_val, varint
FLOAT_LIST_FIELD = 16  # float_list_val: FloatList { repeated float val = 1 [packed] }
# Tags of ``google.protobuf.Timestamp`` (Feast's Redis ``_ts:<view>`` field).
TAG_TS_SECONDS = (1 << 3) | 0  # seconds, varint
TAG_TS_NANOS = (2 << 3) | 0  # nanos, varint

UNPACK_FLOAT = struct.Struct("<f").unpack_from
UNPACK_DOUBLE = struct.Struct("<d").unpack_from
_EPOCH = datetime(1970, 1, 1)


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of ``value`` (negative values as their 64-bit two's complement)."""
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buffer: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def name_prefix(name: str) -> bytes:
    """The payload bytes that introduce a feature's value."""
    encoded = name.encode("utf8")
    return encode_varint(len(encoded)) + encoded


def encode_payload(values: dict[str, bytes]) -> bytes:
    """Payload from feature name -> serialized ValueProto."""
    return b"".join(name_prefix(n) + encode_varint(len(v)) + v for n, v in values.items())


def decode_payload(payload: bytes, wanted: set[str] | None = None) -> dict[str, bytes]:
    """Feature name -> serialized ValueProto (only ``wanted`` names when given)."""
    out: dict[str, bytes] = {}
    pos, end = 0, len(payload)
    while pos < end:
        size, pos = read_varint(payload, pos)
        name = payload[pos : pos + size].decode("utf8")
        pos += size
        size, pos = read_varint(payload, pos)
        if wanted is None or name in wanted:
            out[name] = payload[pos : pos + size]
        pos += size
    return out


def timestamp_text(ts: datetime | None) -> str | None:
    """UTC ISO text that sorts in time order (fixed width, microseconds)."""
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_timestamp(text: str | None) -> datetime | None:
    """Inverse of :func:`timestamp_text` (tz-aware UTC)."""
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


# ---- decoding (the readers) ----
def signed64(value: int) -> int:
    """A varint's 64-bit two's complement as a signed int."""
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_value(raw: bytes) -> object:
    """The Python value of a serialized ``feast.types.Value`` (None for null).

    Scalars (float, double, int32, int64, bool, string) are read from the wire format directly;
    anything else (lists, timestamps) goes through Feast's own conversion.
    """
    if not raw:
        return None
    tag = raw[0]
    if tag == TAG_FLOAT and len(raw) == 5:
        return UNPACK_FLOAT(raw, 1)[0]
    if tag == TAG_DOUBLE and len(raw) == 9:
        return UNPACK_DOUBLE(raw, 1)[0]
    if tag in (TAG_INT64, TAG_INT32):
        value, end = read_varint(raw, 1)
        if end == len(raw):
            return signed64(value)
    if tag == TAG_STRING:
        size, start = read_varint(raw, 1)
        if start + size == len(raw):
            return raw[start:].decode("utf8")
    if tag == TAG_BOOL and len(raw) == 2:
        return bool(raw[1])
    from store.feast_internals import python_value

    return python_value(raw)


def decode_timestamp_text(raw: bytes) -> str:
    """Online store timestamp text (:func:`timestamp_text`) of a serialized ``Timestamp``.

    Nanoseconds round to the nearest microsecond (half to even), as Feast's Redis store does
    when it turns the proto into a ``datetime``.
    """
    seconds = nanos = 0
    pos, end = 0, len(raw)
    while pos < end:
        tag = raw[pos]
        if tag not in (TAG_TS_SECONDS, TAG_TS_NANOS):
            from google.protobuf.timestamp_pb2 import Timestamp

            proto = Timestamp.FromString(raw)
            seconds, nanos = proto.seconds, proto.nanos
            break
        value, pos = read_varint(raw, pos + 1)
        if tag == TAG_TS_SECONDS:
            seconds = signed64(value)
        else:
            nanos = signed64(value)
    micros = round(nanos / 1000)
    return (_EPOCH + timedelta(seconds=seconds, microseconds=micros)).strftime("%Y-%m-%d %H:%M:%S.%f")


# ---- encoding (the writers) ----
# How each encoded value is framed: bytes before it (given its length) and bytes after it.
Framing = tuple[Callable[[int], bytes], bytes]


def prefix_framing(prefix: bytes) -> Framing:
    """The online store's payload framing: ``prefix + varint(len(value)) + value``."""
    return (lambda size: prefix + encode_varint(size)), b""


# A Redis protocol bulk string: ``$<len>\r\n<value>\r\n``.
RESP_FRAMING: Framing = (lambda size: b"$%d\r\n" % size), b"\r\n"
NO_FRAMING: Framing = (lambda size: b""), b""


def resp(value: bytes) -> bytes:
    """``value`` as a Redis protocol bulk string."""
    head_of, tail = RESP_FRAMING
    return head_of(len(value)) + value + tail


def fixed_width(block: np.ndarray) -> pa.Array:
    """A ``large_binary`` array over the rows of a fixed-width numpy record array (no per-row object)."""
    width, count = block.dtype.itemsize, len(block)
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), count, [None, pa.py_buffer(offsets),
                                                                       pa.py_buffer(block.tobytes())])


def _feast_bytes(values: list, value_type) -> list[bytes]:
    """Feast's own encoding of a few Python values (used for nulls and rare values)."""
    from store.feast_internals import value_bytes

    return value_bytes(values, value_type)


def encode_value_array(column: pa.ChunkedArray | pa.Array, value_type, framing: Framing | None = None
                       ) -> pa.Array:
    """Serialized ``ValueProto`` bytes of every value of a column, equal to Feast's encoding, as Arrow.

    Args:
        column: an Arrow column of a feature.
        value_type: the feature's ``feast.value_type.ValueType``.
        framing: when given, each value comes framed (see :data:`RESP_FRAMING`, :func:`prefix_framing`),
            built in the same vectorized pass.

    Returns:
        A ``large_binary`` array, one element per row, no nulls.
    """
    from feast.value_type import ValueType

    head_of, tail = framing or NO_FRAMING
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    nulls = column.is_null(nan_is_null=pa.types.is_floating(column.type))

    def frame(value: bytes) -> bytes:
        return head_of(len(value)) + value + tail

    if value_type in (ValueType.FLOAT, ValueType.DOUBLE):
        single = value_type == ValueType.FLOAT
        head = head_of(5 if single else 9)
        layout = [("head", f"S{len(head)}")] if head else []
        layout += [("tag", "u1"), ("value", "<f4" if single else "<f8")]
        layout += [("tail", f"S{len(tail)}")] if tail else []
        packed = np.empty(len(column), dtype=np.dtype(layout))
        if head:
            packed["head"] = head
        if tail:
            packed["tail"] = tail
        packed["tag"] = TAG_FLOAT if single else TAG_DOUBLE
        packed["value"] = column.to_numpy(zero_copy_only=False)
        out = fixed_width(packed)
    elif value_type in (ValueType.INT64, ValueType.INT32, ValueType.STRING, ValueType.BOOL):
        # Few distinct values (counts, categories): encode each once with Feast, then look up.
        encoded = pc.dictionary_encode(column)
        uniques = encoded.dictionary.to_pylist()
        table = pa.array([frame(b) for b in _feast_bytes(uniques, value_type)] + [b""], pa.large_binary())
        out = table.take(encoded.indices.fill_null(len(uniques)))
    elif value_type == ValueType.FLOAT_LIST:
        out = pa.array([frame(v) for v in _encode_float_lists(column)], pa.large_binary())
    else:  # anything rarer goes through Feast row by row
        return pa.array([frame(v) for v in _feast_bytes(column.to_pylist(), value_type)], pa.large_binary())

    if nulls.true_count:
        null_bytes = frame(_feast_bytes([None], value_type)[0])
        out = pc.if_else(nulls, pa.scalar(null_bytes, pa.large_binary()), out)
    return out


def encode_values(column: pa.ChunkedArray | pa.Array, value_type, prefix: bytes = b"") -> list[bytes]:
    """Serialized ``ValueProto`` bytes of every value of a column, equal to Feast's encoding.

    Args:
        column: an Arrow column of a feature.
        value_type: the feature's ``feast.value_type.ValueType``.
        prefix: when given, each value comes as ``prefix + varint(len(value)) + value`` (the
            online store's payload framing), built in the same vectorized pass.

    Returns:
        One ``bytes`` per row.
    """
    return encode_value_array(column, value_type, prefix_framing(prefix) if prefix else None).to_pylist()


def _encode_float_lists(column: pa.Array) -> list[bytes]:
    lists = column.cast(pa.list_(pa.float32()))
    flat = lists.flatten().to_numpy(zero_copy_only=False).astype("<f4", copy=False)
    offsets = lists.offsets.to_numpy()
    payload = flat.tobytes()
    out = []
    for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        body = payload[start * 4 : stop * 4]
        inner = (b"\x0a" + encode_varint(len(body)) + body) if body else b""
        out.append(encode_varint((FLOAT_LIST_FIELD << 3) | 2) + encode_varint(len(inner)) + inner)
    return out
