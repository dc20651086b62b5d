"""Each predict row is logged with ``features_at``: the newest event time of the feature rows served."""

from __future__ import annotations

from serving.prediction_log import FEATURES_AT
from serving.predictor import ServingPredictor
from tests.unit.serving.test_serving_predictor import NOW, STORE, FakeModel, FakeReader


def test_predict_rows_log_the_newest_served_feature_time_and_what_if_rows_none() -> None:
    # given customers with rows of different ages in two views, one without a behavior row, one unknown
    predictor = ServingPredictor(model=FakeModel(), reader=FakeReader(STORE), version="7", clock=lambda: NOW)

    # when predicted by id, and from supplied features
    by_id = predictor.predict_customers([1, 3, 99]).log
    what_if = predictor.predict_features(
        [{"customer_id": 1, "features": {"region": "north", "orders_90d": 1, "spend_365d": 2.0}}]).log

    # then the newest of the views' times is logged per row (None without any row); what-if rows carry none
    assert by_id.features[FEATURES_AT].tolist() == [
        "2025-05-31 00:00:00.000000", "2025-05-30 00:00:00.000000", None]
    assert FEATURES_AT not in what_if.features
