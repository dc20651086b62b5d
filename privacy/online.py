"""Erased customers in the online store (SQLite or Redis) and the prod offline store (Postgres).

Keys come from the store package's own encoders (:func:`store.layout.encode_int64_entity_keys`,
:class:`store.layout.RedisLayout`), the same bytes materialization writes, so a key is never
hand-rolled here. SQLite: every table of the online store with an ``entity_key`` column (one per
view, one row per entity). Redis: one hash per entity holding every view's fields, deleted whole.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from core import catalog
from core.contract import ENTITY_KEY
from core.errors import PersonaError
from privacy.files import FileCount
from store.layout import RedisLayout, encode_int64_entity_keys, entity_key_prefix

if TYPE_CHECKING:
    from core.settings import Settings
    from privacy.files import Targets

_CHUNK = 900  # SQLite's bound-parameter limit, with room to spare


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [n for n in names if any(col[1] == "entity_key" for col in conn.execute(f"PRAGMA table_info({_quote(n)})"))]


def _sqlite(settings: Settings, targets: Targets, delete: bool) -> FileCount:
    path = catalog.online_store_db(settings)
    count = FileCount()
    if not path.exists():
        return count
    keys = encode_int64_entity_keys(ENTITY_KEY, targets.ids)
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        with conn:
            for table in _sqlite_tables(conn):
                count.rows += conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start : start + _CHUNK]
                    where = f"entity_key IN ({','.join('?' * len(chunk))})"
                    found = conn.execute(f"SELECT count(*) FROM {_quote(table)} WHERE {where}", chunk).fetchone()[0]
                    if delete and found:
                        conn.execute(f"DELETE FROM {_quote(table)} WHERE {where}", chunk)
                        count.removed += found
                    elif not delete:
                        count.hits += found
    finally:
        conn.close()
    return count


def _redis_keys(settings: Settings, targets: Targets) -> list[bytes]:
    layout = RedisLayout(entity_key_prefix(ENTITY_KEY), settings.project.encode("utf8"), (), ())
    return layout.keys(targets.ids)


def _redis(settings: Settings, targets: Targets, delete: bool) -> FileCount:
    import redis

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port,
                         socket_timeout=settings.online_store_timeout_seconds * 10)
    keys = _redis_keys(settings, targets)
    count = FileCount()
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        found = int(client.exists(*chunk)) if chunk else 0  # type: ignore[arg-type]
        if delete:
            count.removed += int(client.delete(*chunk)) if found else 0  # type: ignore[arg-type]
        else:
            count.hits += found
    return count


def erase_online(settings: Settings, targets: Targets) -> FileCount:
    """Delete the erased customers' entity rows from the profile's online store."""
    return _redis(settings, targets, True) if settings.profile == "prod" else _sqlite(settings, targets, True)


def scan_online(settings: Settings, targets: Targets) -> FileCount:
    """Entity rows of erased customers left in the online store."""
    return _redis(settings, targets, False) if settings.profile == "prod" else _sqlite(settings, targets, False)


def _count(cur, sql: str, params: tuple = ()) -> int:
    row = cur.execute(sql, params).fetchone()
    return int(row[0]) if row is not None else 0


def _postgres(settings: Settings, targets: Targets, delete: bool) -> FileCount:
    import psycopg

    from store.offline import postgres_url

    count = FileCount()
    ids = [int(i) for i in targets.ids]
    try:
        conn = psycopg.connect(postgres_url(settings), connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PersonaError(f"cannot reach Postgres at {settings.postgres_host}:{settings.postgres_port} "
                           f"(database {settings.postgres_db}) to erase the offline sources: "
                           f"{str(exc).strip().splitlines()[0]}; run `persona prod up` or set PERSONA_POSTGRES_*"
                           ) from None
    with conn, conn.cursor() as cur:
        for name in catalog.OFFLINE_SOURCES:
            row = cur.execute("SELECT to_regclass(%s)", (f'public."{name}"',)).fetchone()
            if row is None or row[0] is None:
                continue
            count.rows += _count(cur, f'SELECT count(*) FROM "{name}"')
            if delete:
                cur.execute(f'DELETE FROM "{name}" WHERE {ENTITY_KEY} = ANY(%s)', (ids,))
                count.removed += cur.rowcount
            else:
                count.hits += _count(cur, f'SELECT count(*) FROM "{name}" WHERE {ENTITY_KEY} = ANY(%s)', (ids,))
    return count


def erase_offline_postgres(settings: Settings, targets: Targets) -> FileCount:
    """Delete the erased customers' rows from the prod offline sources (one transaction)."""
    return _postgres(settings, targets, True)


def scan_offline_postgres(settings: Settings, targets: Targets) -> FileCount:
    """Rows of erased customers left in the prod offline sources."""
    return _postgres(settings, targets, False)
