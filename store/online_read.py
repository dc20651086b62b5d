"""Online features for serving: the model's feature columns for a batch of customer ids.

Feast's ``get_online_features`` spends most of a single-customer read outside the database:
resolving the feature service in the registry, building ``EntityKey`` and ``ValueProto``
objects, converting them back to Python values and assembling a response proto. Here all of
that is resolved once per model (:meth:`OnlineFeatureReader.from_store`): which views to read,
which features of each, and where each lands in the output. A read is then one SQLite query per
view on Persona's online store (:meth:`PersonaSqliteOnlineStore.read_payloads`, the same rows
``feast serve`` reads) with vectorized entity keys, and scalar ``ValueProto`` bytes are decoded
straight from the wire format (a float is a tag byte and four little-endian bytes).

On Redis (the production profile) a read is one pipelined round trip: Feast keeps one hash per
customer (key: serialized entity key + project) holding every view's fields (the mmh3 hash of
``<view>:<feature>`` -> serialized ``ValueProto``, and ``_ts:<view>`` -> a ``Timestamp``), so one
``HMGET`` per distinct customer fetches every wanted field of every view at once, with keys and
hashed field names computed once per model (:class:`RedisLayout`). A view whose ``_ts`` field is
absent has no row for that customer. Other online stores go through the store's own
``online_read``.

A store that cannot be reached must not hang a request: the Redis client the reader uses has
short socket timeouts and at most one immediate reconnect (Feast's own client has no timeout
and retries three times with backoff of up to seconds), and after a failure the reader answers
"unreachable" at once for a short while instead of trying again on every request.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from store.codec import name_prefix, read_varint, timestamp_text

if TYPE_CHECKING:
    from collections.abc import Sequence

ENTITY_KEY = "customer_id"
TIMEOUT_ENV = "PERSONA_ONLINE_STORE_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 0.3  # connect and read timeout of one online-store call
RETRY_AFTER_SECONDS = 1.0  # after a failed call, answer "unreachable" without trying for this long

# Tags of the scalar ``feast.types.Value`` fields (field number << 3 | wire type).
_TAG_STRING = 0x12  # string_val = 2, length-delimited
_TAG_INT32 = 0x18  # int32_val = 3, varint
_TAG_INT64 = 0x20  # int64_val = 4, varint
_TAG_DOUBLE = 0x29  # double_val = 5, 64-bit
_TAG_FLOAT = 0x35  # float_val = 6, 32-bit
_TAG_BOOL = 0x38  # bool_val = 7, varint
_UNPACK_FLOAT = struct.Struct("<f").unpack_from
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from


class FeatureStoreError(RuntimeError):
    """The online store cannot answer (missing table, unreadable file, unknown view)."""


class OnlineStoreUnavailable(FeatureStoreError):
    """The online store cannot be reached (down, hung, refusing connections); retrying later may work.

    Attributes:
        retry_after: seconds after which the reader tries the store again.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def online_store_timeout() -> float:
    """Seconds one online-store call may take (``PERSONA_ONLINE_STORE_TIMEOUT_SECONDS``, default 0.3).

    Raises:
        FeatureStoreError: the variable is not a positive number.
    """
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise FeatureStoreError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise FeatureStoreError(f"{TIMEOUT_ENV}={raw!r} must be > 0")
    return value


def _redis_nodes(connection_string: str) -> str:
    """``host:port`` entries of a Feast Redis connection string (options such as passwords left out)."""
    return ",".join(part for part in connection_string.split(",") if "=" not in part)


