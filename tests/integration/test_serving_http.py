"""HTTP through the service's ASGI app (BentoML app, real champion, real online store, in process)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.conftest import SERVING_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(champion_home: Path) -> Iterator[TestClient]:
    """One started service for the module (the model loads once)."""
    from serving.service import PersonaService

    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("PERSONA_HOME", str(champion_home))
        patch.setenv("PERSONA_MODEL_POLL_SECONDS", "3600")
        with TestClient(PersonaService.to_asgi(), raise_server_exceptions=False) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def feature_row(client: TestClient, champion_home: Path) -> dict[str, object]:
    """A valid what-if row: customer 1's served features, read from the online store."""
    from core.settings import load_settings
    from store.online_reader import OnlineFeatureReader
    from store.repo import get_store

    info = client.post("/model_info", json={}).json()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_HOME", str(champion_home))
        store = get_store(load_settings(home=champion_home))
        reader = OnlineFeatureReader.from_store(store, info["feature_columns"], info["feature_service"])
        return reader.read(np.array([1])).row(0)


def _error(response) -> dict:
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("error"), body
    return body


def test_predict_answers_every_output_for_known_and_cold_start_for_unknown(client: TestClient) -> None:
    # given the champion served from the online store
    # when two known customers and an unknown one are predicted
    response = client.post("/predict", json={"customer_ids": [1, 2, 10**9]})

    # then known ones get predictions with version and freshness, the unknown one a cold start
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    assert response.headers["x-request-id"] == body["request_id"]
    first, _, unknown = body["predictions"]
    assert first["status"] == "ok"
    assert 0.0 <= first["churn_probability"] <= 1.0
    assert first["expected_orders"] >= 0
    assert first["expected_spend"] >= 0
    assert (
        isinstance(first["persona"], str)
    )
    assert (
        isinstance(first["action"], str)
    )
    assert (
        isinstance(first["segment"], int)
    )
    assert first["features_as_of"]["customer_behavior"].endswith("Z")
    assert first["feature_age_seconds"] > 0
    assert 0.0 < first["p_alive"] <= 1.0  # BG/NBD's P(alive), from the bundle's lifetime model
    assert unknown["status"] == "cold_start"
    assert "unknown customer" in unknown["cold_start_reason"]
    assert unknown["churn_probability"] is None
    assert unknown["p_alive"] is None


def test_predict_1000_ids_in_one_request(client: TestClient) -> None:
    # given the largest allowed batch
    # when predicted
    response = client.post("/predict", json={"customer_ids": list(range(1, 1001))})

    # then every id is answered in order
    assert response.status_code == 200
    assert [p["customer_id"] for p in response.json()["predictions"]] == list(range(1, 1001))


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"customer_ids": ["1"]}, 400, "customer_ids[0]"),
        ({"customer_ids": [1, 2.5]}, 400, "customer_ids[1]"),
        ({"customer_ids": [True]}, 400, "customer_ids[0]"),
        ({"customer_ids": [None]}, 400, "customer_ids[0]"),
        ({"customer_ids": 5}, 400, "customer_ids"),
        ({"customer_ids": [2**63]}, 400, "customer_ids[0]"),
        ({}, 400, "customer_ids"),
        ({"customer_ids": []}, 400, "customer_ids"),
        ({"customer_ids": list(range(1001))}, 413, "customer_ids"),
        ({"customer_ids": [1], "verbose": True}, 400, "verbose"),
        ([1, 2], 400, "body"),
    ],
)
def test_predict_bad_input_is_4xx_naming_the_field(
    client: TestClient, body: object, status: int, field: str
) -> None:
    # given a malformed request
    # when posted
    response = client.post("/predict", json=body)

    # then it is rejected (never a 500) and the field is named
    assert response.status_code == status
    assert _error(response)["field"] == field
    assert field in response.json()["error"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"customer_ids": [NaN]}', "customer_ids[0]"),
        (b'{"customer_ids": [Infinity]}', "customer_ids[0]"),
        (b'{"customer_ids": [1,', "body"),
        (b"", "customer_ids"),
        (b"\xff\xfe", "body"),
    ],
)
def test_predict_non_finite_and_broken_json_are_400(client: TestClient, raw: bytes, field: str) -> None:
    # given a body that is not valid JSON for the schema
    # when posted
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})

    # then 400 naming the field
    assert response.status_code == 400
    assert _error(response)["field"] == field


