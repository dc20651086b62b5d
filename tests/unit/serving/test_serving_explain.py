"""``/predict`` with ``"explain": true``: reasons for predicted rows only, the plain answer unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from model.runner import probe_batch
from serving.predictor import InputError, ServingPredictor
from tests.unit.serving.test_serving_predictor import STORE, FakeModel, FakeReader

if TYPE_CHECKING:
    from collections.abc import Iterator


class ProbeReader:
    """Customers 0..n-1 from a bundle's probe rows; customer ``cold`` has no rows at all."""

    views = ["customer_behavior"]

    def __init__(self, bundle, cold: int) -> None:
        self.batch = probe_batch(bundle, rows=8, seed=6)
        self.cold = cold

    def read(self, ids) -> Any:
        ids = np.asarray(ids, dtype=np.int64)
        batch = self.batch.take(np.clip(ids, 0, len(self.batch) - 1))
        batch.ids = ids
        batch.event_ts = {"customer_behavior": ["2025-05-31 00:00:00.000000"] * len(ids)}
        batch.missing_views = [("customer_behavior",) if i == self.cold else () for i in ids.tolist()]
        if self.cold in ids.tolist():
            batch.event_ts["customer_behavior"][ids.tolist().index(self.cold)] = None
        return batch


def test_explain_adds_reasons_to_predicted_rows_and_nothing_when_off(persona_bundle) -> None:
    # given a served bundle, two known customers and a cold start
    predictor = ServingPredictor(model=persona_bundle, reader=ProbeReader(persona_bundle, cold=7),
                                 version="3", model_name="persona")

    # when predicted with and without explain
    plain = predictor.predict_customers([1, 7, 2]).results
    explained = predictor.predict_customers([1, 7, 2], explain=True).results

    # then only the explained answer has reasons, for the predicted rows, naming the served values
    assert all("explanation" not in r for r in plain)
    first, cold, second = explained
    assert cold["status"] == "cold_start"
    assert cold["explanation"] is None
    for row, same in ((first, plain[0]), (second, plain[2])):
        # (the feature age is measured against the clock at each call: equal up to the time between them)
        timeless = {"explanation", "feature_age_seconds"}
        untimed = {k: v for k, v in row.items() if k not in timeless}
        assert untimed == {k: v for k, v in same.items() if k not in timeless}
        assert row["feature_age_seconds"] == pytest.approx(same["feature_age_seconds"], abs=5.0)
        reason = row["explanation"]
        assert reason["action"]["action"] == row["action"]
        assert reason["persona"]["name"] == row["persona"]
        assert reason["versions"]["model_version"] == "3"
        assert reason["versions"]["model"] == "persona"
        assert len(reason["contributions"]["churn_probability"]["top"]) == 5


def test_explain_on_a_model_that_cannot_explain_is_a_501_naming_explain() -> None:
    # given a served model that is not a persona bundle
    predictor = ServingPredictor(model=FakeModel(), reader=FakeReader(STORE), version="7")

    # when asked to explain
    with pytest.raises(InputError) as caught:
        predictor.predict_customers([1], explain=True)

    # then the caller is told which field cannot be honoured
    assert (caught.value.status, caught.value.field) == (501, "explain")


class _Runtime:
    """A ready stand-in runtime that records what each request asked for."""

    calls: list[tuple[list[int], bool]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> _Runtime:
        return self

    def stop(self) -> None:
        pass

    def readiness(self) -> tuple[bool, str]:
        return True, "stand-in runtime"

    def predict_customers(self, ids: list[int], request_id: str, explain: bool = False) -> Any:
        from serving.prediction_log import LogBatch
        from serving.predictor import Served

        _Runtime.calls.append((ids, explain))
        return Served([], LogBatch.__new__(LogBatch))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from serving import runtime
    from serving.service import PersonaService

    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    monkeypatch.setattr(runtime, "ServingRuntime", _Runtime)
    _Runtime.calls = []
    with TestClient(PersonaService.to_asgi(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_the_explain_field_is_validated_and_passed_through(client: TestClient) -> None:
    # given requests without explain, with explain, and with a non-boolean explain
    # when posted
    plain = client.post("/predict", json={"customer_ids": [1]})
    asked = client.post("/predict", json={"customer_ids": [2], "explain": True})
    bad = client.post("/predict", json={"customer_ids": [3], "explain": "yes"})

    # then the flag reaches the runtime, and a bad value is a 400 naming the field
    assert (plain.status_code, asked.status_code) == (200, 200)
    assert _Runtime.calls == [([1], False), ([2], True)]
    assert bad.status_code == 400
    assert bad.json()["field"] == "explain"