def bounded_redis_store(config, timeout: float):
    """A Feast ``RedisOnlineStore`` whose client gives up after ``timeout`` seconds.

    Feast builds its redis-py client from the connection string only, with no socket timeout
    (a hung Redis blocks forever) and redis-py's default retry policy (three retries with
    exponential backoff, seconds in total). This store's client has the connection string's own
    options, ``timeout`` as connect and read timeout unless the string sets them, and one
    immediate reconnect on a refused or dropped connection (a pooled connection left over from
    before a Redis restart); a timeout is not retried. Feast's own ``online_read`` does the
    reading, so keys and values are exactly Feast's.

    Args:
        config: the store's ``RedisOnlineStoreConfig``.
        timeout: seconds.
    """
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisType
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    nodes, kwargs = RedisOnlineStore._parse_connection_string(config.connection_string)
    kwargs.setdefault("socket_timeout", timeout)
    kwargs.setdefault("socket_connect_timeout", timeout)
    kwargs["retry"] = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    if config.redis_type == RedisType.redis_cluster:
        from redis.cluster import ClusterNode, RedisCluster

        client = RedisCluster(startup_nodes=[ClusterNode(**node) for node in nodes], **kwargs)
    elif config.redis_type == RedisType.redis_sentinel:
        from redis.sentinel import Sentinel

        hosts = [(node["host"], int(node["port"])) for node in nodes]
        client = Sentinel(hosts, **kwargs).master_for(config.sentinel_master)
    else:
        client = Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)
    store = RedisOnlineStore()
    store._client = client  # Feast reads through this client when it is set
    return store


def is_redis_error(exc: BaseException) -> bool:
    """Whether ``exc`` is any redis-py error (False when redis-py is not installed)."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return False
    return isinstance(exc, RedisError)


def _is_unreachable(exc: BaseException) -> bool:
    """A connection-level failure (refused, reset, timed out), not a bad answer."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_value(raw: bytes) -> object:
    """The Python value of a serialized ``feast.types.Value`` (None for null).

    Scalars (float, double, int32, int64, bool, string) are read from the wire format directly;
    anything else (lists, timestamps) goes through Feast's own conversion.
    """
    if not raw:
        return None
    tag = raw[0]
    if tag == _TAG_FLOAT and len(raw) == 5:
        return _UNPACK_FLOAT(raw, 1)[0]
    if tag == _TAG_DOUBLE and len(raw) == 9:
        return _UNPACK_DOUBLE(raw, 1)[0]
    if tag in (_TAG_INT64, _TAG_INT32):
        value, end = read_varint(raw, 1)
        if end == len(raw):
            return _signed64(value)
    if tag == _TAG_STRING:
        size, start = read_varint(raw, 1)
        if start + size == len(raw):
            return raw[start:].decode("utf8")
    if tag == _TAG_BOOL and len(raw) == 2:
        return bool(raw[1])
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(ValueProto.FromString(raw))


def utc_iso(text: str | None) -> str | None:
    """``2025-01-07 00:00:00.000000`` (online store text, UTC) -> ``2025-01-07T00:00:00Z``."""
    if text is None:
        return None
    return text[:19].replace(" ", "T") + "Z"


