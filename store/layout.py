"""Where Feast keeps a view's online values: entity keys, Redis keys and field names, read plans.

Feast keys every online row by its v3 serialized entity key: the number of join keys, then per
key its type, length and UTF-8 name, then per value its type, length and bytes. For Persona's
single INT64 join key that is a fixed prefix followed by the id's eight little-endian bytes,
so keys for a whole batch are built with numpy. On Redis, Feast keeps one hash per entity
(key: serialized entity key + project) holding every view's fields: the mmh3 hash of
``<view>:<feature>`` -> serialized ``ValueProto``, and ``_ts:<view>`` -> a ``Timestamp``.

The names that depend on Feast's private functions come from :mod:`store.feast_internals`;
``tests/test_feast_internals.py`` checks what is computed here against Feast's own functions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from store.codec import NO_FRAMING, Framing

if TYPE_CHECKING:
    from collections.abc import Sequence

ENTITY_KEY = "customer_id"


@dataclass(frozen=True)
class ViewPlan:
    """What to read from one feature view and where each value lands.

    Attributes:
        name: the view's name (as in the feature service).
        view: the Feast ``FeatureView`` (handed to the online store).
        slots: feature name (UTF-8 bytes, as in the payload) -> (is_string, column index in
            the numeric or string block).
        required: a customer missing from this view is a cold start.
    """

    name: str
    view: Any  # a feast.FeatureView (typed loosely: the hot path does not import Feast)
    slots: dict[bytes, tuple[bool, int]]
    required: bool


# ---- entity keys ----
def entity_key_prefix(join_key: str) -> bytes:
    """Feast's v3 serialized entity key of one INT64 join key, up to the id's eight bytes."""
    from store.feast_internals import ValueTypeProto

    name = join_key.encode("utf8")
    return (struct.pack("<I", 1) + struct.pack("<I", ValueTypeProto.STRING) + struct.pack("<I", len(name)) + name
            + struct.pack("<I", ValueTypeProto.INT64) + struct.pack("<I", 8))


def encode_int64_entity_keys(join_key: str, ids: np.ndarray) -> list[bytes]:
    """Feast's v3 serialized entity keys for one INT64 join key, vectorized.

    Layout (``feast.infra.key_encoding_utils.serialize_entity_key``, version 3): number of keys,
    then per key its type, length and UTF-8 name, then per value its type, length and bytes.
    """
    prefix = entity_key_prefix(join_key)
    packed = np.asarray(ids, dtype="<i8").tobytes()
    return [prefix + packed[i : i + 8] for i in range(0, 8 * len(ids), 8)]


def entity_key_block(join_key: str, ids: np.ndarray, suffix: bytes = b"", framing: Framing | None = None
                     ) -> np.ndarray:
    """Framed ``serialized entity key + suffix`` per id as a fixed-width numpy record array."""
    head_of, tail = framing or NO_FRAMING
    prefix = entity_key_prefix(join_key)
    head = head_of(len(prefix) + 8 + len(suffix)) + prefix
    layout = [("head", f"S{len(head)}"), ("id", "<i8")] + ([("tail", f"S{len(suffix + tail)}")]
                                                           if suffix + tail else [])
    block = np.empty(len(ids), dtype=np.dtype(layout))
    block["head"] = head
    block["id"] = ids
    if suffix + tail:
        block["tail"] = suffix + tail
    return block


# ---- Redis ----
def redis_field_names(view) -> list[bytes]:
    """The hash fields a view writes besides the guard: ``_ts:<view>``, then Feast's hashed feature names."""
    from store.feast_internals import hashed_field_name

    return [f"_ts:{view.name}".encode()] + [hashed_field_name(view.name, f.name) for f in view.features]


@dataclass(frozen=True)
class RedisViewFields:
    """Where one view's values sit in a :class:`RedisLayout` ``HMGET`` reply.

    Attributes:
        name: the view's name.
        required: a customer missing from this view is a cold start.
        ts_pos: position of the view's ``_ts:<view>`` field.
        start / stop: positions of the view's feature fields (``[start, stop)``).
        fields: per feature field, (position, is_string, column index in the numeric or string block).
        float_positions / float_columns: the ``Float32`` features among ``fields`` (decoded as one
            numpy block: each value is a tag byte and four little-endian bytes, or empty for null).
        others: the remaining ``fields`` (decoded value by value).
    """

    name: str
    required: bool
    ts_pos: int
    start: int
    stop: int
    fields: tuple[tuple[int, bool, int], ...]
    float_positions: tuple[int, ...] = ()
    float_columns: tuple[int, ...] = ()
    others: tuple[tuple[int, bool, int], ...] = ()


