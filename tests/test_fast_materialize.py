"""The columnar encoder writes exactly what Feast's own encoders would, and the store guards order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_repo.fast_materialize import encode_int64_entity_keys, encode_values
from feature_repo.online_store import (
    decode_payload,
    encode_payload,
    name_prefix,
    parse_timestamp,
    timestamp_text,
)


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
