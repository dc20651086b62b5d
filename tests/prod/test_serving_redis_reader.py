"""The serving reader's Redis path reads exactly what Feast's Redis store holds.

Unit tests check the layout the reader computes once per model (keys, hashed field names,
timestamps) against Feast's own functions; the integration test materializes a few customers
into the real Redis (own Feast project and Postgres database, removed afterwards) and compares
the reader with ``store.get_online_features``, value by value and timestamp by timestamp.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from store.codec import decode_timestamp_text
from store.layout import RedisLayout, ViewPlan
from tests.conftest import write_raw

IDS = [0, 1, 7, 127, 128, 300, 2**31, -1, -(2**40), 2**63 - 1, -(2**63)]


def _repo_config(project: str, versioning: bool = False):
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.repo_config import RegistryConfig, RepoConfig

    return RepoConfig(
        project=project,
        provider="local",
        registry=RegistryConfig(path="unused.db", enable_online_feature_view_versioning=versioning),
        online_store=RedisOnlineStoreConfig(connection_string="127.0.0.1:6379"),
        entity_key_serialization_version=3,
    )


def _view(name: str):
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, Int64, String

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    return FeatureView(
        name=name,
        entities=[customer],
        schema=[Field(name="spend", dtype=Float32), Field(name="orders", dtype=Int64),
                Field(name="region", dtype=String)],
        source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
    )


def _plans(*names: str) -> list[ViewPlan]:
    slots = {b"spend": (False, 0), b"orders": (False, 1), b"region": (True, 0)}
    return [ViewPlan(name, _view(name), dict(slots), required=True) for name in names]


def test_keys_equal_feasts_redis_key_for_every_kind_of_id():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    # given a layout for a project with a non-ASCII name and ids across the int64 range
    project = "persona_ü_test"
    layout = RedisLayout.build(_repo_config(project), _plans("customer_behavior"), "customer_id")

    # when keys are built for all ids at once
    keys = layout.keys(np.array(IDS, dtype=np.int64))

    # then each is byte for byte Feast's key for that customer (serialized entity key + project)
    for customer, key in zip(IDS, keys, strict=True):
        proto = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=customer)])
        assert key == _redis_key(project, proto, entity_key_serialization_version=3), customer
        assert key == serialize_entity_key(proto, entity_key_serialization_version=3) + project.encode()
    assert layout.keys([]) == []
    assert layout.keys([5, 5]) == layout.keys(np.array([5])) * 2


@pytest.mark.parametrize("versioning", [False, True])
def test_fields_are_feasts_hashed_field_names_view_by_view(versioning: bool):
    from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name

    # given two views (with online versioning on or off)
    config = _repo_config("p", versioning)
    plans = _plans("customer_profile", "customer_behavior")
    for plan in plans:
        plan.view.current_version_number = 3

    # when their layout is built
    layout = RedisLayout.build(config, plans, "customer_id")

    # then one HMGET asks for Feast's fields of both views, each view's `_ts` after its features
    expected: list[bytes] = []
    for plan in plans:
        names = [name.decode() for name in plan.slots]
        _, hset_keys = RedisOnlineStore()._generate_hset_keys_for_features(
            plan.view, names, fv_name_override=_versioned_fv_name(plan.view, config)
        )
        expected.extend(k if isinstance(k, bytes) else k.encode() for k in hset_keys)
    assert list(layout.fields) == expected
    suffix = "_v3" if versioning else ""
    assert layout.fields[layout.views[1].ts_pos] == f"_ts:customer_behavior{suffix}".encode()
    assert [(v.name, v.start, v.stop, v.ts_pos) for v in layout.views] == [
        ("customer_profile", 0, 3, 3), ("customer_behavior", 4, 7, 7)
    ]
    assert [slot for _, *slot in layout.views[1].fields] == [[False, 0], [False, 1], [True, 0]]
    assert layout.views[1].float_positions == (4,)
    assert layout.views[1].float_columns == (0,)
    assert [pos for pos, _, _ in layout.views[1].others] == [5, 6]


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(2025, 1, 7, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC),
        dt.datetime(1901, 6, 30, 12, tzinfo=dt.UTC),
        dt.datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ],
)
def test_timestamp_text_equals_what_feasts_redis_store_reads(when: dt.datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    from store.codec import timestamp_text

    # given the `_ts:<view>` bytes Feast writes for an event time
    proto = Timestamp()
    proto.FromDatetime(when)
    raw = proto.SerializeToString()

    # when decoded straight from the wire format
    text = decode_timestamp_text(raw)

    # then it is the time Feast's Redis store reads back (seconds + nanos as a datetime), as text
    feast_reads = dt.datetime.fromtimestamp(proto.seconds + proto.nanos / 1e9, tz=dt.UTC)
    assert text == timestamp_text(feast_reads) == timestamp_text(when)


@pytest.mark.parametrize("odd_spend", [None, "double"])
def test_view_values_decode_as_feast_converts_them(odd_spend: str | None):
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    from store.fast_decode import decode_view_values

    # given HMGET replies holding Feast's value bytes: floats, nulls, a count above one varint
    # byte, a negative count, strings, an absent field, and (second case) a double where a
    # float was expected, which the block decoder must not misread
    view = RedisLayout.build(_repo_config("p"), _plans("customer_behavior"), "customer_id").views[0]
    protos = [
        [Value(float_val=12.5), Value(int64_val=3), Value(string_val="north")],
        [Value(), Value(int64_val=300), Value(string_val="süd")],
        [Value(float_val=-0.1), Value(int64_val=-2), None],
    ]
    if odd_spend == "double":
        protos[1][0] = Value(double_val=7.25)
    replies = [[None if v is None else v.SerializeToString() for v in row] + [b"ts"] for row in protos]
    numeric = np.full((4, 2), np.nan)
    strings = np.full((4, 1), None, dtype=object)

    # when decoded into rows 3, 0 and 2 of the blocks
    decode_view_values(view, replies, [3, 0, 2], numeric, strings)

    # then every value is what Feast's own conversion gives, nulls and absent fields stay missing
    for row, values in zip([3, 0, 2], protos, strict=True):
        want = [None if v is None else feast_value_type_to_python_type(v) for v in values]
        got = [None if np.isnan(x) else x for x in numeric[row]] + [strings[row, 0]]
        assert got == want, (row, got, want)
    assert np.isnan(numeric[1]).all()
    assert strings[1, 0] is None


def test_an_online_read_result_of_feasts_missing_key_is_no_row():
    from feast.protos.feast.types.Value_pb2 import Value

    from store.online_reader import _no_row

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    later = dt.datetime(2025, 1, 7, tzinfo=dt.UTC)
    # given what stores answer: (None, None), and Redis' epoch with unset values for a missing key
    # then both are no row, while a real row (a set value or a real time) is one
    assert _no_row(None, None)
    assert _no_row(epoch, {"spend": Value(), "region": Value()})
    assert not _no_row(epoch, {"spend": Value(float_val=1.5), "region": Value()})
    assert not _no_row(later, {"spend": Value(), "region": Value()})
    assert not _no_row(None, {"spend": Value(float_val=1.5)})


# --------------------------------------------------------------------------- real Redis
@pytest.fixture
def redis_features(prod_settings):
    """30 customers built into Postgres and materialized into the shared Redis under an own project."""
    from features.build import build_offline_sources
    from store.repo import apply_repo, materialize

    write_raw(prod_settings)
    build_offline_sources(prod_settings)
    apply_repo(prod_settings)
    materialize(prod_settings)
    return prod_settings


class _ConstantModel:
    """Predicts the same for everyone: only whether a customer is predicted matters here."""

    string_columns = frozenset({"region"})

    def __init__(self, columns: list[str]) -> None:
        self.feature_columns = columns

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": 0.5, "expected_orders": 1.0, "expected_spend": 2.0,
                             "segment": 0, "persona": "p", "action": "a"}, index=frame.index)


def _feast_rows(store, ids: list[int]) -> tuple[dict[str, list], dict[str, list[dt.datetime]]]:
    """Feast's values per feature and event time per feature (exact, from the response proto)."""
    response = store.get_online_features(
        features=store.get_feature_service("churn_model_v2"), entity_rows=[{"customer_id": i} for i in ids]
    )
    values = response.to_dict()
    names = list(response.proto.metadata.feature_names.val)
    times = {
        name: [ts.ToDatetime() for ts in vector.event_timestamps]
        for name, vector in zip(names, response.proto.results, strict=True)
    }
    return values, times


