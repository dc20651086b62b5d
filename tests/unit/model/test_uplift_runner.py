"""The served uplift runner gives the uplift model's own answers and the plan's next best offer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.runner import batch_frame
from model.uplift import net_values
from model.uplift_runner import NEXT_OFFER, NEXT_UPLIFT, NEXT_VALUE, UpliftRunner
from store.feature_batch import FeatureBatch
from tests.conftest import make_uplift_predictor


@pytest.fixture(scope="module")
def predictor():
    return make_uplift_predictor()


def _batch(rows: list[tuple[float, float, str | None]], extra: bool = False) -> FeatureBatch:
    """Served rows in the churn reader's layout: other columns around the uplift model's, in another order."""
    numeric_columns = ("recency_days", "spend_365d", "orders_90d") if extra else ("orders_90d", "spend_365d")
    numeric = np.array([([7.0] if extra else []) + ([s, o] if extra else [o, s]) for o, s, _ in rows], dtype=float)
    return FeatureBatch(ids=np.arange(len(rows), dtype=np.int64), numeric_columns=numeric_columns,
                        string_columns=("region",), numeric=numeric.reshape(len(rows), len(numeric_columns)),
                        strings=np.array([[r] for _, _, r in rows], dtype=object).reshape(len(rows), 1),
                        missing_views=[() for _ in rows])


ROWS = [(3.0, 120.0, "north"), (0.0, 10.0, "south"), (4.0, np.nan, None), (1.0, 300.0, "unseen")]


@pytest.mark.parametrize("small_batch", [16, 0], ids=["numpy trees", "inplace_predict"])
def test_runner_answers_what_the_uplift_model_answers_from_a_wider_reordered_batch(predictor, small_batch) -> None:
    # given a batch laid out for the churn model (an extra column, another order, missing values)
    batch = _batch(ROWS, extra=True)
    runner = UpliftRunner(predictor, {"discount": 1.0, "voucher": 1.0}, 50.0, small_batch=small_batch)

    # when
    mine = runner.outputs(batch)

    # then every column equals UpliftPredictor.predict on the same values
    theirs = predictor.predict(batch_frame(batch, runner.feature_columns))
    assert runner.serves(batch)
    assert runner.describe()["fast_path"]
    for column in theirs:
        np.testing.assert_allclose(mine[column], theirs[column].to_numpy(), rtol=1e-5, atol=1e-6)


def test_next_best_offer_is_the_highest_net_value_and_follows_the_planted_effects(predictor) -> None:
    # given a frequent northern buyer (the discount pays) and a southern newcomer (the voucher pays)
    batch = _batch([(4.0, 100.0, "north"), (0.0, 100.0, "south")])
    costs = {"discount": 2.0, "voucher": 1.0}
    runner = UpliftRunner(predictor, costs, 50.0)

    # when
    out = runner.predict(batch)

    # then the offer is the argmax of uplift x value - cost, with its value and conversion uplift
    net = net_values(out, ("discount", "voucher"), costs, {"discount": 50.0, "voucher": 50.0})
    assert list(out[NEXT_OFFER]) == ["discount", "voucher"]
    np.testing.assert_allclose(out[NEXT_VALUE], net.max(axis=1))
    np.testing.assert_allclose(out[NEXT_UPLIFT], [out["uplift_conversion_discount"][0],
                                                  out["uplift_conversion_voucher"][1]])


def test_no_offer_is_recommended_when_none_pays_for_its_contact(predictor) -> None:
    # given contacts that cost more than any conversion is worth
    runner = UpliftRunner(predictor, {"discount": 100.0, "voucher": 100.0}, 50.0)

    # when
    out = runner.predict(_batch(ROWS))

    # then nobody gets an offer, and the (negative) best net value is still reported
    assert list(out[NEXT_OFFER]) == [None] * len(ROWS)
    assert (out[NEXT_VALUE] < 0).all()


def test_an_offer_without_a_known_cost_is_never_recommended(predictor) -> None:
    # given a cost for the voucher only
    runner = UpliftRunner(predictor, {"voucher": 0.5}, 50.0)

    # when
    out = runner.predict(_batch([(4.0, 100.0, "north")]))

    # then the discount is not chosen even where it pays most, and model_info says why
    assert out[NEXT_OFFER][0] in ("voucher", None)
    assert runner.describe()["offers_without_cost"] == ["discount"]


def test_a_batch_without_the_uplift_features_is_not_served(predictor) -> None:
    # given a batch without region
    batch = FeatureBatch(ids=np.arange(1, dtype=np.int64), numeric_columns=("orders_90d", "spend_365d"),
                         string_columns=(), numeric=np.array([[1.0, 2.0]]), strings=np.zeros((1, 0), dtype=object),
                         missing_views=[()])
    runner = UpliftRunner(predictor, {"discount": 1.0, "voucher": 1.0}, 50.0)

    # then
    assert not runner.serves(batch)
    with pytest.raises(ValueError, match="uplift model's features"):
        runner.outputs(batch)


def test_latest_offer_costs_take_each_offers_latest_priced_campaign() -> None:
    from model.uplift import latest_offer_costs

    # given two discount campaigns (the later unpriced) and a voucher
    campaigns = pd.DataFrame({"offer": ["discount", "discount", "discount", "voucher"],
                              "start": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-05-01", "2024-02-01"]),
                              "cost_per_contact": [1.0, 2.0, np.nan, 0.5]})

    # then
    assert latest_offer_costs(campaigns) == {"discount": 2.0, "voucher": 0.5}
    assert latest_offer_costs(campaigns.drop(columns="cost_per_contact")) == {}
