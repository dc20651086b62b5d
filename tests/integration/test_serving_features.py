"""The fast online reader returns what Feast's own ``get_online_features`` returns."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def store_and_columns(served_env: Path):
    from core.settings import load_settings
    from features.dataset import feature_names
    from store.repo import get_store

    settings = load_settings()
    return get_store(settings), feature_names(settings, "churn_model_v2")


def _same(left: object, right: object) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, float) or isinstance(right, float):
        return math.isclose(float(left), float(right), rel_tol=1e-6, abs_tol=1e-9)
    return left == right


@pytest.mark.parametrize("fast", [True, False])
def test_reader_matches_feast_get_online_features(store_and_columns, fast: bool) -> None:
    from store.online_reader import OnlineFeatureReader

    # given the churn_model_v2 features, customers known and unknown, and a duplicate
    store, columns = store_and_columns
    ids = [1, 2, 3, 150, 299, 10**9, 2]
    reader = OnlineFeatureReader.from_store(store, columns, "churn_model_v2")
    reader._fast = fast  # False: the generic path other online stores (Redis) take

    # when read by the serving reader and by Feast
    batch = reader.read(np.array(ids))
    expected = store.get_online_features(
        features=store.get_feature_service("churn_model_v2"), entity_rows=[{"customer_id": i} for i in ids]
    ).to_dict()

    # then every value agrees, unknown customers are all-missing and flagged, timestamps are present
    for i in range(len(ids)):
        row = batch.row(i)
        for column in columns:
            assert _same(row[column], expected[column][i]), (ids[i], column, row[column], expected[column][i])
    assert batch.missing_views[ids.index(10**9)] == ("customer_profile", "customer_behavior")
    assert batch.missing_views[0] == ()
    assert batch.event_ts["customer_behavior"][0] is not None
    assert batch.event_ts["customer_behavior"][ids.index(10**9)] is None
    assert reader.views == ["customer_profile", "customer_behavior", "customer_text"]


def test_reader_refuses_a_column_no_view_serves(store_and_columns) -> None:
    from store.online_reader import FeatureStoreError, OnlineFeatureReader

    # given a model column that is not registered anywhere
    store, columns = store_and_columns

    # when the reader is resolved
    # then it fails naming the column
    with pytest.raises(FeatureStoreError, match="favourite_colour"):
        OnlineFeatureReader.from_store(store, [*columns, "favourite_colour"], "churn_model_v2")
