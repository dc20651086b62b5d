"""The byte layout of an online row's payload, shared by the store, the writer and the reader.

A payload is a sequence of ``varint(len(name)) name varint(len(value)) value`` where ``value`` is a
serialized ``feast.types.Value``. Pure functions, no Feast import, so the serving hot path and
tests can use them cheaply.
"""

from __future__ import annotations

from datetime import UTC, datetime


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