def parse_utc(text: str) -> datetime:
    """Online store timestamp text -> tz-aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


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
    view: object
    slots: dict[bytes, tuple[bool, int]]
    required: bool


@dataclass
class FeatureBatch:
    """Feature values of a batch of customers, split into a numeric and a string block.

    Attributes:
        ids: customer ids (int64), one per row.
        numeric_columns / string_columns: column names of the two blocks.
        numeric: float64 ``(n, len(numeric_columns))``, NaN for missing.
        strings: object ``(n, len(string_columns))``, None for missing.
        event_ts: view -> per row the stored event timestamp text (None when absent).
        missing_views: per row the required views that had no row for the customer.
    """

    ids: np.ndarray
    numeric_columns: tuple[str, ...]
    string_columns: tuple[str, ...]
    numeric: np.ndarray
    strings: np.ndarray
    event_ts: dict[str, list[str | None]] = field(default_factory=dict)
    missing_views: list[tuple[str, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric_columns, *self.string_columns]

    def column(self, name: str) -> np.ndarray:
        """One column as an array (float64 or object)."""
        if name in self.numeric_columns:
            return self.numeric[:, self.numeric_columns.index(name)]
        return self.strings[:, self.string_columns.index(name)]

    def row(self, i: int) -> dict[str, object]:
        """One row as ``{column: value}`` (None for missing)."""
        out: dict[str, object] = {}
        for j, name in enumerate(self.numeric_columns):
            value = float(self.numeric[i, j])
            out[name] = value if value == value else None
        for j, name in enumerate(self.string_columns):
            out[name] = self.strings[i, j]
        return out

    def take(self, rows: np.ndarray) -> FeatureBatch:
        """The rows at positions ``rows`` (event timestamps and missing views follow)."""
        index = rows.tolist()
        return FeatureBatch(
            ids=self.ids[rows],
            numeric_columns=self.numeric_columns,
            string_columns=self.string_columns,
            numeric=self.numeric[rows],
            strings=self.strings[rows],
            event_ts={view: [stamps[i] for i in index] for view, stamps in self.event_ts.items()},
            missing_views=[self.missing_views[i] for i in index] if self.missing_views else [],
        )

    @classmethod
    def empty(
        cls, ids: Sequence[int], numeric_columns: Sequence[str], string_columns: Sequence[str]
    ) -> FeatureBatch:
        """All-missing values for ``ids``."""
        n = len(ids)
        return cls(
            ids=np.asarray(ids, dtype=np.int64),
            numeric_columns=tuple(numeric_columns),
            string_columns=tuple(string_columns),
            numeric=np.full((n, len(numeric_columns)), np.nan),
            strings=np.full((n, len(string_columns)), None, dtype=object),
            missing_views=[() for _ in range(n)],
        )


_EPOCH = datetime(1970, 1, 1)
_TAG_SECONDS = 0x08  # google.protobuf.Timestamp.seconds = 1, varint
_TAG_NANOS = 0x10  # google.protobuf.Timestamp.nanos = 2, varint


def decode_timestamp_text(raw: bytes) -> str:
    """Online store timestamp text (:func:`store.codec.timestamp_text`) of a serialized ``Timestamp``.

    Nanoseconds round to the nearest microsecond (half to even), as Feast's Redis store does
    when it turns the proto into a ``datetime``.
    """
    seconds = nanos = 0
    pos, end = 0, len(raw)
    while pos < end:
        tag = raw[pos]
        if tag not in (_TAG_SECONDS, _TAG_NANOS):
            from google.protobuf.timestamp_pb2 import Timestamp

            proto = Timestamp.FromString(raw)
            seconds, nanos = proto.seconds, proto.nanos
            break
        value, pos = read_varint(raw, pos + 1)
        if tag == _TAG_SECONDS:
            seconds = _signed64(value)
        else:
            nanos = _signed64(value)
    micros = round(nanos / 1000)
    return (_EPOCH + timedelta(seconds=seconds, microseconds=micros)).strftime("%Y-%m-%d %H:%M:%S.%f")


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
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name
        from feast.types import Float32

        from store.materialize_fast import encode_int64_entity_keys

        key_prefix = encode_int64_entity_keys(join_key, np.zeros(1, dtype=np.int64))[0][:-8]
        fields: list[bytes] = []
        views: list[RedisViewFields] = []
        for plan in plans:
            fv_name = _versioned_fv_name(plan.view, config)
            dtypes = {feature.name: feature.dtype for feature in plan.view.features}
            start = len(fields)
            placed: list[tuple[int, bool, int]] = []
            for name, (is_string, index) in plan.slots.items():
                placed.append((len(fields), is_string, index))
                fields.append(_mmh3(f"{fv_name}:{name.decode('utf8')}"))
            stop = len(fields)
            fields.append(f"_ts:{fv_name}".encode())
            floats = [(pos, index) for (pos, is_string, index), name in zip(placed, plan.slots, strict=True)
                      if not is_string and dtypes.get(name.decode("utf8")) == Float32]
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
                    others=tuple(f for f in placed if f[0] not in {pos for pos, _ in floats}),
                )
            )
        return cls(key_prefix, config.project.encode("utf8"), tuple(fields), tuple(views))

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


def split_columns(
    columns: Sequence[str], string_columns: set[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric columns, string columns), each in the given order."""
    return (
        tuple(c for c in columns if c not in string_columns),
        tuple(c for c in columns if c in string_columns),
    )


