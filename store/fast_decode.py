"""Decoding online values on the serving hot path, without building protobuf objects.

The reader wants a few features of each row and their slot in the output block. On SQLite a
row is a payload (:mod:`store.codec`: ``varint(len(name)) name varint(len(value)) value`` per
feature), read by :class:`PayloadDecoder` following the feature order learned from the first
payload of a view. On Redis a row is an ``HMGET`` reply, read by :func:`decode_view_values`,
``Float32`` features as one numpy block.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from store.codec import TAG_FLOAT, TAG_INT64, TAG_STRING, UNPACK_FLOAT, decode_value, name_prefix, read_varint

if TYPE_CHECKING:
    from store.layout import RedisViewFields

Slot = tuple[bool, int]  # (is_string, column index in the numeric or string block)


def scalar_at(payload: bytes, pos: int, size: int) -> object:
    """The value of the ``size`` bytes at ``pos`` (a serialized ValueProto)."""
    tag = payload[pos]
    if tag == TAG_FLOAT and size == 5:
        return UNPACK_FLOAT(payload, pos + 1)[0]
    if tag == TAG_INT64 and size == 2:  # a one-byte varint: counts below 128
        return payload[pos + 1]
    if tag == TAG_STRING and size == payload[pos + 1] + 2:  # a short string
        return payload[pos + 2 : pos + size].decode("utf8")
    return decode_value(payload[pos : pos + size])


def decode_slots(payload: bytes, slots: dict[bytes, Slot]) -> tuple[list[tuple[Slot, object]], list[bytes]]:
    """``(slot, value)`` for the features in ``slots`` of one payload, and every feature name in order.

    Values are decoded without building protobuf objects.
    """
    out: list[tuple[Slot, object]] = []
    names: list[bytes] = []
    pos, end = 0, len(payload)
    while pos < end:
        size = payload[pos]
        pos += 1
        if size & 0x80:
            size, pos = read_varint(payload, pos - 1)
        name = payload[pos : pos + size]
        names.append(name)
        pos += size
        size = payload[pos]
        pos += 1
        if size & 0x80:
            size, pos = read_varint(payload, pos - 1)
        slot = slots.get(name)
        if slot is not None and size:
            value = scalar_at(payload, pos, size)
            if value is not None:
                out.append((slot, value))
        pos += size
    return out, names


class PayloadDecoder:
    """Decodes one view's payloads, following the feature order learned from the first one.

    Every payload of a view is usually written with the same features in the same order, so
    instead of slicing out and looking up each name, a payload is checked against the known
    name prefixes in place (``bytes.startswith`` at an offset). A payload with another layout is
    decoded the general way and its layout becomes the one expected next.
    """

    def __init__(self, slots: dict[bytes, Slot]) -> None:
        self.slots = slots
        self.template: list[tuple[bytes, int, Slot | None]] | None = None

    def decode(self, payload: bytes) -> list[tuple[Slot, object]]:
        """``(slot, value)`` pairs of the wanted, non-null features of ``payload``."""
        template = self.template
        if template is not None:
            out = self._follow(payload, template)
            if out is not None:
                return out
        decoded, names = decode_slots(payload, self.slots)
        self.template = [
            (prefix, len(prefix), self.slots.get(name))
            for name in names
            for prefix in (name_prefix(name.decode("utf8")),)
        ]
        return decoded

    @staticmethod
    def _follow(payload: bytes, template: list[tuple[bytes, int, Slot | None]]) -> list[tuple[Slot, object]] | None:
        out: list[tuple[Slot, object]] = []
        pos = 0
        starts = payload.startswith
        for prefix, length, slot in template:
            if not starts(prefix, pos):
                return None
            pos += length
            size = payload[pos]
            pos += 1
            if size & 0x80:
                size, pos = read_varint(payload, pos - 1)
            if slot is not None and size:
                tag = payload[pos]
                if tag == TAG_FLOAT and size == 5:
                    out.append((slot, UNPACK_FLOAT(payload, pos + 1)[0]))
                else:
                    value = scalar_at(payload, pos, size)
                    if value is not None:
                        out.append((slot, value))
            pos += size
        return out if pos == len(payload) else None


_FLOAT_WIRE = np.dtype([("tag", "u1"), ("value", "<f4")])  # a serialized float_val ValueProto
_NULL_FLOAT = bytes([TAG_FLOAT]) + struct.pack("<f", float("nan"))  # stands for a null in a float block


def decode_view_values(
    view: RedisViewFields, replies: list[list[bytes | None]], rows: list[int], numeric: np.ndarray, strings: np.ndarray
) -> None:
    """Write one view's values from ``HMGET`` replies into ``numeric`` / ``strings`` at ``rows``.

    ``Float32`` features go as one block: the replies' values are joined and read with numpy
    when each is a 5-byte ``float_val`` or null (else value by value, like the other features).
    """
    others = view.others
    positions = view.float_positions
    if positions:
        raws = [reply[pos] or _NULL_FLOAT for reply in replies for pos in positions]
        block = np.frombuffer(b"".join(raws), dtype=_FLOAT_WIRE) if set(map(len, raws)) == {5} else None
        if block is not None and bool((block["tag"] == TAG_FLOAT).all()):
            numeric[np.ix_(rows, view.float_columns)] = block["value"].reshape(len(rows), len(positions))
        else:
            others = view.fields
    unpack_float = UNPACK_FLOAT
    for reply, u in zip(replies, rows, strict=True):
        for pos, is_string, j in others:
            raw = reply[pos]
            if not raw:  # absent field or null value
                continue
            tag = raw[0]
            if tag == TAG_FLOAT and len(raw) == 5:
                value = unpack_float(raw, 1)[0]
            elif tag == TAG_INT64 and len(raw) == 2:  # a one-byte varint: counts below 128
                value = raw[1]
            else:
                value = decode_value(raw)
                if value is None:
                    continue
            if is_string:
                strings[u, j] = value if isinstance(value, str) else str(value)
            else:
                numeric[u, j] = value
