"""predict_target's pure parts: which model a request names, and one version answering (fake model and reader)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from serving.predictor import InputError
from serving.targets import NotMaterialized, TargetPredictor, model_for
from tests.unit.serving.test_serving_predictor import COLUMNS, STORE, FakeReader

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


class FakeTargetModel:
    """A custom target's bundle: ``prediction`` = orders / 10."""

    feature_columns = COLUMNS
    string_columns = frozenset({"region"})

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"prediction": frame["orders_90d"].to_numpy(float) / 10}, index=frame.index)


def _predictor(unmaterialized=None) -> TargetPredictor:
    return TargetPredictor(
        FakeTargetModel(), FakeReader(STORE), "persona-upgraded", "3", clock=lambda: NOW, unmaterialized=unmaterialized
    )


@pytest.mark.parametrize(
    ("target", "model", "expected"),
    [
        ("upgraded", None, "persona-upgraded"),
        ("churn", None, "persona-churn"),  # a custom target named churn is its own model, not the built-in churn
        (None, "persona-upgraded", "persona-upgraded"),
        ("upgraded", "persona-upgraded", "persona-upgraded"),
        ("value-2", None, "persona-value-2"),
    ],
)
def test_a_request_names_persona_dash_target(target: str | None, model: str | None, expected: str) -> None:
    # given a target and/or a model name
    # when resolved against the registered model `persona`
    # then the custom target's model is named
    assert model_for("persona", target, model) == expected


@pytest.mark.parametrize(
    ("target", "model", "field", "says"),
    [
        (None, None, "target", "required"),
        ("", None, "target", "non-empty"),
        (" upgraded", None, "target", "surrounding spaces"),
        ("x" * 201, None, "target", "at most 200"),
        ("upgraded", "persona-churn", "model", "persona-upgraded"),
        (None, "persona", "model", "/predict"),
        (None, "persona-uplift", "model", "uplift model"),
        ("uplift", None, "target", "uplift model"),
        (None, "upgraded", "model", "persona-<target>"),
    ],
)
def test_a_request_naming_no_custom_target_is_400_naming_the_field(
    target: str | None, model: str | None, field: str, says: str
) -> None:
    # given a request whose target/model is missing, blank, contradictory or not a custom target
    # when resolved
    with pytest.raises(InputError) as caught:
        model_for("persona", target, model)

    # then a 400 naming the field and why
    assert caught.value.status == 400
    assert caught.value.field == field
    assert says in caught.value.message


def test_known_customers_are_predicted_and_unknown_ones_are_cold_starts() -> None:
    # given a model and a store knowing customers 1 and 2
    predictor = _predictor()

    # when 1, an unknown customer and 2 are predicted
    served = predictor.predict_customers([1, 999, 2], "r1")

    # then 1 and 2 get the model's prediction, 999 a cold start with the reason, all with the version
    first, unknown, _ = served.results
    assert first["prediction"] == pytest.approx(0.3)
    assert first["status"] == "ok"
    assert first["model"] == "persona-upgraded"
    assert first["model_version"] == "3"
    assert first["features_as_of"]["customer_behavior"] == "2025-05-31T00:00:00Z"
    assert unknown["status"] == "cold_start"
    assert unknown["prediction"] is None
    assert "unknown customer" in unknown["cold_start_reason"]
    assert "persona features materialize" in unknown["cold_start_reason"]
    # and the log rows say which endpoint and version served them, the unknown one without a prediction
    assert served.log.endpoint == "predict_target"
    assert served.log.model_version == "3"
    assert np.isnan(served.log.predictions["prediction"][1])
    assert served.log.reasons[0] is None


@pytest.mark.parametrize(
    ("ids", "status", "field"),
    [([], 400, "customer_ids"), (list(range(1001)), 413, "customer_ids"), ([1, True], 400, "customer_ids[1]")],
)
def test_bad_ids_are_refused_naming_the_field(ids: list, status: int, field: str) -> None:
    # given an empty, oversized or mistyped id list
    # when predicted
    with pytest.raises(InputError) as caught:
        _predictor().predict_customers(ids)

    # then the status and field are named
    assert (caught.value.status, caught.value.field) == (status, field)


def test_no_customer_found_in_views_never_materialized_is_not_materialized() -> None:
    # given views that were never materialized
    predictor = _predictor(unmaterialized=lambda: ["loyalty"])

    # when only customers the store does not hold are asked for
    # then the answer says to materialize (not a cold start for everyone)
    with pytest.raises(NotMaterialized, match="persona features materialize"):
        predictor.predict_customers([998, 999])
    # and a known customer is still answered (the check only runs when nothing was found)
    assert predictor.predict_customers([1, 999]).results[0]["status"] == "ok"


class _Registered:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeRegistry:
    """Registered models and which of them hold a champion (``down``: every call fails)."""

    def __init__(self, champions: dict[str, str | None], down: bool = False) -> None:
        self.champions = champions
        self.down = down

    def search_registered_models(self, filter_string: str):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

        if self.down:
            raise MlflowException("connection refused", error_code=TEMPORARILY_UNAVAILABLE)
        prefix = filter_string.split("'")[1].rstrip("%")
        return [_Registered(name) for name in self.champions if name.startswith(prefix)]

    def get_model_version_by_alias(self, name: str, alias: str):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        version = self.champions.get(name)
        if version is None:
            raise MlflowException("no alias", error_code=RESOURCE_DOES_NOT_EXIST)
        return type("Version", (), {"version": version})()


def _runtime(registry: _FakeRegistry, persona_absent: bool = True):
    from core.settings import load_settings
    from serving.runtime import ServingRuntime

    runtime = ServingRuntime(load_settings(), None)
    runtime._client = registry
    runtime.watcher.status.last_error = runtime.watcher.absent if persona_absent else "v3 failed to load: bad digest"
    return runtime


@pytest.mark.parametrize(
    ("champions", "persona_absent", "down", "ready", "says"),
    [
        # no persona champion, a custom target with one: ready, naming it (the uplift model is not a target)
        ({"persona-upgraded": "2", "persona-churn": None, "persona-uplift": "1"}, True, False, True,
         "no persona champion; serving custom targets: persona-upgraded"),
        # no champion anywhere: not ready
        ({"persona-upgraded": None}, True, False, False, "no model loaded: no champion registered yet"),
        # the persona champion failed to load: not ready, whatever the custom targets hold
        ({"persona-upgraded": "2"}, False, False, False, "no model loaded: v3 failed to load"),
        # the registry does not answer: not ready
        ({"persona-upgraded": "2"}, True, True, False, "no model loaded: no champion registered yet"),
    ],
)
def test_readiness_without_a_persona_champion_follows_the_custom_targets(
    persona_home, champions, persona_absent, down, ready, says
) -> None:
    # given a runtime whose persona model has no champion loaded, and a registry of custom targets
    runtime = _runtime(_FakeRegistry(champions, down), persona_absent)

    # when readiness is asked
    answer = runtime.readiness()

    # then it is ready only when the persona model is absent and a custom target has a champion
    assert answer[0] is ready
    if ready:
        assert answer[1] == says
    else:
        assert answer[1].startswith(says), answer
