"""The columnar encoder writes exactly what Feast's own encoders would, and the store guards order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from store.codec import RESP_FRAMING, encode_value_array, encode_values
from store.layout import encode_int64_entity_keys
from store.materialize_view import _read_ahead
from store.online_sqlite import (
    decode_payload,
    encode_payload,
    name_prefix,
    parse_timestamp,
    timestamp_text,
)
from store.write_redis import RedisUpsert, _sortable_nanos
from tests.prod.conftest import hashes, mixed_rows, mixed_view


def _feast(values: list, value_type: ValueType) -> list[bytes]:
    return [p.SerializeToString() for p in python_values_to_proto_values(values, value_type)]


@pytest.mark.parametrize(
    ("array", "value_type"),
    [
        (pa.array([0.5, -1.25, None, float("nan"), 3.4e38, 1e-30], pa.float32()), ValueType.FLOAT),
        (pa.array([0.5, -1.25, None, 1e300], pa.float64()), ValueType.DOUBLE),
        (pa.array([0, 1, 127, 128, 2**40, -1, -(2**63), None], pa.int64()), ValueType.INT64),
        (pa.array(["north", "süd", "", None, "north"], pa.string()), ValueType.STRING),
        (pa.array([[0.1, 0.2, -0.3], [], None, [1.0] * 384], pa.list_(pa.float32())), ValueType.FLOAT_LIST),
    ],
)
def test_encoded_values_equal_feast_encoding(array, value_type):
    # given a column with ordinary, extreme and null values
    expected = _feast(array.to_pylist(), value_type)

    # when encoded column-wise
    actual = encode_values(array, value_type)

    # then byte for byte what Feast writes (NaN floats included)
    assert actual == expected


def test_framed_values_decode_back():
    # given a framed column
    array = pa.array([1.5, None], pa.float32())

    # when framed with the feature's prefix and decoded
    framed = encode_values(array, ValueType.FLOAT, prefix=name_prefix("spend_30d"))
    decoded = [decode_payload(payload) for payload in framed]

    # then each payload holds the feature with Feast's value bytes
    assert [d["spend_30d"] for d in decoded] == _feast([1.5, None], ValueType.FLOAT)


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_entity_keys_equal_feast_serialization(ids):
    # given int64 customer ids
    expected = [
        serialize_entity_key(EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(int64_val=i)]),
                             entity_key_serialization_version=3)
        for i in ids
    ]

    # when / then
    assert encode_int64_entity_keys("customer_id", np.array(ids, dtype="int64")) == expected


def test_payload_round_trip_and_filter():
    # given values of three features
    values = {"a": b"\x35\x00\x00\x80\x3f", "bb": b"", "ccc": b"\x20\x05"}

    # when / then
    assert decode_payload(encode_payload(values)) == values
    assert decode_payload(encode_payload(values), {"bb"}) == {"bb": b""}


def test_timestamp_text_sorts_in_time_order():
    # given timestamps decades apart and microseconds apart
    stamps = [datetime(1997, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC),
              datetime(2025, 6, 1, tzinfo=UTC) + timedelta(microseconds=1)]

    # when
    texts = [timestamp_text(s) for s in stamps]

    # then text order is time order and parsing inverts formatting
    assert texts == sorted(texts)
    assert [parse_timestamp(t) for t in texts] == stamps


# --------------------------------------------------------------------------- framed and vectorized encodings
@pytest.mark.parametrize(
    ("array", "value_type"),
    [
        (pa.array([0.5, None, float("nan"), -2.0], pa.float32()), ValueType.FLOAT),
        (pa.array([1e300, None], pa.float64()), ValueType.DOUBLE),
        (pa.array([7, None, -(2**63), 7], pa.int64()), ValueType.INT64),
        (pa.array([3, None, -1], pa.int32()), ValueType.INT32),
        (pa.array([True, None, False, True]), ValueType.BOOL),
        (pa.array(["a" * 300, None, ""], pa.string()), ValueType.STRING),
    ],
)
def test_resp_framed_values_are_feast_bytes_as_redis_bulk_strings(array, value_type):
    # given a column with nulls (and NaN for floats)
    expected = [b"$%d\r\n%s\r\n" % (len(v), v) for v in _feast(array.to_pylist(), value_type)]

    # when encoded with the Redis protocol framing
    actual = encode_value_array(array, value_type, RESP_FRAMING).to_pylist()

    # then each value is Feast's bytes as one bulk string
    assert actual == expected


def test_sortable_event_times_are_fixed_width_and_sort_like_time():
    # given event times from before 1970 to far ahead, out of order
    stamps = pd.DatetimeIndex([pd.Timestamp(text, tz="UTC") for text in (
        "2025-06-01 00:00:00.000000001", "1960-05-05", "1997-01-01", "2200-01-01", "1969-12-31 23:59:59.999999999")])
    column = pa.array(stamps)

    # when
    digits = [bytes(row) for row in _sortable_nanos(column)]

    # then 20 digits each, in the same order as the times, and equal to the offset decimal text
    assert all(len(d) == 20 and d.isdigit() for d in digits)
    assert sorted(range(len(stamps)), key=lambda i: digits[i]) == sorted(range(len(stamps)), key=lambda i: stamps[i])
    assert digits[1] == f"{(stamps[1].value + 2**63):020d}".encode()


def test_read_ahead_hands_over_every_table_and_the_producers_error():
    # given a producer that yields two tables, then fails
    def produce():
        yield pa.table({"x": [1]})
        yield pa.table({"x": [2]})
        raise RuntimeError("source broke")

    # when consumed
    seen = []

    def consume() -> None:
        for table in _read_ahead(produce):
            seen.append(table.column("x")[0].as_py())

    with pytest.raises(RuntimeError, match="source broke"):
        consume()

    # then the tables came in order before the error
    assert seen == [1, 2]


def test_read_ahead_stops_its_producer_when_the_consumer_stops():
    # given an endless producer
    made = []
    closed = threading.Event()

    def produce():
        try:
            for i in range(10**9):
                made.append(i)
                yield pa.table({"x": [i]})
        finally:
            closed.set()

    # when the consumer takes one table and stops
    reader = _read_ahead(produce, depth=1)
    next(reader)
    reader.close()

    # then the producer was closed, a few tables ahead at most
    assert closed.is_set()
    assert len(made) <= 4


# --------------------------------------------------------------------------- Redis writer against real Redis








def _feast_write(settings, project: str, view, table: pa.Table) -> None:
    """The rows written by Feast's own Redis store (``online_write_batch``)."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.repo_config import RepoConfig

    config = RepoConfig(project=project, provider="local", registry="unused.db", entity_key_serialization_version=3,
                        online_store={"type": "redis",
                                      "connection_string": f"{settings.redis_host}:{settings.redis_port}"})
    rows = table.to_pylist()
    data = []
    for row in rows:
        key = EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(int64_val=row["customer_id"])])
        values = {f.name: python_values_to_proto_values([row[f.name]], f.dtype.to_value_type())[0]
                  for f in view.features}
        data.append((key, values, row["event_timestamp"], None))
    RedisOnlineStore().online_write_batch(config, view, data, None)