class OnlineFeatureReader:
    """Reads a model's feature columns for customer ids from Feast's online store.

    Build it with :meth:`from_store` once per model; :meth:`read` is then the hot path.
    """

    def __init__(
        self,
        store,
        plans: list[ViewPlan],
        numeric_columns: Sequence[str],
        string_columns: Sequence[str],
        join_key: str = ENTITY_KEY,
    ) -> None:
        from store.online_sqlite import PersonaSqliteOnlineStore

        self.store = store
        self.plans = plans
        self.numeric_columns = tuple(numeric_columns)
        self.string_columns = tuple(string_columns)
        self.join_key = join_key
        self._online = store._get_provider().online_store
        self._fast = isinstance(self._online, PersonaSqliteOnlineStore)
        self._decoders: dict[str, PayloadDecoder] = {}
        self.location = _describe_online_store(store.config.online_store)
        self.retry_after = RETRY_AFTER_SECONDS
        self._down: tuple[float, str] | None = None  # (monotonic time to try again, why)
        self._ts_text: dict[bytes, str] = {}  # serialized Timestamp -> text (snapshots share few times)
        online_config = store.config.online_store
        if getattr(online_config, "type", None) == "redis" and getattr(online_config, "client", "redis") == "redis":
            self._online = bounded_redis_store(online_config, online_store_timeout())
        self._redis = redis_layout(store, plans, join_key)  # None: not Redis, read view by view

    @property
    def columns(self) -> list[str]:
        return [*self.numeric_columns, *self.string_columns]

    @property
    def views(self) -> list[str]:
        return [plan.name for plan in self.plans]

    @classmethod
    def from_store(
        cls,
        store,
        columns: Sequence[str],
        feature_service: str | None = None,
        optional_kinds: tuple[str, ...] = ("text",),
    ) -> OnlineFeatureReader:
        """Resolve which views and features serve ``columns`` (registry lookups happen here only).

        Args:
            store: an open ``feast.FeatureStore``.
            columns: the model's input feature columns.
            feature_service: the service the model was trained on; its views are searched first,
                then every registered view.
            optional_kinds: views whose ``kind`` tag is listed here may lack a customer without
                that being a cold start (text features exist only for customers who wrote reviews).

        Raises:
            FeatureStoreError: a column that no registered view serves.
        """
        from feast.types import PrimitiveFeastType

        with contextlib.suppress(Exception):  # a registry that cannot refresh still has its cached copy
            store.refresh_registry()
        candidates: list[tuple[str, object, list]] = []
        if feature_service:
            try:
                service = store.get_feature_service(feature_service)
            except Exception as exc:
                raise FeatureStoreError(
                    f"feature service {feature_service!r} is not registered "
                    f"(run `persona features apply`): {exc}"
                ) from None
            for projection in service.feature_view_projections:
                candidates.append(
                    (projection.name, store.get_feature_view(projection.name), list(projection.features))
                )
        for view in store.list_feature_views():
            if view.online:
                candidates.append((view.name, view, list(view.features)))

        owner: dict[str, tuple[str, object, object]] = {}
        for name, view, fields in candidates:
            for feature in fields:
                owner.setdefault(feature.name, (name, view, feature.dtype))
        unknown = [c for c in columns if c not in owner]
        if unknown:
            raise FeatureStoreError(
                f"no online feature view serves {unknown}; "
                "run `persona features apply` and `persona features materialize`"
            )
        strings = {c for c in columns if owner[c][2] == PrimitiveFeastType.STRING}
        numeric_columns, string_columns = split_columns(columns, strings)
        plans: dict[str, ViewPlan] = {}
        for column in columns:
            view_name, view, _ = owner[column]
            if view_name not in plans:
                kind = (getattr(view, "tags", None) or {}).get("kind", "")
                plans[view_name] = ViewPlan(view_name, view, {}, required=kind not in optional_kinds)
            is_string = column in strings
            index = (string_columns if is_string else numeric_columns).index(column)
            plans[view_name].slots[column.encode("utf8")] = (is_string, index)
        join_keys = {k.name for plan in plans.values() for k in plan.view.entity_columns}
        if join_keys != {ENTITY_KEY}:
            raise FeatureStoreError(
                f"serving reads views keyed by {ENTITY_KEY} only, got join keys {sorted(join_keys)}"
            )
        return cls(store, list(plans.values()), numeric_columns, string_columns)

    # ---- hot path ----
    def read(self, ids: Sequence[int] | np.ndarray) -> FeatureBatch:
        """Feature values for ``ids`` (duplicates allowed; order kept).

        Raises:
            FeatureStoreError: the online store cannot be read.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if self._redis is not None:
            return self._guarded(", ".join(self.views), self._read_redis, ids)
        batch = FeatureBatch.empty(ids, self.numeric_columns, self.string_columns)
        n = len(ids)
        numeric, strings = batch.numeric.reshape(-1), batch.strings.reshape(-1)
        width_numeric, width_strings = len(self.numeric_columns), len(self.string_columns)
        missing: list[list[str]] = [[] for _ in range(n)]
        for plan in self.plans:
            rows = self._read_view(plan, ids)
            stamps: list[str | None] = [None] * n
            for i, hit in enumerate(rows):
                if hit is None:
                    if plan.required:
                        missing[i].append(plan.name)
                    continue
                stamps[i], values = hit
                base_numeric, base_strings = i * width_numeric, i * width_strings
                for (is_string, j), value in values:
                    if is_string:
                        strings[base_strings + j] = value if isinstance(value, str) else str(value)
                    else:
                        numeric[base_numeric + j] = value
            batch.event_ts[plan.name] = stamps
        batch.missing_views = [tuple(m) for m in missing]
        return batch

    def _read_view(self, plan: ViewPlan, ids: np.ndarray) -> list[tuple[str, list] | None]:
        read = self._read_view_fast if self._fast else self._read_view_generic
        return self._guarded(plan.name, read, plan, ids)

    def _guarded(self, what: str, read, *args):
        """``read(*args)``, failing fast while the store was unreachable a moment ago.

        Raises:
            OnlineStoreUnavailable: the store cannot be reached (now or within ``retry_after``).
            FeatureStoreError: the store answered with an error.
        """
        down = self._down
        if down is not None and time.monotonic() < down[0]:
            raise OnlineStoreUnavailable(down[1], self.retry_after)
        try:
            result = read(*args)
        except FeatureStoreError:
            raise
        except Exception as exc:  # sqlite3.OperationalError, redis errors, ...
            if _is_unreachable(exc):
                message = (
                    f"online store unreachable ({self.location}): {type(exc).__name__}: {exc}; "
                    f"retry later"
                )
                self._down = (time.monotonic() + self.retry_after, message)
                raise OnlineStoreUnavailable(message, self.retry_after) from exc
            raise FeatureStoreError(
                f"online store read of {what} failed ({self.location}): {type(exc).__name__}: {exc}"
            ) from exc
        self._down = None
        return result

    def _read_redis(self, ids: np.ndarray) -> FeatureBatch:
        """Every view for ``ids`` in one pipelined round trip: one ``HMGET`` per distinct customer."""
        layout = self._redis
        assert layout is not None
        id_list = ids.tolist()
        position = {customer: k for k, customer in enumerate(dict.fromkeys(id_list))}
        unique = list(position)
        count = len(unique)
        fields = layout.fields
        client = self._online._client
        with client.pipeline(transaction=False) as pipe:
            for key in layout.keys(unique):
                pipe.hmget(key, fields)
            replies = pipe.execute()

        width_numeric, width_strings = len(self.numeric_columns), len(self.string_columns)
        numeric = np.full((count, width_numeric), np.nan)
        strings = np.full((count, width_strings), None, dtype=object)
        missing: list[list[str]] = [[] for _ in range(count)]
        event_ts: dict[str, list[str | None]] = {}
        ts_text = self._ts_text
        if len(ts_text) > 65_536:  # bounded: a long-running server sees new snapshot times
            ts_text.clear()
        for view in layout.views:
            stamps: list[str | None] = [None] * count
            ts_pos, start, stop = view.ts_pos, view.start, view.stop
            present: list[int] = []
            for u, reply in enumerate(replies):
                raw_ts = reply[ts_pos]
                if raw_ts is None or reply[start:stop].count(None) == stop - start:
                    # no `_ts:<view>` (or none of its fields): the customer has no row in this view
                    if view.required:
                        missing[u].append(view.name)
                    continue
                text = ts_text.get(raw_ts)
                if text is None:
                    text = ts_text[raw_ts] = decode_timestamp_text(raw_ts)
                stamps[u] = text
                present.append(u)
            event_ts[view.name] = stamps
            if present:
                _decode_view_values(view, [replies[u] for u in present], present, numeric, strings)
        missing_views = [tuple(m) for m in missing]
        if count != len(id_list):  # duplicate ids: spread the distinct rows back to request order
            rows = [position[customer] for customer in id_list]
            index = np.asarray(rows, dtype=np.intp)
            numeric, strings = numeric[index], strings[index]
            event_ts = {view: [stamps[r] for r in rows] for view, stamps in event_ts.items()}
            missing_views = [missing_views[r] for r in rows]
        return FeatureBatch(
            ids=ids,
            numeric_columns=self.numeric_columns,
            string_columns=self.string_columns,
            numeric=numeric,
            strings=strings,
            event_ts=event_ts,
            missing_views=missing_views,
        )

    def _read_view_fast(self, plan: ViewPlan, ids: np.ndarray) -> list[tuple[str, list] | None]:
        from store.materialize_fast import encode_int64_entity_keys

        keys = encode_int64_entity_keys(self.join_key, ids)
        found = self._online.read_payloads(self.store.config, plan.view, list(set(keys)))
        decoder = self._decoders.get(plan.name)
        if decoder is None:
            decoder = self._decoders[plan.name] = PayloadDecoder(plan.slots)
        out: list[tuple[str, list] | None] = []
        decoded: dict[bytes, tuple[str, list]] = {}
        for key in keys:
            hit = found.get(key)
            if hit is None:
                out.append(None)
                continue
            row = decoded.get(key)
            if row is None:
                row = decoded[key] = (hit[0], decoder.decode(hit[1]))
            out.append(row)
        return out

    def _read_view_generic(self, plan: ViewPlan, ids: np.ndarray) -> list[tuple[str, list] | None]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        unique = list(dict.fromkeys(ids.tolist()))
        keys = [EntityKey(join_keys=[self.join_key], entity_values=[Value(int64_val=int(i))]) for i in unique]
        names = [k.decode("utf8") for k in plan.slots]
        rows = self._online.online_read(self.store.config, plan.view, keys, names)
        by_id: dict[int, tuple[str, list] | None] = {}
        for customer, (event_ts, values) in zip(unique, rows, strict=True):
            if _no_row(event_ts, values):
                by_id[customer] = None
                continue
            pairs = [
                (plan.slots.get(name.encode("utf8")), feast_value_type_to_python_type(proto))
                for name, proto in values.items()
            ]
            by_id[customer] = (
                timestamp_text(event_ts) or "",
                [(slot, value) for slot, value in pairs if slot is not None and value is not None],
            )
        return [by_id[i] for i in ids.tolist()]

    def ping(self) -> None:
        """Check that every view's online table answers (raises :class:`FeatureStoreError`)."""
        probe = np.array([-1], dtype=np.int64)
        if self._redis is not None:
            self.read(probe)
            return
        for plan in self.plans:
            self._read_view(plan, probe)