@pytest.mark.parametrize(
    "content_type", ["application/vnd.bentoml+pickle", "text/plain", "multipart/form-data"]
)
def test_predict_refuses_non_json_content(client: TestClient, content_type: str) -> None:
    # given a pickle (or other non-JSON) body
    # when posted
    response = client.post("/predict", content=b"\x80\x04K\x01.", headers={"Content-Type": content_type})

    # then 415 before anything reads it
    assert response.status_code == 415
    assert _error(response)["field"] == "Content-Type"


def test_oversized_body_is_413(client: TestClient) -> None:
    # given a 5 MB body
    body = b'{"customer_ids": [' + b"1," * 2_500_000 + b"1]}"

    # when posted
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})

    # then 413
    assert response.status_code == 413


def test_predict_features_what_if(client: TestClient, feature_row: dict) -> None:
    # given customer 1's features, and the same with far more recent orders
    busy = {**feature_row, "orders_30d": 30, "orders_90d": 90, "recency_days": 0.5}

    # when predicted from features
    response = client.post(
        "/predict_features", json={"rows": [{"customer_id": 1, "features": feature_row}, {"features": busy}]}
    )

    # then both are predicted; the same features give the same answer as the store
    assert response.status_code == 200
    same, what_if = response.json()["predictions"]
    stored = client.post("/predict", json={"customer_ids": [1]}).json()["predictions"][0]
    assert same["churn_probability"] == pytest.approx(stored["churn_probability"], rel=1e-5)
    assert same["features_as_of"] == {}
    assert what_if["customer_id"] is None
    assert what_if["status"] == "ok"
    assert math.isfinite(what_if["churn_probability"])


@pytest.mark.parametrize(
    ("mutate", "status", "field"),
    [
        (lambda row: {**row, "favourite_colour": "red"}, 400, "rows[0].features.favourite_colour"),
        (lambda row: {k: v for k, v in row.items() if k != "orders_90d"}, 400, "rows[0].features.orders_90d"),
        (lambda row: {**row, "orders_90d": "many"}, 400, "rows[0].features.orders_90d"),
        (lambda row: {**row, "region": 4}, 400, "rows[0].features.region"),
        (lambda row: {**row, "age": {"years": 3}}, 400, "rows[0].features.age"),
    ],
)
def test_predict_features_validates_field_by_field(
    client: TestClient,
    feature_row: dict,
    mutate,
    status: int,
    field: str,
) -> None:
    # given a row with one bad feature
    # when posted
    response = client.post("/predict_features", json={"rows": [{"features": mutate(dict(feature_row))}]})

    # then the exact field is named
    assert response.status_code == status
    assert _error(response)["field"] == field


def test_predict_features_structural_errors(client: TestClient, feature_row: dict) -> None:
    # given structurally wrong requests
    nan_body = json.dumps({"rows": [{"features": {**feature_row, "orders_90d": 1.5}}]}).replace("1.5", "NaN")
    cases = {
        "empty": (client.post("/predict_features", json={"rows": []}), 400, "rows"),
        "too many": (
            client.post("/predict_features", json={"rows": [{"features": feature_row}] * 1001}),
            413,
            "rows",
        ),
        "row field": (
            client.post("/predict_features", json={"rows": [{"features": feature_row, "x": 1}]}),
            400,
            "rows[0].x",
        ),
        "features type": (
            client.post("/predict_features", json={"rows": [{"features": [1, 2]}]}),
            400,
            "rows[0].features",
        ),
        "nan": (
            client.post("/predict_features", content=nan_body, headers={"Content-Type": "application/json"}),
            400,
            "rows[0].features.orders_90d",
        ),
    }

    # then each is a 4xx naming the field
    for name, (response, status, field) in cases.items():
        assert response.status_code == status, name
        assert _error(response)["field"] == field, name


