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
hashed field names computed once per model (:class:`store.layout.RedisLayout`). A view whose ``_ts`` field is
absent has no row for that customer. Other online stores go through the store's own
``online_read``.

A store that cannot be reached must not hang a request: the Redis client the reader uses has
short socket timeouts and at most one immediate reconnect (Feast's own client has no timeout
and retries three times with backoff of up to seconds), and after a failure the reader answers
"unreachable" at once for a short while instead of trying again on every request.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import numpy as np

from store.codec import decode_timestamp_text, timestamp_text
from store.fast_decode import PayloadDecoder, decode_view_values
from store.feature_batch import FeatureBatch, split_columns
from store.layout import ENTITY_KEY, ViewPlan, encode_int64_entity_keys, redis_layout
from store.online_client import (
    DEFAULT_TIMEOUT_SECONDS,
    FeatureStoreError,
    OnlineStoreUnavailable,
    bounded_redis_client,
    describe_online_store,
    is_redis_error,
    is_unreachable,
    online_store_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

# What serving imports from here (the errors it maps to HTTP answers, the timeout it checks).
__all__ = [
    "FeatureBatch",
    "FeatureStoreError",
    "OnlineFeatureReader",
    "OnlineStoreUnavailable",
    "is_redis_error",
    "online_store_timeout",
    "split_columns",
]

RETRY_AFTER_SECONDS = 1.0  # after a failed call, answer "unreachable" without trying for this long


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
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        from store.feast_internals import online_store_of, redis_store_with_client
        from store.online_sqlite import PersonaSqliteOnlineStore

        self.store = store
        self.plans = plans
        self.numeric_columns = tuple(numeric_columns)
        self.string_columns = tuple(string_columns)
        self.join_key = join_key
        self._online = online_store_of(store)
        self._fast = isinstance(self._online, PersonaSqliteOnlineStore)
        self._decoders: dict[str, PayloadDecoder] = {}
        self.location = describe_online_store(store.config.online_store)
        self.retry_after = RETRY_AFTER_SECONDS
        self._down: tuple[float, str] | None = None  # (monotonic time to try again, why)
        self._ts_text: dict[bytes, str] = {}  # serialized Timestamp -> text (snapshots share few times)
        self._redis_client = None
        online_config = store.config.online_store
        if getattr(online_config, "type", None) == "redis" and getattr(online_config, "client", "redis") == "redis":
            self._redis_client = bounded_redis_client(online_config, timeout)
            self._online = redis_store_with_client(self._redis_client)  # Feast's own reads use it too
        self._redis = redis_layout(store, plans, join_key)  # None: not Redis, read view by view

    @property
    def columns(self) -> list[str]:
        """Every column the reader fills, the numeric block's first."""
        return [*self.numeric_columns, *self.string_columns]

    @property
    def views(self) -> list[str]:
        """The views one read touches."""
        return [plan.name for plan in self.plans]

    @classmethod
    def from_store(
        cls,
        store,
        columns: Sequence[str],
        feature_service: str | None = None,
        optional_kinds: tuple[str, ...] = ("text",),
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> OnlineFeatureReader:
        """Resolve which views and features serve ``columns`` (registry lookups happen here only).

        Args:
            store: an open ``feast.FeatureStore``.
            columns: the model's input feature columns.
            feature_service: the service the model was trained on; its views are searched first,
                then every registered view.
            optional_kinds: views whose ``kind`` tag is listed here may lack a customer without
                that being a cold start (text features exist only for customers who wrote reviews).
            timeout: seconds one online-store call may take (:func:`online_store_timeout`).

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
        return cls(store, list(plans.values()), numeric_columns, string_columns, timeout=timeout)

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
            if is_unreachable(exc):
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
        client = self._redis_client
        assert client is not None
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
                decode_view_values(view, [replies[u] for u in present], present, numeric, strings)
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
        from store.feast_internals import EntityKeyProto, ValueProto, python_value_of

        unique = list(dict.fromkeys(ids.tolist()))
        keys = [EntityKeyProto(join_keys=[self.join_key], entity_values=[ValueProto(int64_val=int(i))])
                for i in unique]
        names = [k.decode("utf8") for k in plan.slots]
        rows = self._online.online_read(self.store.config, plan.view, keys, names)
        by_id: dict[int, tuple[str, list] | None] = {}
        for customer, (event_ts, values) in zip(unique, rows, strict=True):
            if _no_row(event_ts, values):
                by_id[customer] = None
                continue
            pairs = [
                (plan.slots.get(name.encode("utf8")), python_value_of(proto))
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