@pytest.mark.integration
@pytest.mark.prod
def test_redis_upsert_writes_feasts_exact_hashes_in_batched_script_calls(redis_projects):
    # given rows of every feature type with nulls, NaN and event times before 1970
    client, settings, (feast_project, fast_project) = redis_projects
    view = mixed_view()
    ids = list(range(1, 24))
    stamps = [datetime(1965, 1, 1, tzinfo=UTC) + timedelta(days=700 * i, microseconds=i) for i in ids]
    table = mixed_rows(ids, stamps, seed=1)
    _feast_write(settings, feast_project, view, table)

    # when written in writes of 7 rows, 3 entities per script call
    sizes: list[int] = []
    with RedisUpsert(client, fast_project, view, batch_rows=7, progress=sizes.append, keys_per_call=3) as writer:
        writer.write(table)

    # then every hash holds Feast's fields and bytes, plus the guard field, and each write was reported
    guard = b"_persona_ts:mixed"
    ours = hashes(client, fast_project, ids)
    assert all(guard in h for h in ours)
    assert [{k: v for k, v in h.items() if k != guard} for h in ours] == hashes(client, feast_project, ids)
    assert sizes == [7, 7, 7, 2]
    assert writer.written == 23


@pytest.mark.integration
@pytest.mark.prod
def test_redis_upsert_keeps_newer_values_per_entity_within_one_script_call(redis_projects):
    # given 10 entities written once
    client, _, (_, project) = redis_projects
    view = mixed_view()
    ids = list(range(100, 110))
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with RedisUpsert(client, project, view, keys_per_call=10) as writer:
        writer.write(mixed_rows(ids, [now] * 10, seed=2))
    before = hashes(client, project, ids)

    # when one script call carries older rows for even ids and newer rows for odd ids
    stamps = [now - timedelta(days=1) if i % 2 == 0 else now + timedelta(seconds=1) for i in ids]
    with RedisUpsert(client, project, view, keys_per_call=10) as writer:
        writer.write(mixed_rows(ids, stamps, seed=3))
    after = hashes(client, project, ids)

    # then the older rows changed nothing and the newer ones replaced their entity's values
    assert [after[i] == before[i] for i in range(10)] == [i % 2 == 0 for i in ids]


