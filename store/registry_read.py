"""Read the feature views' materialization from Feast's SQL registry without importing Feast.

``persona status`` must answer in a second or two; importing Feast and opening a
``FeatureStore`` takes several seconds before it reads a single row. The registry is a SQL
table of serialized ``feast.core.FeatureView`` protobufs, so this module reads the rows and
decodes the few fields it needs (name, online flag, materialization intervals) straight from
the protobuf wire format.

The field numbers below are Feast's stored format (a registry written by one Feast version is
read by the next, so they do not change within the pinned minor);
``tests/test_status.py`` checks :func:`view_states` against Feast's own
``list_feature_views()``. Read only: nothing here writes to the registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import catalog
from store.codec import read_varint

if TYPE_CHECKING:
    from core.settings import Settings

# feast.core.FeatureView: spec = 1, meta = 2
_VIEW_SPEC, _VIEW_META = 1, 2
# feast.core.FeatureViewSpec: name = 1, online = 8
_SPEC_NAME, _SPEC_ONLINE = 1, 8
# feast.core.FeatureViewMeta: materialization_intervals = 3
_META_INTERVALS = 3
# feast.core.MaterializationInterval: start_time = 1, end_time = 2 (google.protobuf.Timestamp)
_INTERVAL_START, _INTERVAL_END = 1, 2
# google.protobuf.Timestamp: seconds = 1, nanos = 2
_TS_SECONDS, _TS_NANOS = 1, 2

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class ViewState:
    """One registered feature view and how far it has been loaded into the online store.

    Attributes:
        name: the view's name.
        online: whether the view is served online (only online views are materialized).
        intervals: materialized ``(start, end)`` intervals, oldest first (UTC).
    """

    name: str
    online: bool
    intervals: tuple[tuple[dt.datetime, dt.datetime], ...]

    @property
    def materialized_until(self) -> dt.datetime | None:
        """End of the latest materialized interval, or None when never materialized."""
        return max((end for _, end in self.intervals), default=None)



def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The top-level ``(field number, value)`` pairs of a protobuf message.

    Varints come back as ints, length-delimited fields as bytes; fixed-width fields as ints.
    """
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = read_varint(data, pos)
            out.append((number, value))
        elif wire == _LEN:
            size, pos = read_varint(data, pos)
            out.append((number, data[pos:pos + size]))
            pos += size
        elif wire == _I64:
            out.append((number, int.from_bytes(data[pos:pos + 8], "little")))
            pos += 8
        elif wire == _I32:
            out.append((number, int.from_bytes(data[pos:pos + 4], "little")))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _message(data: bytes, number: int) -> bytes:
    return next((v for n, v in fields(data) if n == number and isinstance(v, bytes)), b"")


def _timestamp(data: bytes) -> dt.datetime:
    values = {n: v for n, v in fields(data) if isinstance(v, int)}
    seconds, nanos = values.get(_TS_SECONDS, 0), values.get(_TS_NANOS, 0)
    return dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(microseconds=nanos // 1000)


def decode_view(proto: bytes) -> ViewState:
    """A serialized ``feast.core.FeatureView`` as a :class:`ViewState`."""
    spec, meta = _message(proto, _VIEW_SPEC), _message(proto, _VIEW_META)
    spec_fields = fields(spec)
    name = next((v.decode() for n, v in spec_fields if n == _SPEC_NAME and isinstance(v, bytes)), "")
    online = any(n == _SPEC_ONLINE and v == 1 for n, v in spec_fields)
    intervals = []
    for number, value in fields(meta):
        if number == _META_INTERVALS and isinstance(value, bytes):
            intervals.append((_timestamp(_message(value, _INTERVAL_START)),
                              _timestamp(_message(value, _INTERVAL_END))))
    return ViewState(name, online, tuple(sorted(intervals)))


def view_states(settings: Settings) -> list[ViewState] | None:
    """Every feature view of this home's project in the local (SQLite) registry, by name.

    Returns:
        None when the registry does not exist yet (``persona features apply`` has not run).

    Raises:
        NotImplementedError: for the prod profile (its registry lives in Postgres; callers
            fall back to Feast's own client).
    """
    if settings.profile != "local":
        raise NotImplementedError("the prod registry is read through Feast")
    path = catalog.feast_registry_db(settings)
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            rows = conn.execute("SELECT feature_view_proto FROM feature_views WHERE project_id = ?",
                                (settings.project,)).fetchall()
        except sqlite3.OperationalError:  # created but never applied
            return None
    return sorted((decode_view(bytes(row[0])) for row in rows), key=lambda v: v.name)


def view_states_via_feast(settings: Settings) -> list[ViewState]:
    """The same as :func:`view_states` through Feast's client (any profile; slow to import)."""
    from store.repo import get_store

    store = get_store(settings)
    return sorted(
        (ViewState(v.name, bool(v.online), tuple(sorted((s, e) for s, e in v.materialization_intervals)))
         for v in store.list_feature_views()),
        key=lambda v: v.name,
    )
