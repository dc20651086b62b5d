"""``/predict`` with an uplift champion: each offer's uplift and the next best action, and nothing without one."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from model.uplift_runner import UpliftRunner
from serving.predictor import ServingPredictor
from serving.schemas import CustomerPrediction
from tests.conftest import make_uplift_predictor
from tests.unit.serving.test_serving_predictor import NOW, STORE, FakeModel, FakeReader

UPLIFT_KEYS = {"uplift", "next_best_action", "uplift_model_version"}


@pytest.fixture(scope="module")
def runner() -> UpliftRunner:
    return UpliftRunner(make_uplift_predictor(), {"discount": 2.0, "voucher": 1.0}, 50.0, version="4")


@pytest.fixture
def predictor() -> ServingPredictor:
    return ServingPredictor(model=FakeModel(), reader=FakeReader(STORE), version="7", clock=lambda: NOW)


def test_predict_returns_each_offers_uplift_and_the_next_best_action(predictor, runner) -> None:
    # given customer 1 (north, 3 orders in 90 days: the discount pays), next to a cold start (3)
    # when
    known, cold = predictor.predict_customers([1, 3], "r1", uplift=runner).results

    # then the known customer gets every offer's uplift and the best offer net of its cost
    expected = runner.predict(predictor.reader.read([1]))
    assert known["uplift"] == {
        o: {"conversion": pytest.approx(float(expected[f"uplift_conversion_{o}"][0])),
            "spend": pytest.approx(float(expected[f"uplift_spend_{o}"][0]))} for o in ("discount", "voucher")}
    action = known["next_best_action"]
    assert action["offer"] == "discount"
    assert action["expected_value"] == pytest.approx(float(expected["next_best_value"][0]))
    assert action["expected_value"] == pytest.approx(known["uplift"]["discount"]["conversion"] * 50.0 - 2.0)
    assert action["expected_uplift"] == pytest.approx(known["uplift"]["discount"]["conversion"])
    assert known["uplift_model_version"] == "4"
    # the cold start is never predicted from missing values, uplift included
    assert (cold["uplift"], cold["next_best_action"]) == (None, None)
    # and both answers are what the OpenAPI contract declares, as strict JSON
    for result in (known, cold):
        CustomerPrediction.model_validate(result)
        json.dumps(result, allow_nan=False)


def test_without_an_uplift_champion_the_answer_is_exactly_what_it_was(predictor, runner) -> None:
    # when the same customers are predicted without and with an uplift model
    plain = predictor.predict_customers([1, 2, 3], "r1").results
    with_uplift = predictor.predict_customers([1, 2, 3], "r2", uplift=runner).results

    # then without one there is no uplift field at all, and every other field is the same
    assert all(not UPLIFT_KEYS & set(result) for result in plain)
    assert [{k: v for k, v in r.items() if k not in UPLIFT_KEYS} for r in with_uplift] == plain


def test_what_if_rows_get_the_uplift_of_the_values_sent(predictor, runner) -> None:
    # given a southern newcomer sent as features (the voucher works there, the discount does not)
    row = {"customer_id": None, "features": {"region": "south", "orders_90d": 0, "spend_365d": 20.0}}

    # when
    result = predictor.predict_features([row], "r1", uplift=runner).results[0]

    # then
    assert result["next_best_action"]["offer"] == "voucher"
    assert result["uplift"]["voucher"]["conversion"] > result["uplift"]["discount"]["conversion"]


def test_an_uplift_model_needing_features_the_reader_lacks_leaves_the_churn_answer_alone(predictor) -> None:
    # given an uplift champion trained on a column the churn champion's reader does not read
    other = UpliftRunner(make_uplift_predictor(region="home_region"), {"discount": 2.0, "voucher": 1.0}, 50.0)

    # when
    result = predictor.predict_customers([1], "r1", uplift=other).results[0]

    # then the customer is predicted as before, without uplift fields
    assert result["status"] == "ok"
    assert not UPLIFT_KEYS & set(result)


def test_a_failing_uplift_model_leaves_the_churn_answer_alone(predictor, runner, monkeypatch) -> None:
    # given an uplift model that raises on this batch
    def broken(_batch):
        raise RuntimeError("corrupt booster")

    monkeypatch.setattr(runner, "predict", broken)

    # when
    result = predictor.predict_customers([1], "r1", uplift=runner).results[0]

    # then the customer is still predicted, without uplift fields
    assert result["status"] == "ok"
    assert not UPLIFT_KEYS & set(result)


def test_the_prediction_log_keeps_the_uplift_served_and_still_reads_rows_logged_without_it(
    predictor, runner, tmp_path
) -> None:
    # given a row logged before any uplift champion, then a known customer and a cold start served with one
    from serving.prediction_log import PredictionLog, read_prediction_log
    from serving.wal import decode, encode

    before = predictor.predict_customers([2], "r0")
    served = predictor.predict_customers([1, 3], "r1", uplift=runner)
    known = served.results[0]

    # when both are logged (the served batch through the write-ahead file's encoding as well)
    replayed = decode(encode(served.log))[0][0]
    log = PredictionLog(tmp_path / "log", wal=False)
    log.append(before.log)
    log.append(replayed)
    log.close()
    rows = read_prediction_log(tmp_path / "log").set_index("request_id")

    # then the uplift row carries each offer's uplift, the next best action and the uplift version served
    row = rows.loc["r1"].set_index("customer_id").loc[1]
    for offer in ("discount", "voucher"):
        assert row[f"uplift_conversion_{offer}"] == pytest.approx(known["uplift"][offer]["conversion"])
        assert row[f"uplift_spend_{offer}"] == pytest.approx(known["uplift"][offer]["spend"])
    assert row["next_best_action"] == known["next_best_action"]["offer"] == "discount"
    assert row["next_best_expected_value"] == pytest.approx(known["next_best_action"]["expected_value"])
    assert row["next_best_expected_uplift"] == pytest.approx(known["next_best_action"]["expected_uplift"])
    assert row["uplift_model_version"] == "4"
    # the cold start logs no uplift, and the row logged without an uplift model reads back with empty columns
    cold = rows.loc["r1"].set_index("customer_id").loc[3]
    assert pd.isna(cold["uplift_conversion_discount"])
    assert pd.isna(cold["next_best_action"])
    old = rows.loc["r0"]
    assert old["churn_probability"] == pytest.approx(before.results[0]["churn_probability"])
    assert pd.isna(old["uplift_conversion_discount"])
    assert pd.isna(old["uplift_model_version"])