@pytest.mark.integration
@pytest.mark.prod
def test_redis_upsert_error_surfaces_and_leaves_the_client_usable(redis_projects):
    # given an entity whose key holds a string, not a hash
    import redis

    client, _, (_, project) = redis_projects
    view = mixed_view()
    bad_key = encode_int64_entity_keys("customer_id", np.array([5]))[0] + project.encode()
    client.set(bad_key, b"not a hash")
    ids = list(range(1, 9))
    table = mixed_rows(ids, [datetime(2025, 1, 1, tzinfo=UTC)] * 8, seed=4)

    # when written
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"), \
            RedisUpsert(client, project, view, batch_rows=4, keys_per_call=2) as writer:
        writer.write(table)

    # then the client still answers, and rows without the bad entity are written
    assert client.ping()
    with RedisUpsert(client, project, view) as writer:
        writer.write(table.filter(pc.not_equal(table["customer_id"], 5)))
    assert all(hashes(client, project, [i])[0] for i in ids if i != 5)


# --------------------------------------------------------------------------- binary COPY reader against real Postgres
@pytest.fixture
def pg_config():
    """A fresh Postgres database (dropped afterwards) and a Feast config whose offline store is it."""
    import uuid

    import psycopg
    from feast.repo_config import RepoConfig

    from core.settings import load_settings

    settings = load_settings()
    admin = (f"host={settings.postgres_host} port={settings.postgres_port} user={settings.postgres_user} "
             "dbname=postgres connect_timeout=3")
    try:
        psycopg.connect(admin).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"POSTGRES NOT REACHABLE at {settings.postgres_host}:{settings.postgres_port}: {exc}")
    name = f"persona_test_copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    config = RepoConfig(project="persona_test_copy", provider="local", registry="unused.db",
                        entity_key_serialization_version=3,
                        offline_store={"type": "postgres", "host": settings.postgres_host,
                                       "port": settings.postgres_port, "database": name, "db_schema": "public",
                                       "user": settings.postgres_user, "password": settings.postgres_password,
                                       "sslmode": settings.postgres_sslmode})
    yield config
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg(config):
    from feast.infra.utils.postgres.connection_utils import _get_conn

    conn = _get_conn(config.offline_store)
    conn.autocommit = True
    return conn