@pytest.mark.integration
@pytest.mark.prod
def test_redis_reader_returns_exactly_what_feast_returns(redis_features):
    import redis

    from features.dataset import feature_names
    from serving.predictor import ServingPredictor
    from store.codec import parse_timestamp
    from store.online_reader import OnlineFeatureReader
    from store.repo import get_store

    # given customers in Redis, one of them (5) whose behavior row was deleted as Feast deletes a
    # view's rows (its fields and `_ts:<view>` removed, its profile kept), and unknown ids
    settings = redis_features
    store = get_store(settings)
    columns = feature_names(settings, "churn_model_v2")
    behavior = store.get_feature_view("customer_behavior")
    reader = OnlineFeatureReader.from_store(store, columns, "churn_model_v2")
    assert reader._redis is not None, "the production profile takes the Redis path"
    layout_view = next(v for v in reader._redis.views if v.name == "customer_behavior")
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    key = reader._redis.keys([5])[0]
    assert client.exists(key)
    behavior_fields = [reader._redis.fields[p] for p, _, _ in layout_view.fields]
    client.hdel(key, *behavior_fields, reader._redis.fields[layout_view.ts_pos])
    ids = [1, 2, 3, 5, 10**9, 2, 30, -7]
    known = [i for i in ids if i not in (5, 10**9, -7)]

    # when read by the serving reader, by its generic path (Feast's online_read) and by Feast
    batch = reader.read(np.array(ids))
    layout, reader._redis = reader._redis, None
    generic = reader.read(np.array(ids))
    reader._redis = layout
    values, times = _feast_rows(store, ids)

    # then for known customers every value is Feast's, exactly, and so is every view's event time
    view_of = {name.decode(): plan.name for plan in reader.plans for name in plan.slots}
    for i, customer in enumerate(ids):
        row = batch.row(i)
        assert row == generic.row(i), customer
        if customer not in known:
            continue
        for column in columns:
            want, got = values[column][i], row[column]
            assert (got is None and want is None) or got == want, (customer, column, got, want)
            if view_of[column] != "customer_text":
                stamp = batch.event_ts[view_of[column]][i]
                assert parse_timestamp(stamp) == times[column][i].replace(tzinfo=dt.UTC), (customer, column)
        assert batch.missing_views[i] == ()
    assert any(v is not None for v in batch.row(0).values())
    assert {batch.row(0)[c] is None for c in ("region", "orders_90d", "spend_365d")} == {False}
    # and a view without a row is missing, never a 1970 row with empty values
    assert batch.event_ts["customer_text"] == [None] * len(ids)  # no reviews embedded: optional view
    five, unknown = ids.index(5), ids.index(10**9)
    assert batch.missing_views[five] == ("customer_behavior",)
    assert batch.event_ts["customer_behavior"][five] is None
    assert batch.event_ts["customer_profile"][five] is not None
    assert batch.missing_views[unknown] == batch.missing_views[-1] == ("customer_profile", "customer_behavior")
    assert batch.event_ts["customer_profile"][unknown] is None
    assert all(batch.row(unknown)[c] is None for c in columns)
    assert generic.event_ts == batch.event_ts
    assert generic.missing_views == batch.missing_views
    # and duplicates come back in request order
    assert batch.ids.tolist() == ids
    assert batch.row(1) == batch.row(5)

    # when served: unknown customers and the customer lacking behavior are cold starts
    served = ServingPredictor(model=_ConstantModel(columns), reader=reader, version="1").predict_customers(ids)
    status = {r["customer_id"]: (r["status"], r["cold_start_reason"] or "") for r in served.results}

    # then only known customers are predicted, and nothing claims features as of 1970
    assert {c: s for c, (s, _) in status.items()} == {
        1: "ok", 2: "ok", 3: "ok", 30: "ok", 5: "cold_start", 10**9: "cold_start", -7: "cold_start"
    }
    assert status[10**9][1].startswith("unknown customer")
    assert status[5][1].startswith("incomplete features")
    for result in served.results:
        for stamp in result["features_as_of"].values():
            assert stamp is None or not stamp.startswith("1970"), result
    assert behavior.name in served.results[0]["features_as_of"]


@pytest.mark.integration
@pytest.mark.prod
def test_redis_reader_on_an_unreachable_redis_answers_unavailable_and_fails_fast(redis_features, monkeypatch):
    import socket

    from core.settings import load_settings
    from features.dataset import feature_names
    from store.online_reader import OnlineFeatureReader, OnlineStoreUnavailable
    from store.repo import get_store

    # given a reader of the same registry whose Redis port nobody listens on
    columns = feature_names(redis_features, "churn_model_v2")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PERSONA_REDIS_PORT", str(port))
    store = get_store(load_settings())
    reader = OnlineFeatureReader.from_store(store, columns, "churn_model_v2")
    assert reader._redis is not None

    # when read twice in a row
    with pytest.raises(OnlineStoreUnavailable, match=f"online store unreachable \\(redis 127.0.0.1:{port}\\)"):
        reader.read(np.array([1, 2]))
    with pytest.raises(OnlineStoreUnavailable, match="retry later") as second:
        reader.read(np.array([1]))

    # then the second answer comes from the fail-fast window, without a connection error behind it
    assert second.value.__cause__ is None
    with pytest.raises(OnlineStoreUnavailable):
        reader.ping()
