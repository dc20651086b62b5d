"""Fast paths of serving give the same answers as the slow ones: wire decoding, numpy trees, the runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from model.runner import FastPersonaRunner, FrameRunner, make_runner, outputs_agree, probe_batch
from model.trees import TreeEnsembles
from store.codec import decode_value
from store.fast_decode import PayloadDecoder
from store.online_sqlite import encode_payload


@pytest.mark.parametrize(
    ("values", "value_type"),
    [
        ([1.5, -0.25, 0.0, None, 3.4e38], ValueType.FLOAT),
        ([2.0, -1e300, None], ValueType.DOUBLE),
        ([0, 7, 127, 128, 300, -1, -(2**63), 2**63 - 1, None], ValueType.INT64),
        ([0, -5, 2**31 - 1, None], ValueType.INT32),
        ([True, False, None], ValueType.BOOL),
        (["north", "", "é" * 100, None], ValueType.STRING),
        ([[1.0, 2.0], None], ValueType.FLOAT_LIST),
    ],
)
def test_decode_value_matches_feast_encoding(values: list, value_type: ValueType) -> None:
    # given values serialized by Feast itself
    raw = [proto.SerializeToString() for proto in python_values_to_proto_values(values, value_type)]

    # when decoded from the wire format
    decoded = [decode_value(r) for r in raw]

    # then the Python values come back (float32 rounding aside)
    for got, want in zip(decoded, values, strict=True):
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-6)
        elif isinstance(want, list):
            assert list(got) == pytest.approx(want)
        else:
            assert got == want


def _payload(values: dict[str, tuple[object, ValueType]]) -> bytes:
    return encode_payload(
        {
            name: python_values_to_proto_values([value], kind)[0].SerializeToString()
            for name, (value, kind) in values.items()
        }
    )


def test_payload_decoder_reads_the_wanted_features_in_any_layout() -> None:
    # given payloads with the same layout, one with nulls, and one with another layout
    slots = {b"a": (False, 0), b"c": (True, 0), b"d": (False, 1)}
    first = _payload(
        {
            "a": (1.25, ValueType.FLOAT),
            "b": (300, ValueType.INT64),
            "c": ("x", ValueType.STRING),
            "d": (7, ValueType.INT64),
        }
    )
    same_layout = _payload(
        {
            "a": (-2.5, ValueType.FLOAT),
            "b": (1, ValueType.INT64),
            "c": ("yy", ValueType.STRING),
            "d": (100000, ValueType.INT64),
        }
    )
    with_nulls = _payload(
        {
            "a": (None, ValueType.FLOAT),
            "b": (1, ValueType.INT64),
            "c": (None, ValueType.STRING),
            "d": (3, ValueType.INT64),
        }
    )
    reordered = _payload(
        {"d": (5, ValueType.INT64), "c": ("z", ValueType.STRING), "a": (0.0, ValueType.FLOAT)}
    )
    decoder = PayloadDecoder(slots)

    # when decoded in turn
    decoded = [dict(decoder.decode(p)) for p in (first, same_layout, with_nulls, reordered, first)]

    # then only the wanted, non-null values come back, whatever the layout
    assert decoded[0] == {(False, 0): 1.25, (True, 0): "x", (False, 1): 7}
    assert decoded[1] == {(False, 0): -2.5, (True, 0): "yy", (False, 1): 100000}
    assert decoded[2] == {(False, 1): 3}
    assert decoded[3] == {(False, 1): 5, (True, 0): "z", (False, 0): 0.0}
    assert decoded[4] == decoded[0]


def _booster(objective: str, y: np.ndarray, x: np.ndarray, **params: object) -> xgb.Booster:
    data = xgb.DMatrix(x, label=y, missing=np.nan)
    return xgb.train({"objective": objective, "max_depth": 4, "eta": 0.3, "seed": 0, **params}, data, 25)


def test_numpy_trees_equal_xgboost_for_each_objective() -> None:
    # given boosters of the objectives Persona uses, trained with missing values
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    signal = np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 1])
    boosters = {
        "churn": _booster("binary:logistic", (signal > 0).astype(float), x),
        "orders": _booster("count:poisson", rng.poisson(np.exp(signal / 2)), x),
        "spend": _booster(
            "reg:tweedie", np.exp(signal) * (rng.random(400) > 0.3), x, tweedie_variance_power=1.5
        ),
        "plain": _booster("reg:squarederror", signal, x),
    }

    # when evaluated with numpy on fresh rows (with NaN)
    test = rng.normal(size=(50, 6)).astype(np.float32)
    test[rng.random(test.shape) < 0.3] = np.nan
    mine = TreeEnsembles(boosters).predict(test)

    # then every model matches XGBoost's own prediction
    for name, booster in boosters.items():
        np.testing.assert_allclose(mine[name], booster.inplace_predict(test), rtol=1e-5, atol=1e-6)


@pytest.fixture
def bundle(persona_bundle):
    return persona_bundle


def test_fast_runner_equals_persona_predictor_on_many_rows(bundle) -> None:
    # given a real persona bundle and rows with missing values and unseen categories
    fast = FastPersonaRunner(bundle)
    rows = probe_batch(bundle, rows=300, seed=5)

    # when predicted through numpy trees (small batches) and inplace_predict (the whole batch)
    small = [fast.predict(rows.take(np.arange(i, min(i + 10, 300)))) for i in range(0, 300, 10)]
    whole = fast.predict(rows)
    reference = bundle.predict(pd.DataFrame({c: rows.column(c) for c in bundle.feature_columns}))

    # then both equal PersonaPredictor.predict
    expected = {c: reference[c].to_numpy() for c in reference.columns}
    assert outputs_agree(whole, expected)
    merged = {c: np.concatenate([part[c] for part in small]) for c in expected}
    assert outputs_agree(merged, expected)
    assert fast._trees is not None


def test_make_runner_picks_the_fast_runner_for_bundles_and_frames_otherwise(bundle) -> None:
    # given a persona bundle and a plain model object
    class Plain:
        feature_columns = ["a"]

        def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
            return frame

    # when runners are made
    # then the bundle gets the numpy runner, anything else the DataFrame one
    assert isinstance(make_runner(bundle), FastPersonaRunner)
    assert isinstance(make_runner(Plain()), FrameRunner)


def test_make_runner_falls_back_when_the_fast_path_disagrees(bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a fast runner that gets churn wrong
    original = FastPersonaRunner.predict

    def wrong(self, batch):
        out = original(self, batch)
        out["churn_probability"] = out["churn_probability"] * 0.5
        return out

    monkeypatch.setattr(FastPersonaRunner, "predict", wrong)

    # when a runner is made
    runner = make_runner(bundle)

    # then serving uses the bundle's own predict
    assert isinstance(runner, FrameRunner)
