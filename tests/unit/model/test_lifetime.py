"""BG/NBD inside the bundle: the same derived inputs at training, scoring and serving, fitted on training rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bench.realdata_bench import cdnow_transactions
from features.transforms.behavior import compute_behavior_features
from model.bundle import PersonaPredictor
from model.explain import contributions, explain
from model.lifetime import LIFETIME_COLUMNS, LIFETIME_INPUTS, lifetime_summary
from model.preprocess import P_ALIVE, model_matrix
from model.runner import FastPersonaRunner, make_runner
from store.feature_batch import FeatureBatch, split_columns
from training import btyd
from training.config import XGBParams

HORIZON = 90
TRAIN_AT = ("1997-06-01", "1997-09-01", "1997-12-01")
HOLDOUT_AT = "1998-03-01"


def _rows(tx: pd.DataFrame, times: tuple[str, ...]) -> pd.DataFrame:
    """Behavior features and labels of every CDNOW customer at ``times`` (real orders, point in time)."""
    from training.labels import make_labels

    ids = np.sort(tx["customer_id"].unique())
    entities = pd.DataFrame(
        [(c, pd.Timestamp(t, tz="UTC")) for t in times for c in ids], columns=["customer_id", "event_timestamp"]
    )
    features = compute_behavior_features(entities, tx)
    return make_labels(features, tx, HORIZON)


@pytest.fixture(scope="module")
def cdnow() -> dict:
    tx = cdnow_transactions(full=False)
    tx = tx[tx["customer_id"] <= 800].reset_index(drop=True)
    return {"tx": tx, "train": _rows(tx, TRAIN_AT), "holdout": _rows(tx, (HOLDOUT_AT,))}


def _fit(train: pd.DataFrame, holdout: pd.DataFrame) -> PersonaPredictor:
    from model.actions import load_policy
    from training.config import DEFAULT_POLICY_PATH, PersonaParams, TrainConfig, XGBParams
    from training.data import feature_columns_of
    from training.fit import fit_persona_bundle

    config = TrainConfig(
        horizon_days=HORIZON, xgb=XGBParams(n_estimators=30), personas=PersonaParams(k_min=2, k_max=3)
    )
    fit = fit_persona_bundle(train, holdout, feature_columns_of(train), config, load_policy(DEFAULT_POLICY_PATH))
    return fit.predictor


@pytest.fixture(scope="module")
def bundle(cdnow: dict) -> PersonaPredictor:
    return _fit(cdnow["train"], cdnow["holdout"])


def _batch(frame: pd.DataFrame, predictor: PersonaPredictor) -> FeatureBatch:
    """The rows as serving reads them from the online store (numeric float64 block, string block)."""
    columns = tuple(predictor.feature_columns)
    numeric, strings = split_columns(columns, set(predictor.features.categorical))
    return FeatureBatch(
        ids=frame["customer_id"].to_numpy(np.int64),
        numeric_columns=numeric,
        string_columns=strings,
        numeric=frame[list(numeric)].to_numpy(dtype=float, na_value=np.nan),
        strings=frame[list(strings)].astype(object).to_numpy() if strings else np.empty((len(frame), 0), object),
        missing_views=[() for _ in range(len(frame))],
    )


def test_lifetime_inputs_from_behavior_features_equal_the_transaction_summary(cdnow: dict) -> None:
    # given behavior features of real customers at a snapshot, and BG/NBD's summary of their orders
    rows = cdnow["holdout"]
    summary = btyd.summarize(rows[["customer_id", "event_timestamp"]], cdnow["tx"])
    # when (x, t_x, T) are read back from orders_total, first_order_days and recency_days
    x, t_x, T = lifetime_summary(*(rows[c].to_numpy(float) for c in LIFETIME_INPUTS))
    # then they are the summary BG/NBD is fitted on (float32 features: a minute's rounding)
    np.testing.assert_array_equal(x, summary["x"].to_numpy())
    np.testing.assert_allclose(t_x, summary["t_x"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(T, summary["T"].to_numpy(), atol=1e-3)


def test_served_batch_and_training_values_are_the_same_rows_same_numbers(cdnow: dict, bundle, tmp_path) -> None:
    # given a bundle fitted on real behavior rows, saved and loaded as serving loads it
    assert bundle.features.lifetime is not None
    loaded = PersonaPredictor.load(bundle.save(tmp_path / "bundle"))
    assert loaded.features.lifetime == bundle.features.lifetime
    rows = cdnow["holdout"].iloc[::7].reset_index(drop=True)
    # training-time values: the fitted BG/NBD on the orders' own summary
    summary = btyd.summarize(rows[["customer_id", "event_timestamp"]], cdnow["tx"])
    model, h = bundle.features.lifetime.model, HORIZON / bundle.features.lifetime.unit_days
    trained = np.column_stack(
        [model.expected_orders(h, summary["x"], summary["t_x"], summary["T"]),
         model.p_alive(summary["x"], summary["t_x"], summary["T"])]
    )
    # when the same rows go through batch scoring, the matrix the models see, and serving
    batch = loaded.predict(rows)
    matrix = model_matrix(rows, loaded.features)[:, -len(LIFETIME_COLUMNS):]
    runner = make_runner(loaded)
    served = runner.predict(_batch(rows, loaded))
    served_matrix = runner._matrix(_batch(rows, loaded))[:, -len(LIFETIME_COLUMNS):]
    # then every path has the same BG/NBD values, and P(alive) is an output of both
    assert isinstance(runner, FastPersonaRunner)
    np.testing.assert_allclose(matrix, trained, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(served_matrix, matrix.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(served[P_ALIVE], batch[P_ALIVE].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(batch[P_ALIVE].to_numpy(), trained[:, 1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(served["expected_orders"], batch["expected_orders"].to_numpy(), rtol=1e-5)
    # and explanations name the derived inputs, with the values the models saw
    _, names = contributions(loaded, rows, ["orders"])
    assert set(LIFETIME_COLUMNS) <= set(names)
    reasons = explain(loaded, rows, batch, "persona", "1", top=len(names))
    for i, reason in enumerate(reasons):
        shown = {c["feature"]: c["value"] for c in reason["contributions"]["expected_orders"]["top"]}
        for j, column in enumerate(LIFETIME_COLUMNS):
            assert shown[column] == pytest.approx(float(matrix[i, j]), rel=1e-6, nan_ok=True)


def test_the_bundles_bgnbd_never_sees_the_holdout(cdnow: dict, bundle) -> None:
    # given the holdout rows with every behavior and label scrambled
    holdout = cdnow["holdout"].copy()
    rng = np.random.default_rng(0)
    for column in (*LIFETIME_INPUTS, "future_orders", "churned"):
        holdout[column] = rng.permutation(holdout[column].to_numpy())
    # when the bundle is fitted again on the same training rows
    again = _fit(cdnow["train"], holdout)
    # then its BG/NBD is the same: fitted on the training rows' latest snapshot only
    assert again.features.lifetime == bundle.features.lifetime
    expected = btyd.fit_lifetime(cdnow["train"], HORIZON, seed=7)
    assert expected is not None
    # with BG/NBD's weight in the served expected orders chosen on the training rows alone
    from training.config import PersonaParams, TrainConfig
    from training.data import feature_columns_of
    from training.orders_weight import choose_orders_weight

    config = TrainConfig(
        horizon_days=HORIZON, xgb=XGBParams(n_estimators=30), personas=PersonaParams(k_min=2, k_max=3)
    )
    choice = choose_orders_weight(cdnow["train"], feature_columns_of(cdnow["train"]), config)
    assert choice.source == "searched"
    assert bundle.features.lifetime == dataclasses.replace(expected, orders_weight=choice.weight)


def test_served_orders_are_the_log_mean_of_the_booster_and_bgnbd(cdnow: dict, bundle) -> None:
    # given a bundle whose lifetime model weighs BG/NBD in the expected orders
    weight = bundle.features.lifetime.orders_weight
    assert 0.0 < weight < 1.0
    rows = cdnow["holdout"].iloc[::5].reset_index(drop=True)
    matrix = model_matrix(rows, bundle.features).astype(np.float32)
    booster = np.asarray(bundle.models["orders"].inplace_predict(matrix), dtype=float)
    bgnbd = matrix[:, bundle.features.matrix_names.index("btyd_expected_orders")].astype(float)
    # when the rows are scored in batch and by the fast serving runner
    batch = bundle.predict(rows)["expected_orders"].to_numpy()
    served = make_runner(bundle).predict(_batch(rows, bundle))["expected_orders"]
    # then both serve exp((1 - w) log booster + w log BG/NBD), not either model alone
    expected = np.exp((1 - weight) * np.log(booster) + weight * np.log(bgnbd))
    np.testing.assert_allclose(batch, expected, rtol=1e-6)
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert not np.allclose(batch, booster, rtol=1e-3)


def test_orders_explanations_add_up_to_the_blended_margin(cdnow: dict, bundle) -> None:
    # given real rows and their served expected orders (booster and BG/NBD blended)
    rows = cdnow["holdout"].iloc[::11].reset_index(drop=True)
    predictions = bundle.predict(rows)
    _, names = contributions(bundle, rows, ["orders"])
    # when every contribution is shown
    reasons = explain(bundle, rows, predictions, "persona", "1", top=len(names))
    # then bias and contributions add up to the log of the served number
    for i, reason in enumerate(reasons):
        part = reason["contributions"]["expected_orders"]
        margin = part["bias"] + sum(c["contribution"] for c in part["top"])
        assert margin == pytest.approx(np.log(predictions["expected_orders"].iloc[i]), abs=1e-4), i


def test_blend_keeps_the_booster_where_bgnbd_has_no_value_and_for_older_bundles() -> None:
    from model.lifetime import LifetimeSpec, blend_orders

    booster = np.array([0.5, 2.0, 0.0])
    bgnbd = np.array([2.0, np.nan, 1.0])
    # a geometric mean where BG/NBD has a value (a zero booster is floored, not log(0))
    blended = blend_orders(booster, bgnbd, 0.5)
    assert blended[0] == pytest.approx(1.0)
    assert blended[1] == 2.0
    assert blended[2] == pytest.approx(np.sqrt(1e-6))
    # weight 0 serves the booster alone; a bundle saved before the blend loads with weight 0
    np.testing.assert_array_equal(blend_orders(booster, bgnbd, 0.0), booster)
    old = {"r": 0.2, "alpha": 4.0, "a": 0.8, "b": 2.4, "horizon_days": 90.0, "unit_days": 7.0}
    assert LifetimeSpec.from_dict(old).orders_weight == 0.0
    spec = LifetimeSpec(**old, orders_weight=0.5)
    assert LifetimeSpec.from_dict(spec.to_dict()) == spec
