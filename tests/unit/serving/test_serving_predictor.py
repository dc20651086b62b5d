"""The plain serving predictor with a fake model and a fake feature reader (no Feast, no MLflow)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from serving.predictor import InputError, ServingPredictor
from store.feature_batch import FeatureBatch, split_columns

COLUMNS = ["region", "orders_90d", "spend_365d"]
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


class FakeModel:
    """Churn falls with orders; persona by region; returns NaN spend when asked to (``spend_365d < 0``)."""

    feature_columns = COLUMNS
    string_columns = frozenset({"region"})

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.frames.append(frame)
        orders = frame["orders_90d"].fillna(0).to_numpy(float)
        spend = frame["spend_365d"].to_numpy(float)
        return pd.DataFrame(
            {
                "churn_probability": 1.0 / (1.0 + orders),
                "expected_orders": orders / 3,
                "expected_spend": np.where(spend < 0, np.nan, spend / 4),
                "segment": np.where(frame["region"].to_numpy(object) == "north", 0, 1),
                "persona": np.where(frame["region"].to_numpy(object) == "north", "northerners", "others"),
                "action": "nurture",
            },
            index=frame.index,
        )


class FakeReader:
    """Customers from a dict: id -> {view: (event_ts text, {column: value})}."""

    views = ["customer_profile", "customer_behavior"]
    columns = COLUMNS

    def __init__(
        self, rows: dict[int, dict[str, tuple[str, dict]]], required=("customer_profile", "customer_behavior")
    ):
        self.rows = rows
        self.required = required

    def read(self, ids) -> FeatureBatch:
        ids = np.asarray(ids, dtype=np.int64)
        numeric_columns, string_columns = split_columns(COLUMNS, {"region"})
        batch = FeatureBatch.empty(ids, numeric_columns, string_columns)
        batch.event_ts = {view: [None] * len(ids) for view in self.views}
        for i, customer in enumerate(ids.tolist()):
            known = self.rows.get(customer, {})
            for view, (stamp, values) in known.items():
                batch.event_ts[view][i] = stamp
                for column, value in values.items():
                    if column in numeric_columns:
                        batch.numeric[i, numeric_columns.index(column)] = value
                    else:
                        batch.strings[i, string_columns.index(column)] = value
            batch.missing_views[i] = tuple(v for v in self.required if v not in known)
        return batch


STORE = {
    1: {
        "customer_profile": ("2024-01-01 00:00:00.000000", {"region": "north"}),
        "customer_behavior": ("2025-05-31 00:00:00.000000", {"orders_90d": 3, "spend_365d": 400.0}),
    },
    2: {
        "customer_profile": ("2024-02-01 00:00:00.000000", {"region": "south"}),
        "customer_behavior": ("2025-05-25 00:00:00.000000", {"orders_90d": 0, "spend_365d": -1.0}),
    },
    3: {"customer_profile": ("2025-05-30 00:00:00.000000", {"region": "west"})},
}


@pytest.fixture
def predictor() -> ServingPredictor:
    return ServingPredictor(model=FakeModel(), reader=FakeReader(STORE), version="7", clock=lambda: NOW)


def test_predict_customers_returns_every_output_with_version_and_freshness(
    predictor: ServingPredictor,
) -> None:
    # given customer 1 with profile and behavior rows
    # when predicted by id
    served = predictor.predict_customers([1], request_id="r1")

    # then every output is there, with the version and the age of the oldest row served
    result = served.results[0]
    assert result["status"] == "ok"
    assert result["churn_probability"] == pytest.approx(0.25)
    assert result["expected_orders"] == pytest.approx(1.0)
    assert result["expected_spend"] == pytest.approx(100.0)
    assert (result["segment"], result["persona"], result["action"]) == (0, "northerners", "nurture")
    assert result["model_version"] == "7"
    assert result["features_as_of"] == {
        "customer_profile": "2024-01-01T00:00:00Z",
        "customer_behavior": "2025-05-31T00:00:00Z",
    }
    assert result["feature_age_seconds"] == pytest.approx(
        (NOW - dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).total_seconds()
    )
    assert result["cold_start_reason"] is None


def test_unknown_and_incomplete_customers_are_cold_starts_never_predicted(
    predictor: ServingPredictor,
) -> None:
    # given an unknown customer (99) and one without a behavior row (3), next to a known one (1)
    model = predictor.model

    # when predicted together
    results = predictor.predict_customers([99, 1, 3]).results

    # then both get an explicit cold start with a reason, and the model only saw customer 1
    unknown, known, incomplete = results
    assert unknown["status"] == "cold_start"
    assert "unknown customer" in unknown["cold_start_reason"]
    assert incomplete["status"] == "cold_start"
    assert "customer_behavior" in incomplete["cold_start_reason"]
    for cold in (unknown, incomplete):
        assert all(
            cold[k] is None
            for k in (
                "churn_probability",
                "expected_orders",
                "expected_spend",
                "segment",
                "persona",
                "action",
            )
        )
    assert known["status"] == "ok"
    assert [len(f) for f in model.frames] == [1]
    assert model.frames[0]["region"].tolist() == ["north"]


def test_non_finite_model_outputs_become_null(predictor: ServingPredictor) -> None:
    # given customer 2, for whom the fake model returns NaN spend
    # when predicted
    result = predictor.predict_customers([2]).results[0]

    # then the response carries null, not NaN
    assert result["status"] == "ok"
    assert result["expected_spend"] is None
    assert result["churn_probability"] == pytest.approx(1.0)


def test_the_log_batch_holds_features_predictions_and_reasons(predictor: ServingPredictor) -> None:
    # given two customers, one unknown
    # when predicted
    served = predictor.predict_customers([1, 99], request_id="abc")

    # then the log rows carry ids, version, features, predictions and the cold-start reason
    table = served.log.to_arrow().to_pandas()
    assert table["request_id"].tolist() == ["abc", "abc"]
    assert table["customer_id"].tolist() == [1, 99]
    assert table["model_version"].tolist() == ["7", "7"]
    assert table["region"].tolist() == ["north", None]
    assert table["orders_90d"].iloc[0] == 3
    assert np.isnan(table["orders_90d"].iloc[1])
    assert table["churn_probability"].iloc[0] == pytest.approx(0.25)
    assert np.isnan(
        table["churn_probability"].iloc[1]
    )
    assert table["cold_start_reason"].isna().tolist() == [True, False]
    assert table["segment"].isna().tolist() == [False, True]
    assert table["persona"].tolist() == ["northerners", None]
    assert str(table["served_at"].dt.tz) == "UTC"
    assert list(table.columns[:5]) == ["request_id", "served_at", "endpoint", "customer_id", "model_version"]


def test_predict_features_uses_the_supplied_values(predictor: ServingPredictor) -> None:
    # given a what-if row for a customer not in the store
    rows = [{"customer_id": 500, "features": {"region": "north", "orders_90d": 9, "spend_365d": None}}]

    # when predicted from features
    served = predictor.predict_features(rows)

    # then the prediction follows the supplied values and has no freshness
    result = served.results[0]
    assert result["customer_id"] == 500
    assert result["churn_probability"] == pytest.approx(0.1)
    assert result["features_as_of"] == {}
    assert result["feature_age_seconds"] is None
    assert served.log.endpoint == "predict_features"


@pytest.mark.parametrize(
    ("features", "field", "words"),
    [
        (
            {"region": "north", "orders_90d": 1, "spend_365d": 1.0, "colour": "red"},
            "rows[0].features.colour",
            "unknown",
        ),
        ({"region": "north", "orders_90d": 1}, "rows[0].features.spend_365d", "missing"),
        (
            {"region": "north", "orders_90d": "three", "spend_365d": 1.0},
            "rows[0].features.orders_90d",
            "number",
        ),
        ({"region": "north", "orders_90d": True, "spend_365d": 1.0}, "rows[0].features.orders_90d", "number"),
        (
            {"region": "north", "orders_90d": float("nan"), "spend_365d": 1.0},
            "rows[0].features.orders_90d",
            "finite",
        ),
        (
            {"region": "north", "orders_90d": 1, "spend_365d": float("inf")},
            "rows[0].features.spend_365d",
            "finite",
        ),
        ({"region": 3, "orders_90d": 1, "spend_365d": 1.0}, "rows[0].features.region", "string"),
        ({"region": ["a"], "orders_90d": 1, "spend_365d": 1.0}, "rows[0].features.region", "string"),
    ],
)
def test_predict_features_rejects_bad_values_naming_the_field(
    predictor: ServingPredictor, features: dict, field: str, words: str
) -> None:
    # given a row with one bad feature value
    # when validated
    with pytest.raises(InputError) as caught:
        predictor.predict_features([{"features": features}])

    # then the error is a 400 naming the field
    assert caught.value.status == 400
    assert caught.value.field == field
    assert words in caught.value.message


def test_batch_limits_are_400_when_empty_and_413_when_oversized(predictor: ServingPredictor) -> None:
    # given an empty and an oversized batch
    # when predicted
    with pytest.raises(InputError) as empty:
        predictor.predict_customers([])
    with pytest.raises(InputError) as big:
        predictor.predict_customers(list(range(1001)))

    # then the statuses differ and both name the field
    assert (empty.value.status, empty.value.field) == (400, "customer_ids")
    assert (big.value.status, big.value.field) == (413, "customer_ids")


@pytest.mark.parametrize("bad", ["7", 7.0, True, 2**63, None])
def test_customer_ids_must_be_64_bit_integers(predictor: ServingPredictor, bad: object) -> None:
    # given a non-integer or out-of-range id
    # when predicted
    with pytest.raises(InputError) as caught:
        predictor.predict_customers([1, bad])  # type: ignore[list-item]

    # then the offending position is named
    assert caught.value.field == "customer_ids[1]"


def test_duplicate_ids_are_answered_in_request_order(predictor: ServingPredictor) -> None:
    # given a request repeating a customer
    # when predicted
    results = predictor.predict_customers([2, 1, 2]).results

    # then every position gets its answer
    assert [r["customer_id"] for r in results] == [2, 1, 2]
    assert results[0] == results[2]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1e308, "plausible range"),
        (-1e13, "plausible range"),
        (10**400, "finite number"),  # float() would raise OverflowError
        (10**20, "plausible range"),
    ],
    ids=["1e308", "-1e13", "400-digit-int", "1e20"],
)
def test_predict_features_refuses_implausible_magnitudes_naming_the_field(
    predictor: ServingPredictor, value: float, words: str
) -> None:
    # given a what-if row with an absurd but finite (or overflowing) number
    features = {"region": "north", "orders_90d": 1, "spend_365d": value}
    # when validated
    with pytest.raises(InputError) as caught:
        predictor.predict_features([{"features": features}])
    # then it is a 400 naming the field, never a server error
    assert caught.value.status == 400
    assert caught.value.field == "rows[0].features.spend_365d"
    assert words in caught.value.message


def test_bounds_follow_the_models_training_statistics_with_a_margin() -> None:
    from types import SimpleNamespace

    from serving.bounds import FeatureBounds

    # given a model whose clustering space records mean/std (spend on log1p scale)
    cluster = SimpleNamespace(columns=("orders_90d", "spend_365d"), log_columns=("spend_365d",),
                              mean=(5.0, 4.0), scale=(2.0, 1.0))
    bounds = FeatureBounds.from_model(SimpleNamespace(cluster=cluster), abs_max=1e12, sigma_margin=100)
    # then values within mean +- 100 std pass, beyond do not; log columns bound the raw value
    assert bounds.violation("orders_90d", 204.0) is None
    assert bounds.violation("orders_90d", 206.0) is not None
    assert bounds.violation("orders_90d", -196.0) is not None
    assert bounds.violation("spend_365d", 9e11) is None  # expm1(104) > cap: the cap rules
    assert bounds.violation("spend_365d", 2e12) is not None
    assert bounds.violation("recency_days", 1e11) is None  # unknown to the spec: hard cap only


def test_a_real_bundles_bounds_keep_the_persona_distance_finite() -> None:
    from types import SimpleNamespace

    from model.preprocess import ClusterSpec, cluster_matrix, nearest_center
    from serving.bounds import FeatureBounds

    # given a clustering space and the largest value its bounds accept
    spec = ClusterSpec(("orders_90d",), (), (1.0,), (5.0,), (2.0,))
    low, high = FeatureBounds.from_model(SimpleNamespace(cluster=spec)).range_of("orders_90d")
    matrix = cluster_matrix(pd.DataFrame({"orders_90d": [high, low]}), spec)
    # then the distance to the centers stays finite (no NaN segment)
    centers = np.array([[0.0], [1.0]])
    d = np.square(matrix).sum(1)[:, None] - 2 * matrix @ centers.T + np.square(centers).sum(1)[None, :]
    assert np.isfinite(d).all()
    assert nearest_center(matrix, centers).tolist() == [1, 0]
