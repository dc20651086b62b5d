"""Offline feature sources for both profiles: parquet files (local) or Postgres tables (prod).

Every writer replaces a source atomically (temp file + rename, or a new table renamed in one
transaction), so Feast never reads a half-written source.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings


def parquet_path(settings: Settings, name: str) -> Path:
    """Where the local profile keeps a source."""
    return catalog.offline_source(settings, name)


def write_parquet_atomic(frame: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write via a temporary file and rename, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def postgres_url(settings: Settings, driver: str = "postgresql") -> str:
    """Connection URL of the production Postgres (password may be empty: trust auth)."""
    auth = settings.postgres_user + (f":{settings.postgres_password}" if settings.postgres_password else "")
    return f"{driver}://{auth}@{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}"


def _connect(settings: Settings):
    import psycopg

    try:
        return psycopg.connect(postgres_url(settings), connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PersonaError(
            f"cannot reach Postgres at {settings.postgres_host}:{settings.postgres_port} "
            f"(database {settings.postgres_db}): {str(exc).strip().splitlines()[0]}; run `persona prod up` "
            "or set PERSONA_POSTGRES_*"
        ) from None


def _pg_type(field: pa.Field) -> str:
    t = field.type
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_float32(t):
        return "REAL"
    if pa.types.is_floating(t):
        return "DOUBLE PRECISION"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "REAL[]" if pa.types.is_float32(t.value_type) else "DOUBLE PRECISION[]"
    return "TEXT"


def _csv_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for field in table.schema:
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            frame[field.name] = [
                None if v is None else "{" + ",".join(np.asarray(v, dtype=float).astype(str)) + "}"
                for v in frame[field.name]
            ]
        elif pa.types.is_timestamp(field.type):
            frame[field.name] = frame[field.name].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    return frame


def write_postgres(settings: Settings, name: str, table: pa.Table, chunk_rows: int = 200_000) -> None:
    """Replace table ``name`` with ``table`` in one transaction (COPY into a new table, then swap)."""
    columns = ", ".join(f'"{f.name}" {_pg_type(f)}' for f in table.schema)
    quoted = ", ".join(f'"{f.name}"' for f in table.schema)
    new = f"{name}__new"
    with _connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f'DROP TABLE IF EXISTS "{new}"')
        cur.execute(f'CREATE TABLE "{new}" ({columns})')
        with cur.copy(f'COPY "{new}" ({quoted}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')') as copy:
            for offset in range(0, table.num_rows, chunk_rows):
                buffer = io.StringIO()
                _csv_frame(table.slice(offset, chunk_rows)).to_csv(buffer, index=False, header=False,
                                                                    na_rep="\\N")
                copy.write(buffer.getvalue())
        cur.execute(f'DROP TABLE IF EXISTS "{name}"')
        cur.execute(f'ALTER TABLE "{new}" RENAME TO "{name}"')
        if "customer_id" in table.schema.names and "event_timestamp" in table.schema.names:
            cur.execute(f'CREATE INDEX ON "{name}" (customer_id, event_timestamp)')


def write_source(settings: Settings, name: str, frame: pd.DataFrame | pa.Table) -> str:
    """Replace offline source ``name`` for this profile.

    Returns:
        Where it went (a path or ``postgres:<table>``).
    """
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    if settings.profile == "prod":
        write_postgres(settings, name, table)
        return f"postgres:{settings.postgres_db}.{name}"
    path = parquet_path(settings, name)
    write_parquet_atomic(table, path)
    return str(path)


def source_exists(settings: Settings, name: str) -> bool:
    """Whether an offline source has been written for this profile."""
    if settings.profile == "prod":
        with _connect(settings) as conn:
            row = conn.execute("SELECT to_regclass(%s)", (f'public."{name}"',)).fetchone()
            return row is not None and row[0] is not None
    return parquet_path(settings, name).exists()


def read_source(settings: Settings, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a whole offline source (tests, consistency checks, indexes)."""
    if settings.profile == "prod":
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        with _connect(settings) as conn, conn.cursor() as cur:
            cur.execute(f'SELECT {selected} FROM "{name}"')
            names = [d.name for d in cur.description]
            frame = pd.DataFrame(cur.fetchall(), columns=names)
        for column in ("event_timestamp", "created_timestamp"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame
    return pd.read_parquet(parquet_path(settings, name), columns=columns)


def column_types(settings: Settings, table: str) -> dict[str, str]:
    """``{column: udt_name}`` of a Postgres table in the public schema (empty when there is no such table)."""
    with _connect(settings) as conn:
        rows = conn.execute(
            "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    return {name: udt for name, udt in rows}


def table_fingerprint(
    settings: Settings, table: str, timestamp: str, created: str | None
) -> tuple[int, object, object]:
    """``(rows, newest created, newest event time)`` of a Postgres source (created None without the column)."""
    newest_created = f'max("{created}")' if created else "NULL"
    with _connect(settings) as conn:
        row = conn.execute(f'SELECT count(*), {newest_created}, max("{timestamp}") FROM "{table}"').fetchone()
    return int(row[0]), row[1], row[2]


def earliest_created_after(settings: Settings, table: str, timestamp: str, created: str, since: pd.Timestamp):
    """The earliest event time of a Postgres source's rows created after ``since`` (None when there are none)."""
    with _connect(settings) as conn:
        row = conn.execute(
            f'SELECT min("{timestamp}") FROM "{table}" WHERE "{created}" > %s', (since.to_pydatetime(),)
        ).fetchone()
    return row[0]


def source_span(settings: Settings, name: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Min and max event timestamp of a source (None when it has no rows)."""
    if settings.profile == "prod":
        with _connect(settings) as conn:
            low, high = conn.execute(f'SELECT min(event_timestamp), max(event_timestamp) FROM "{name}"').fetchone()
        if low is None:
            return None
        return pd.Timestamp(low).tz_convert("UTC"), pd.Timestamp(high).tz_convert("UTC")
    return parquet_span(parquet_path(settings, name))


def parquet_span(path: str | Path, column: str = "event_timestamp") -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Min and max of a parquet file or folder's timestamp column (None when it has no rows).

    Read from the row groups' statistics, so a source of any size costs a few kilobytes.
    """
    from pathlib import Path

    from store.latest_rows import column_bounds, parquet_files

    spans = [b for f in parquet_files(Path(path)) if (b := column_bounds(f, column)) is not None]
    if not spans:
        return None
    return pd.Timestamp(min(s[0] for s in spans)), pd.Timestamp(max(s[1] for s in spans))