@dataclass(frozen=True)
class RedisLayout:
    """Feast's Redis layout for a reader's views, computed once per model.

    Feast keeps one hash per entity, keyed ``serialize_entity_key(key, v3) + project``
    (``feast.infra.online_stores.helpers._redis_key``); a view's feature ``f`` is the field
    ``_mmh3("<view>:f")`` and its event time the field ``_ts:<view>``, where ``<view>`` is the
    view's name with the version suffix Feast adds when online versioning is on.

    Attributes:
        key_prefix: the serialized entity key up to the customer id's eight bytes.
        key_suffix: the project name (UTF-8).
        fields: every field one ``HMGET`` asks for, all views together.
        views: where each view's values sit in the reply.
    """

    key_prefix: bytes
    key_suffix: bytes
    fields: tuple[bytes, ...]
    views: tuple[RedisViewFields, ...]

    @classmethod
    def build(cls, config, plans: Sequence[ViewPlan], join_key: str) -> RedisLayout:
        """The layout of ``plans`` under a Feast ``RepoConfig``."""
        from feast.types import Float32

        from store.feast_internals import hashed_field_name, versioned_view_name

        fields: list[bytes] = []
        views: list[RedisViewFields] = []
        for plan in plans:
            fv_name = versioned_view_name(plan.view, config)
            dtypes = {feature.name: feature.dtype for feature in plan.view.features} 
            start = len(fields)
            placed: list[tuple[int, bool, int]] = []
            for name, (is_string, index) in plan.slots.items():
                placed.append((len(fields), is_string, index))
                fields.append(hashed_field_name(fv_name, name.decode("utf8")))
            stop = len(fields)
            fields.append(f"_ts:{fv_name}".encode())
            floats = [(pos, index) for (pos, is_string, index), name in zip(placed, plan.slots, strict=True)
                      if not is_string and dtypes.get(name.decode("utf8")) == Float32]
            float_positions = {pos for pos, _ in floats}
            views.append(
                RedisViewFields(
                    name=plan.name,
                    required=plan.required,
                    ts_pos=stop,
                    start=start,
                    stop=stop,
                    fields=tuple(placed),
                    float_positions=tuple(pos for pos, _ in floats),
                    float_columns=tuple(index for _, index in floats),
                    others=tuple(f for f in placed if f[0] not in float_positions),
                )
            )
        return cls(entity_key_prefix(join_key), config.project.encode("utf8"), tuple(fields), tuple(views))

    def keys(self, ids: Sequence[int] | np.ndarray) -> list[bytes]:
        """The Redis key of every customer id (Feast's ``_redis_key``), built in one numpy pass."""
        packed = np.asarray(ids, dtype="<i8").reshape(-1, 1).view(np.uint8)
        head, tail = len(self.key_prefix), len(self.key_suffix)
        width = head + 8 + tail
        rows = np.empty((len(packed), width), dtype=np.uint8)
        rows[:, :head] = np.frombuffer(self.key_prefix, dtype=np.uint8)
        rows[:, head : head + 8] = packed
        rows[:, head + 8 :] = np.frombuffer(self.key_suffix, dtype=np.uint8)
        buffer = rows.tobytes()
        return [buffer[i : i + width] for i in range(0, len(buffer), width)]


def redis_layout(store, plans: Sequence[ViewPlan], join_key: str) -> RedisLayout | None:
    """The :class:`RedisLayout` of ``plans`` when ``store`` reads Redis through redis-py, else None.

    None also for entity keys other than Feast's v3 serialization (the layout builds v3 keys only).
    """
    config = store.config
    online = config.online_store
    if getattr(online, "type", None) != "redis" or getattr(online, "client", "redis") != "redis":
        return None
    if getattr(config, "entity_key_serialization_version", 3) != 3:
        return None
    return RedisLayout.build(config, plans, join_key)
