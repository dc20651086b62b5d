"""Metrics, time split, feature encoding and the bundle's save/load round trip."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core.errors import PersonaError
from model.actions import load_policy
from model.bundle import PersonaPredictor
from model.preprocess import fit_feature_spec, model_matrix
from tests.conftest import make_training_frame
from training.config import DEFAULT_POLICY_PATH, PersonaParams, TrainConfig, XGBParams
from training.data import choose_snapshots, feature_columns_of
from training.fit import fit_persona_bundle
from training.metrics import classification_metrics, expected_calibration_error, regression_metrics
from training.models import (
    CHURN_MONOTONE,
    OBJECTIVES,
    VALUE_MONOTONE,
    fit_xgb,
    monotone_constraints,
    rfm_score,
)

if TYPE_CHECKING:
    from pathlib import Path

WEEKS = pd.date_range("2024-01-07", periods=30, freq="7D", tz="UTC")


def test_calibration_error_is_zero_when_rates_match() -> None:
    # given 10 rows at 0.2 with 2 positives and 10 rows at 0.8 with 8 positives
    prob = np.array([0.2] * 10 + [0.8] * 10)
    y = np.array([1, 1] + [0] * 8 + [1] * 8 + [0, 0])
    # when / then
    assert expected_calibration_error(y, prob) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(20, 0.9)) == pytest.approx(0.4)


def test_classification_and_regression_metrics() -> None:
    # given
    y = np.array([0, 0, 1, 1])
    # when
    perfect = classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))
    value = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    # then
    assert perfect["roc_auc"] == 1.0
    assert perfect["pr_auc"] == 1.0
    assert perfect["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    assert value["mae"] == pytest.approx(2 / 3)
    assert value["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert np.isnan(classification_metrics(np.array([1, 1]), np.array([0.2, 0.4]))["roc_auc"])


def test_holdout_is_the_latest_snapshots_and_training_is_purged() -> None:
    # given weekly snapshots and a 28-day horizon
    # when
    train, holdout = choose_snapshots(
        WEEKS, holdout_snapshots=2, train_snapshots=3, horizon_days=28, purge=True
    )
    # then
    assert holdout == list(WEEKS[-2:])
    assert train == list(WEEKS[-8:-5])  # latest three whose window ends by the first holdout time
    assert all(t + pd.Timedelta(days=28) <= holdout[0] for t in train)


def test_split_without_purge_and_too_little_history() -> None:
    # given / when
    train, _ = choose_snapshots(
        WEEKS[:5], holdout_snapshots=1, train_snapshots=10, horizon_days=90, purge=False
    )
    # then
    assert train == list(WEEKS[:4])
    with pytest.raises(PersonaError, match="no training snapshot"):
        choose_snapshots(WEEKS[:5], 1, 10, horizon_days=90, purge=True)
    with pytest.raises(PersonaError, match="at least 2"):
        choose_snapshots(WEEKS[:1], 1, 1, 7, purge=False)


def test_rfm_risk_rises_with_recency_and_falls_with_spend() -> None:
    # given
    frame = pd.DataFrame(
        {"recency_days": [1, 200, 30], "orders_365d": [20, 0, 5], "spend_365d": [900, 0, 100]}
    )
    # when
    risk = rfm_score(frame)
    # then
    assert risk[1] > risk[2] > risk[0]


def test_feature_matrix_one_hot_and_unknown_levels() -> None:
    # given
    train = pd.DataFrame({"age": [30, 40], "region": ["north", "south"]})
    spec = fit_feature_spec(train, ["age", "region"])
    # when
    matrix = model_matrix(pd.DataFrame({"age": [np.nan], "region": ["mars"]}), spec)
    imputed = model_matrix(pd.DataFrame({"age": [np.nan], "region": ["south"]}), spec, impute=True)
    # then
    assert spec.matrix_names == ["age", "region=north", "region=south"]
    assert np.isnan(matrix[0, 0])
    assert matrix[0, 1:].tolist() == [0.0, 0.0]
    assert imputed[0].tolist() == [35.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def fitted():
    frame = make_training_frame(customers=300, snapshots=3, seed=3)
    train = frame[frame["event_timestamp"] < frame["event_timestamp"].max()].reset_index(drop=True)
    holdout = frame[frame["event_timestamp"] == frame["event_timestamp"].max()].reset_index(drop=True)
    config = TrainConfig(xgb=XGBParams(n_estimators=30), personas=PersonaParams(k_min=2, k_max=4))
    fit = fit_persona_bundle(
        train, holdout, feature_columns_of(frame), config, load_policy(DEFAULT_POLICY_PATH)
    )
    return fit, holdout


def test_fit_reports_model_baselines_and_text_lift(fitted) -> None:
    # given
    fit, _ = fitted
    # then
    for key in (
        "churn_roc_auc",
        "baseline_logreg_roc_auc",
        "baseline_rfm_roc_auc",
        "behavior_only_churn_roc_auc",
        "text_lift_roc_auc",
        "spend_mae",
        "orders_corr",
        "churn_ece",
        "persona_silhouette",
    ):
        assert key in fit.metrics, key
        assert np.isfinite(fit.metrics[key]), key
    assert fit.metrics["churn_roc_auc"] > 0.6
    assert {c["name"] for c in fit.cards} == set(fit.predictor.persona_names.values())


def test_bundle_round_trip_predicts_the_same(fitted, tmp_path: Path) -> None:
    # given
    fit, holdout = fitted
    # when
    loaded = PersonaPredictor.load(fit.predictor.save(tmp_path / "bundle"))
    shuffled = holdout.sample(frac=1.0, axis=1, random_state=0)  # column order must not matter
    # then
    expected = fit.predictor.predict(holdout)
    got = loaded.predict(shuffled)
    assert list(got.columns) == [
        "churn_probability",
        "expected_orders",
        "expected_spend",
        "segment",
        "persona",
        "action",
    ]
    pd.testing.assert_frame_equal(got, expected)
    assert got["churn_probability"].between(0, 1).all()
    assert (got["expected_spend"] >= 0).all()


def test_bundle_names_missing_columns(fitted) -> None:
    # given
    fit, holdout = fitted
    # when / then
    with pytest.raises(ValueError, match="lacks columns.*spend_365d"):
        fit.predictor.predict(holdout.drop(columns=["spend_365d"]))


def test_ground_truth_is_read_only_when_its_path_is_given(persona_home: Path) -> None:
    # given a home holding the generator's ground truth for every labelled row
    from core import catalog
    from core.settings import load_settings
    from training import data as dataset

    settings = load_settings()
    frame = make_training_frame(customers=50, snapshots=3, seed=6)
    truth = frame[["customer_id", "event_timestamp"]].assign(true_churn_probability=0.5, true_expected_spend=1.0)
    catalog.ground_truth(settings).parent.mkdir(parents=True, exist_ok=True)
    truth.to_parquet(catalog.ground_truth(settings))
    base = {"horizon_days": 7, "purge": False}

    # when the frame is split without and with the path
    silent = dataset.split(settings, TrainConfig(**base), dataset.Dataset(frame))
    asked = dataset.split(
        settings, TrainConfig(**base, ground_truth_path=catalog.ground_truth(settings)), dataset.Dataset(frame)
    )

    # then only the run that named the file sees it
    assert "true_churn_probability" not in silent.holdout.columns
    assert (asked.holdout["true_churn_probability"] == 0.5).all()


def test_fit_reports_each_named_step() -> None:
    # given a fit's inputs, and a callback that records what it is told
    frame = make_training_frame(customers=120, snapshots=3, seed=8)
    times = sorted(frame["event_timestamp"].unique())
    train, holdout = frame[frame["event_timestamp"] < times[-1]], frame[frame["event_timestamp"] == times[-1]]
    config = TrainConfig(xgb=XGBParams(n_estimators=10), personas=PersonaParams(k_min=2, k_max=3))
    seen: list[tuple[float, float | None, str]] = []

    # when
    fit_persona_bundle(
        train.reset_index(drop=True),
        holdout.reset_index(drop=True),
        feature_columns_of(frame),
        config,
        load_policy(DEFAULT_POLICY_PATH),
        on_progress=lambda done, total=None, note="": seen.append((done, total, note)),
    )

    # then every step is reported in order, out of the same total, ending with the last
    assert [d for d, _, _ in seen] == list(range(1, len(seen) + 1))
    assert {t for _, t, _ in seen} == {len(seen)}
    assert seen[0][2] == "churn model"
    assert seen[-1][2] == "done"


def test_monotone_constraints_follow_the_matrix_order() -> None:
    # given matrix names with two constrained features among free ones
    names = ["age", "tenure_days", "region=north", "recency_days"]
    # when
    constraints = monotone_constraints(names, VALUE_MONOTONE)
    # then each constrained feature gets its direction in its own place, the rest stay free
    assert constraints == "(0,-1,0,-1)"
    assert monotone_constraints(["age"], VALUE_MONOTONE) is None
    assert monotone_constraints(names, None) is None


def test_expected_orders_never_rise_with_recency_even_past_a_bump_in_the_data() -> None:
    # given orders that fall with recency, except a bump of busy customers at 100-130 days
    rng = np.random.default_rng(0)
    recency = rng.uniform(0, 200, 3_000)
    rate = np.exp(-recency / 60) + 2.0 * ((recency > 100) & (recency < 130))
    y = rng.poisson(rate).astype(float)
    grid = np.linspace(0, 200, 81).reshape(-1, 1)
    params = XGBParams(n_estimators=60)
    # when the orders model is fitted with the value directions, and without them
    constrained = fit_xgb(recency.reshape(-1, 1), y, OBJECTIVES["orders"], params, 7, ["recency_days"], VALUE_MONOTONE)
    free = fit_xgb(
        recency.reshape(-1, 1), y, OBJECTIVES["orders"], params.model_copy(update={"monotone": False}), 7,
        ["recency_days"], VALUE_MONOTONE,
    )
    # then the constrained prediction never rises with recency; the free one follows the bump
    assert np.all(np.diff(constrained.inplace_predict(grid)) <= 1e-6)
    assert np.diff(free.inplace_predict(grid)).max() > 0.1


def test_the_persona_fit_constrains_churn_and_value_in_recency(fitted) -> None:
    # given the fitted bundle and one holdout row repeated over a range of recencies
    fit, holdout = fitted
    rows = pd.concat([holdout.iloc[[0]]] * 50, ignore_index=True)
    rows["recency_days"] = np.linspace(0, 400, 50)
    # when
    predicted = fit.predictor.predict(rows)
    # then each model carries its directions, churn never falls and expected orders and spend never
    # rise as the last order recedes
    names = fit.predictor.features.matrix_names
    for model, directions in (("churn", CHURN_MONOTONE), ("orders", VALUE_MONOTONE), ("spend", VALUE_MONOTONE)):
        config = json.loads(fit.predictor.models[model].save_config())
        found = config["learner"]["gradient_booster"]["tree_train_param"]["monotone_constraints"]
        assert found == monotone_constraints(names, directions), model
    assert np.all(np.diff(predicted["churn_probability"]) >= -1e-6)
    assert np.all(np.diff(predicted["expected_orders"]) <= 1e-6)
    assert np.all(np.diff(predicted["expected_spend"]) <= 1e-6)


def test_the_monotone_switch_is_logged_only_where_it_applies(tmp_path: Path) -> None:
    # given a persona run and a custom-target run
    persona = TrainConfig()
    custom = TrainConfig(labels_path=tmp_path / "labels.csv", target="upgraded")
    # when
    persona_params, custom_params = persona.logged_params(), custom.logged_params()
    # then the churn and value directions show on the persona run, never on a custom target's
    assert persona_params["xgb.monotone"] == "True"
    assert "xgb.monotone" not in custom_params
    assert "xgb.max_depth" in custom_params