def test_similar_without_text_features_is_503_and_with_an_index_answers(
    client: TestClient, champion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from features.embedding import similarity

    # given no embeddings (persona embed never ran)
    # when similar customers are asked for
    unavailable = client.post("/similar", json={"customer_id": 1, "k": 3})

    # then a clear 503
    assert unavailable.status_code == 503
    assert "persona embed" in _error(unavailable)["error"]

    # given an index of four customers, and a text source that changed since
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    monkeypatch.setattr(
        similarity,
        "load_index",
        lambda settings: similarity.SimilarityIndex.from_arrays([1, 2, 3, 4], vectors),
    )
    source = champion_home / "offline" / "customer_text.parquet"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    # when asked again
    found = client.post("/similar", json={"customer_id": 1, "k": 2})
    missing = client.post("/similar", json={"customer_id": 99, "k": 2})
    bad_k = client.post("/similar", json={"customer_id": 1, "k": 0})

    # then neighbours come best first; unknown customers are 404; k is validated
    assert found.status_code == 200
    assert [n["customer_id"] for n in found.json()["neighbours"]] == [2, 3]
    assert missing.status_code == 404
    assert _error(missing)["field"] == "customer_id"
    assert bad_k.status_code == 400
    assert _error(bad_k)["field"] == "k"


def test_health_and_model_info(client: TestClient) -> None:
    # given a started service
    # when probed
    info = client.post("/model_info", json={}).json()

    # then it is live and ready, and model_info shows the served contract
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert info["model_version"] == "1"
    assert info["champion_version"] == "1"
    assert info["last_error"] is None
    assert "orders_90d" in info["feature_columns"]
    assert "region" in info["string_columns"]
    assert info["views"] == ["customer_profile", "customer_behavior", "customer_text"]


def test_openapi_documents_every_api(client: TestClient) -> None:
    # given the service's OpenAPI document
    spec = client.get("/docs.json").json()

    # when read
    # then every API and its request schema are there
    for path in ("/predict", "/predict_features", "/similar", "/model_info", "/livez", "/readyz"):
        assert path in spec["paths"], path
    predict = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert predict["properties"]["customer_ids"]["maxItems"] == 1000
    assert predict.get("additionalProperties") is False


def test_every_served_row_is_in_the_prediction_log_after_shutdown(
    champion_home: Path, tmp_path: Path
) -> None:
    # given a service on a copy of the home
    from serving.prediction_log import read_prediction_log
    from serving.service import PersonaService
    from tests.conftest import copy_home

    home = copy_home(champion_home, tmp_path / "home")
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("PERSONA_HOME", str(home))
        with TestClient(PersonaService.to_asgi()) as local:
            # when customers are predicted by id and by features
            ids = local.post("/predict", json={"customer_ids": [1, 2, 10**9]}).json()
            row = local.post("/model_info", json={}).json()
            features = {c: None for c in row["feature_columns"]}
            local.post("/predict_features", json={"rows": [{"customer_id": 7, "features": features}]})
        # and the service shuts down cleanly

    # then every row is logged with its features, predictions and cold-start reason
    log = read_prediction_log(home / "serving" / "prediction_log")
    assert len(log) == 4
    assert log["request_id"].iloc[0] == ids["request_id"]
    assert log["endpoint"].tolist() == ["predict"] * 3 + ["predict_features"]
    assert log["customer_id"].tolist() == [1, 2, 10**9, 7]
    assert set(row["feature_columns"]) <= set(log.columns)
    assert {"churn_probability", "expected_orders", "expected_spend", "segment", "persona", "action"} <= set(
        log.columns
    )
    assert log["cold_start_reason"].notna().tolist() == [False, False, True, False]
    assert (log["model_version"] == "1").all()


def test_api_key_is_enforced_on_apis_but_not_health(champion_home: Path) -> None:
    # given a service started with PERSONA_API_KEY
    from serving.service import PersonaService

    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("PERSONA_HOME", str(champion_home))
        patch.setenv("PERSONA_API_KEY", "k-123")
        with TestClient(PersonaService.to_asgi()) as secured:
            # when called with and without the key
            without = secured.post("/predict", json={"customer_ids": [1]})
            with_key = secured.post("/predict", json={"customer_ids": [1]}, headers={"X-API-Key": "k-123"})
            health = secured.get("/readyz")

    # then 401 without it, 200 with it, health open
    assert without.status_code == 401
    assert _error(without)["field"] == "X-API-Key"
    assert with_key.status_code == 200
    assert health.status_code == 200


@pytest.mark.parametrize(
    "literal",
    [b"1e308", b"-1e308", b"1" + b"0" * 400, b"1" + b"0" * 5000, b"99999999999999999999"],
    ids=["1e308", "-1e308", "400-digits", "5000-digits", "1e20"],
)
def test_predict_features_refuses_absurd_magnitudes_with_400_never_500(
    client: TestClient, feature_row: dict, literal: bytes
) -> None:
    # given a valid what-if row whose first numeric feature is an absurd number (as raw JSON)
    numeric = next(name for name, value in feature_row.items() if isinstance(value, float) and name != "age")
    row = {**feature_row, numeric: 0.0}
    body = json.dumps({"rows": [{"features": row}]}).encode()
    body = body.replace(f'"{numeric}": 0.0'.encode(), f'"{numeric}": '.encode() + literal)
    # when posted
    response = client.post("/predict_features", content=body, headers={"Content-Type": "application/json"})
    # then it is a 400 naming the field (or the body, for a number JSON itself refuses), never a 5xx
    assert response.status_code == 400, response.text
    assert _error(response)["field"] in (f"rows[0].features.{numeric}", "body")