_TYPED_ROWS = """
INSERT INTO typed VALUES
 (1, '1997-01-01 00:00:00.123456+00', '1960-05-05 01:02:03', 5, -3, 1.5, 1e300, true, 'süd', 'x',
  '{0.1,0.2,-0.3}', '{1e-300}', '{1,-2}', '{true,false}'),
 (2, '1998-01-01 00:00:00+00', NULL, NULL, NULL, 'NaN', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '2025-06-01 12:00:00+02', '2025-01-01', -2147483648, 32767, 3.4e38, -0.0, false, '', 'comma, "q"',
  '{}', '{}', '{}', '{}'),
 (4, '1899-12-31 23:59:59.999999+00', '2000-01-01', 0, 0, 1e-30, 'Infinity', true, E'new\\nline', 'v',
  '{1,NULL}', '{NULL}', '{9223372036854775807}', NULL)
"""


@pytest.mark.integration
@pytest.mark.prod
@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_binary_copy_reads_every_value_as_postgres_holds_it(pg_config, chunk_rows):
    # given a table with every decoded type, NULLs, NaN, infinities, empty arrays and dates before 1970
    from psycopg import sql

    from store.pg_copy import copy_rows

    conn = _pg(pg_config)
    conn.execute("""CREATE TABLE typed (customer_id bigint, event_timestamp timestamptz, naive timestamp,
        i4 integer, i2 smallint, f4 real, f8 double precision, b boolean, s text, v varchar(20),
        f4s real[], f8s double precision[], i8s bigint[], bs boolean[])""")
    conn.execute(_TYPED_ROWS)
    query = sql.SQL("SELECT * FROM typed ORDER BY customer_id")

    # when read by binary COPY in parts of chunk_rows rows
    tables = list(copy_rows(conn, query, chunk_rows=chunk_rows))
    got = pa.concat_tables(tables).to_pylist()

    # then every value equals the one psycopg reads (REAL as float32, a NULL element of a float array as NaN),
    # in parts of at most chunk_rows rows
    assert max(t.num_rows for t in tables) <= chunk_rows
    with conn.cursor() as cur:
        cur.execute(query)
        names = [d.name for d in cur.description]
        want = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert len(got) == len(want) == 4

    def same(a, b):
        if isinstance(b, float) and np.isnan(b):
            return isinstance(a, float) and np.isnan(a)
        if isinstance(b, list):
            return a is not None and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return a == b

    for row_got, row_want in zip(got, want, strict=True):
        for name in names:
            expected = row_want[name]
            if name in ("f4s", "f8s") and expected is not None:
                expected = [float("nan") if x is None else x for x in expected]
            if name in ("f4", "f4s") and expected is not None:
                expected = ([float(np.float32(x)) for x in expected] if isinstance(expected, list)
                            else float(np.float32(expected)))
            assert same(row_got[name], expected), (name, row_got[name], expected)
    conn.close()


def _source_view(columns: dict[str, object]):
    from feast import Entity, FeatureView, Field
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
    from feast.types import Int64

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = PostgreSQLSource(name="snap_source", table="snap", timestamp_field="event_timestamp",
                              created_timestamp_column="created_timestamp")
    schema = [Field(name="customer_id", dtype=Int64)] + [Field(name=n, dtype=t) for n, t in columns.items()]
    return FeatureView(name="snap", entities=[customer], ttl=timedelta(0), schema=schema, source=source)


def _snapshot_table(conn, extra: str = "") -> None:
    """Several snapshots per customer, a created-time tie, rows outside the window and NULL features."""
    conn.execute(f"""CREATE TABLE snap (customer_id bigint, event_timestamp timestamptz, created_timestamp timestamptz,
        spend real, orders bigint, region text, embedding real[] {extra})""")
    conn.execute("""INSERT INTO snap SELECT c, t, t + make_interval(secs => k),
            CASE WHEN c % 5 = 0 THEN NULL ELSE c * 1.25 + k END, c * 3 + k,
            CASE WHEN c % 4 = 0 THEN NULL ELSE 'r' || (c % 3) END,
            CASE WHEN c % 6 = 0 THEN NULL WHEN c % 7 = 0 THEN ARRAY[c, NULL]::real[] ELSE ARRAY[c, k, 0.5]::real[] END
        FROM generate_series(1, 40) c, generate_series(0, 2) k,
             LATERAL (SELECT timestamptz '2025-01-01' + make_interval(days => (c * k) % 4)) d(t)""")
    conn.execute("INSERT INTO snap (customer_id, event_timestamp, created_timestamp, spend, orders) "
                 "VALUES (41, '2031-01-01', '2031-01-01', 1, 1), (42, '1980-01-01', '1980-01-01', 2, 2)")


