"""Exact outcomes of serving request validation, written to kill the mutants ``make mutate`` found alive.

Each test pins a whole decision (flag, alias and the reason a person reads), not one field of it,
so a flipped constant, a dropped branch or a changed message fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from serving.predictor import INT64_MAX, INT64_MIN, InputError, ServingPredictor


# --------------------------------------------------------------------------- serving request validation
class _Model:
    feature_columns = ("region", "orders_90d")
    string_columns = frozenset({"region"})

    def predict(self, frame):
        raise AssertionError("validation only")


def _predictor(max_batch: int = 3) -> ServingPredictor:
    return ServingPredictor(_Model(), version="7", max_batch=max_batch)


def _refusal(call, *args) -> tuple[str, str, int]:
    with pytest.raises(InputError) as refused:
        call(*args)
    return refused.value.field, str(refused.value), refused.value.status


def test_a_batch_of_exactly_the_maximum_passes_and_one_more_is_413() -> None:
    predictor = _predictor(max_batch=3)
    assert predictor.check_ids([1, 2, 3]).tolist() == [1, 2, 3]
    assert _refusal(predictor.check_ids, [1, 2, 3, 4]) == (
        "customer_ids", "customer_ids: holds 4 items; at most 3 per request", 413)
    assert _refusal(predictor.check_ids, []) == ("customer_ids", "customer_ids: must hold at least one item", 400)


def test_ids_at_the_int64_bounds_pass_and_beyond_them_are_named() -> None:
    predictor = _predictor()
    ids = predictor.check_ids([INT64_MIN, INT64_MAX])
    assert (ids.dtype, ids.tolist()) == (np.dtype(np.int64), [INT64_MIN, INT64_MAX])
    assert _refusal(predictor.check_ids, [1, INT64_MAX + 1]) == (
        "customer_ids[1]", f"customer_ids[1]: {INT64_MAX + 1} is outside the 64-bit integer range", 400)
    assert _refusal(predictor.check_ids, [INT64_MIN - 1]) == (
        "customer_ids[0]", f"customer_ids[0]: {INT64_MIN - 1} is outside the 64-bit integer range", 400)
    assert _refusal(predictor.check_ids, [1, True]) == (
        "customer_ids[1]", "customer_ids[1]: expected an integer, got True", 400)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("x", "rows[0]", "expected an object with 'features'"),
        ({"features": {}, "extra": 1}, "rows[0].extra", "unknown field; a row has 'customer_id' and 'features'"),
        ({"customer_id": True, "features": {}}, "rows[0].customer_id", "expected a 64-bit integer or null, got True"),
        ({"customer_id": INT64_MAX + 1, "features": {}}, "rows[0].customer_id",
         f"expected a 64-bit integer or null, got {INT64_MAX + 1}"),
        ({"customer_id": INT64_MIN - 1, "features": {}}, "rows[0].customer_id",
         f"expected a 64-bit integer or null, got {INT64_MIN - 1}"),
        ({"features": [1]}, "rows[0].features", "expected an object mapping feature name to value"),
        ({"features": {"region": "n", "orders_90d": 1, "x": 1}}, "rows[0].features.x",
         "unknown feature; model v7 expects region, orders_90d"),
        ({"features": {}}, "rows[0].features.region",
         "missing feature(s) region, orders_90d; send null for an unknown value"),
        ({"features": {"region": "n", "orders_90d": True}}, "rows[0].features.orders_90d",
         "expected a number or null, got True"),
        ({"features": {"region": "n", "orders_90d": "3"}}, "rows[0].features.orders_90d",
         "expected a number or null, got '3'"),
        ({"features": {"region": "n", "orders_90d": math.inf}}, "rows[0].features.orders_90d",
         "expected a finite number, got inf"),
        ({"features": {"region": 3, "orders_90d": 1}}, "rows[0].features.region", "expected a string or null, got 3"),
    ],
)
def test_each_bad_feature_row_is_refused_naming_its_field(row: object, field: str, message: str) -> None:
    assert _refusal(_predictor().feature_batch, [row]) == (field, f"{field}: {message}", 400)


def test_a_valid_feature_batch_keeps_values_ids_and_nulls_in_place() -> None:
    # given two rows, one with an id and one without, with a null of each kind
    rows = [{"customer_id": INT64_MAX, "features": {"region": "north", "orders_90d": 2}},
            {"features": {"region": None, "orders_90d": None}}]

    # when
    batch, ids = _predictor().feature_batch(rows)

    # then
    assert ids == [INT64_MAX, None]
    assert batch.ids.tolist() == [INT64_MAX, 0]
    assert batch.numeric[0].tolist() == [2.0]
    assert math.isnan(batch.numeric[1, 0])
    assert batch.strings[:, 0].tolist() == ["north", None]
    assert _refusal(_predictor(max_batch=1).feature_batch, rows) == (
        "rows", "rows: holds 2 items; at most 1 per request", 413)
