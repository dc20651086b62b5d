"""Newer-wins online writes at equal event times: a corrected re-load at the same time wins.

The SQLite upsert and the Redis script both replace a stored value when the incoming event
time is *at least* as new; a strict comparison would silently drop a corrected re-load.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from store.online_sqlite import create_table, upsert_sql
from store.write_redis import RedisUpsert
from tests.prod.conftest import hashes, mixed_rows, mixed_view

STAMP = "2025-06-01T00:00:00.000000+00:00"
EARLIER = "2025-05-31T00:00:00.000000+00:00"


def _sqlite_rows(conn: sqlite3.Connection) -> dict[bytes, tuple[str, bytes]]:
    return {key: (ts, payload) for key, ts, payload in conn.execute("SELECT entity_key, event_ts, payload FROM t")}


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    create_table(connection, "t")
    connection.executemany(upsert_sql("t"), [(b"a", STAMP, None, b"first"), (b"b", STAMP, None, b"first")])
    return connection


def test_sqlite_reload_at_the_same_event_time_replaces_the_value(conn: sqlite3.Connection) -> None:
    # given entities stored at STAMP
    # when a corrected load arrives with the same event time for a, an older one for b
    conn.executemany(upsert_sql("t"), [(b"a", STAMP, None, b"corrected"), (b"b", EARLIER, None, b"stale")])

    # then the tie is won by the re-load; the older row changes nothing
    assert _sqlite_rows(conn) == {b"a": (STAMP, b"corrected"), b"b": (STAMP, b"first")}


@pytest.mark.integration
@pytest.mark.prod
def test_redis_reload_at_the_same_event_time_replaces_the_value(redis_projects) -> None:
    # given 6 entities written at one event time
    client, _, (_, project) = redis_projects
    view = mixed_view()
    ids = list(range(200, 206))
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with RedisUpsert(client, project, view, keys_per_call=6) as writer:
        writer.write(mixed_rows(ids, [now] * 6, seed=5))
    before = hashes(client, project, ids)

    # when a corrected load at the same time arrives for even ids, an older one for odd ids
    stamps = [now if i % 2 == 0 else now - timedelta(microseconds=1) for i in ids]
    with RedisUpsert(client, project, view, keys_per_call=6) as writer:
        writer.write(mixed_rows(ids, stamps, seed=6))
    after = hashes(client, project, ids)

    # then ties took the corrected values and older rows changed nothing
    assert [after[i] != before[i] for i in range(6)] == [i % 2 == 0 for i in ids]