def _encoded(table: pa.Table, view) -> dict[int, tuple]:
    """customer_id -> Feast's bytes of every feature and the event time, as the Redis writer encodes them."""
    columns = [encode_values(table.column(f.name), f.dtype.to_value_type()) for f in view.features]
    stamps = [bytes(d) for d in _sortable_nanos(table.column("event_timestamp"))]
    ids = table.column("customer_id").to_pylist()
    return {i: (stamps[r], *(c[r] for c in columns)) for r, i in enumerate(ids)}


@pytest.mark.integration
@pytest.mark.prod
def test_copy_pull_gives_the_rows_and_bytes_feasts_postgres_pull_gives(pg_config):
    # given snapshots in Postgres and a view over them
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStore
    from feast.types import Array, Float32, Int64, String

    from store.materialize_view import pull_latest_chunks

    with _pg(pg_config) as conn:
        _snapshot_table(conn)
    view = _source_view({"spend": Float32, "orders": Int64, "region": String, "embedding": Array(Float32)})
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)

    # when pulled by binary COPY (in parts of 7 rows) and by Feast's Postgres store
    ours = pa.concat_tables(pull_latest_chunks(pg_config, view, start, end, chunk_rows=7))
    feast = PostgreSQLOfflineStore.pull_latest_from_table_or_query(
        config=pg_config, data_source=view.batch_source, join_key_columns=["customer_id"],
        feature_name_columns=[f.name for f in view.features], timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp", start_date=start, end_date=end).to_arrow()

    # then the same latest row per customer (1..40, not the ones outside the window), encoded to the same bytes
    assert sorted(ours.column("customer_id").to_pylist()) == list(range(1, 41))
    assert _encoded(ours, view) == _encoded(feast, view)


@pytest.mark.integration
@pytest.mark.prod
def test_copy_pull_falls_back_to_feast_for_a_column_it_does_not_decode(pg_config):
    # given a source with a NUMERIC column
    from feast.types import Float64
    from psycopg import sql

    from store.materialize_view import pull_latest_chunks
    from store.pg_copy import CopyUnsupported, copy_rows

    with _pg(pg_config) as conn:
        _snapshot_table(conn, extra=", price numeric")
        conn.execute("UPDATE snap SET price = customer_id / 3.0")
        # when read by binary COPY directly, then through the view
        with pytest.raises(CopyUnsupported, match="price"):
            next(copy_rows(conn, sql.SQL("SELECT customer_id, price FROM snap")))
    view = _source_view({"price": Float64})
    table = pa.concat_tables(pull_latest_chunks(pg_config, view, datetime(2000, 1, 1, tzinfo=UTC),
                                                datetime(2030, 1, 1, tzinfo=UTC)))

    # then the view is still read (through Feast), one row per customer with its price
    prices = dict(zip(table.column("customer_id").to_pylist(), table.column("price").to_pylist(), strict=True))
    assert len(prices) == 40
    assert prices[3] == pytest.approx(1.0)


@pytest.mark.integration
@pytest.mark.prod
def test_binary_copy_names_a_list_column_holding_null_elements(pg_config):
    # given a bigint[] column with a NULL element (a list feature cannot hold one)
    from psycopg import sql

    from core.errors import PersonaError
    from store.pg_copy import copy_rows

    conn = _pg(pg_config)
    conn.execute("CREATE TABLE lists (customer_id bigint, counts bigint[])")
    conn.execute("INSERT INTO lists VALUES (1, '{1,2}'), (2, '{3,NULL}')")

    # when / then the reader stops with the column named
    with pytest.raises(PersonaError, match="column counts holds an array with NULL elements"):
        list(copy_rows(conn, sql.SQL("SELECT * FROM lists")))
    conn.close()