_FLOAT_WIRE = np.dtype([("tag", "u1"), ("value", "<f4")])  # a serialized float_val ValueProto
_NULL_FLOAT = bytes([_TAG_FLOAT]) + struct.pack("<f", float("nan"))  # stands for a null in a float block


def _decode_view_values(
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
        if block is not None and bool((block["tag"] == _TAG_FLOAT).all()):
            numeric[np.ix_(rows, view.float_columns)] = block["value"].reshape(len(rows), len(positions))
        else:
            others = view.fields
    unpack_float = _UNPACK_FLOAT
    for reply, u in zip(replies, rows, strict=True):
        for pos, is_string, j in others:
            raw = reply[pos]
            if not raw:  # absent field or null value
                continue
            tag = raw[0]
            if tag == _TAG_FLOAT and len(raw) == 5:
                value = unpack_float(raw, 1)[0]
            elif tag == _TAG_INT64 and len(raw) == 2:  # a one-byte varint: counts below 128
                value = raw[1]
            else:
                value = decode_value(raw)
                if value is None:
                    continue
            if is_string:
                strings[u, j] = value if isinstance(value, str) else str(value)
            else:
                numeric[u, j] = value


def _no_row(event_ts: datetime | None, values: dict | None) -> bool:
    """Whether an ``online_read`` result says the entity has no row in the view.

    Stores answer ``(None, None)`` for a missing entity, except Feast's Redis store, which
    answers the epoch and an unset ``ValueProto`` for every feature (a hash without the view's
    fields reads like that).
    """
    if values is None:
        return True
    if event_ts is None or event_ts.timestamp() != 0:
        return False
    return all(proto.WhichOneof("val") is None for proto in values.values())


def _describe_online_store(config) -> str:
    """``redis 127.0.0.1:6379`` / ``sqlite /path/online_store.db``: where reads go (no credentials)."""
    kind = str(getattr(config, "type", "") or type(config).__name__)
    connection = getattr(config, "connection_string", None)
    if connection:
        return f"{kind} {_redis_nodes(connection)}"
    path = getattr(config, "path", None)
    return f"{kind} {path}" if path else kind


def _scalar(payload: bytes, pos: int, size: int) -> object:
    """The value of the ``size`` bytes at ``pos`` (a serialized ValueProto)."""
    tag = payload[pos]
    if tag == _TAG_FLOAT and size == 5:
        return _UNPACK_FLOAT(payload, pos + 1)[0]
    if tag == _TAG_INT64 and size == 2:  # a one-byte varint: counts below 128
        return payload[pos + 1]
    if tag == _TAG_STRING and size == payload[pos + 1] + 2:  # a short string
        return payload[pos + 2 : pos + size].decode("utf8")
    return decode_value(payload[pos : pos + size])


def _decode_payload(
    payload: bytes, slots: dict[bytes, tuple[bool, int]]
) -> tuple[list[tuple[tuple[bool, int], object]], list[bytes]]:
    """``(slot, value)`` for the features in ``slots`` of one payload, and every feature name in order.

    The payload is ``varint(len(name)) name varint(len(value)) value`` per feature (see
    :mod:`store.online_sqlite`); values are decoded without building protobuf objects.
    """
    out: list[tuple[tuple[bool, int], object]] = []
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
            value = _scalar(payload, pos, size)
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

    def __init__(self, slots: dict[bytes, tuple[bool, int]]) -> None:
        self.slots = slots
        self.template: list[tuple[bytes, int, tuple[bool, int] | None]] | None = None

    def decode(self, payload: bytes) -> list[tuple[tuple[bool, int], object]]:
        """``(slot, value)`` pairs of the wanted, non-null features of ``payload``."""
        template = self.template
        if template is not None:
            out = self._follow(payload, template)
            if out is not None:
                return out
        out, names = _decode_payload(payload, self.slots)
        self.template = [
            (prefix, len(prefix), self.slots.get(name))
            for name in names
            for prefix in (name_prefix(name.decode("utf8")),)
        ]
        return out

    @staticmethod
    def _follow(
        payload: bytes, template: list[tuple[bytes, int, tuple[bool, int] | None]]
    ) -> list[tuple[tuple[bool, int], object]] | None:
        out: list[tuple[tuple[bool, int], object]] = []
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
                if tag == _TAG_FLOAT and size == 5:
                    out.append((slot, _UNPACK_FLOAT(payload, pos + 1)[0]))
                else:
                    value = _scalar(payload, pos, size)
                    if value is not None:
                        out.append((slot, value))
            pos += size
        return out if pos == len(payload) else None
