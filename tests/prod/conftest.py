"""Shared helpers and fixtures for these tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from feast.value_type import ValueType

from core.settings import load_settings
from store.layout import encode_int64_entity_keys


def reachable() -> str | None:
    from app.services import unreachable

    return unreachable(load_settings())


def drop_prod_state(settings) -> None:
    """Remove a test's Redis keys (its Feast project only) and its Postgres databases."""
    import psycopg
    import redis

    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    for key in client.scan_iter(match=b"*" + settings.project.encode(), count=1000):
        client.delete(key)
    with psycopg.connect(f"host={settings.postgres_host} port={settings.postgres_port} "
                         f"user={settings.postgres_user} dbname=postgres", autocommit=True) as conn:
        for name in (settings.postgres_db, settings.postgres_db + "_mlflow"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')




@pytest.fixture
def redis_projects():
    """A Redis client and two fresh Feast project names; their keys are deleted afterwards."""
    client, settings = redis_client()
    suffix = uuid.uuid4().hex[:8]
    projects = (f"persona_test_feast_{suffix}", f"persona_test_fast_{suffix}")
    yield client, settings, projects
    for project in projects:
        for key in client.scan_iter(match=b"*" + project.encode(), count=1000):
            client.delete(key)


def mixed_view():
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(name="mixed_source", path="unused.parquet", timestamp_field="event_timestamp")
    schema = [Field(name="customer_id", dtype=Int64), Field(name="spend", dtype=Float32),
              Field(name="ratio", dtype=Float64), Field(name="orders", dtype=Int64), Field(name="visits", dtype=Int32),
              Field(name="region", dtype=String), Field(name="active", dtype=Bool),
              Field(name="embedding", dtype=Array(Float32))]
    return FeatureView(name="mixed", entities=[customer], ttl=timedelta(0), schema=schema, source=source)


def mixed_rows(ids: list[int], stamps: list[datetime], seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = len(ids)
    spend = rng.normal(size=n).astype("float32")
    spend[::5] = np.nan
    return pa.table({
        "customer_id": pa.array(ids, pa.int64()),
        "spend": pa.array(spend, pa.float32()),
        "ratio": pa.array([None if i % 7 == 0 else float(v) for i, v in enumerate(rng.normal(size=n))], pa.float64()),
        "orders": pa.array([None if i % 6 == 0 else int(v) for i, v in enumerate(rng.integers(-5, 2**40, n))],
                           pa.int64()),
        "visits": pa.array(rng.integers(0, 9, n).tolist(), pa.int32()),
        "region": pa.array([None if i % 4 == 0 else f"région {i % 3}" for i in range(n)], pa.string()),
        "active": pa.array([None if i % 3 == 0 else bool(i % 2) for i in range(n)], pa.bool_()),
        "embedding": pa.array([None if i % 8 == 0 else rng.normal(size=i % 4).astype("float32").tolist()
                               for i in range(n)], pa.list_(pa.float32())),
        "event_timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    })


def hashes(client, project: str, ids: list[int]) -> list[dict]:
    keys = [k + project.encode() for k in encode_int64_entity_keys("customer_id", np.array(ids))]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        return pipe.execute()


def redis_client():
    import redis

    from core.settings import load_settings

    settings = load_settings()
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"REDIS NOT REACHABLE at {settings.redis_host}:{settings.redis_port}: {exc}")
    return client, settings
