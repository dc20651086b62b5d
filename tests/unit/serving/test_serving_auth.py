"""API-key and request-guard middleware on a tiny ASGI app."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.errors import PersonaError
from core.settings import load_settings
from serving.auth import ApiKeyMiddleware, resolve_api_key
from serving.guard import RequestGuardMiddleware, field_path

if TYPE_CHECKING:
    from starlette.requests import Request


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"got": len(await request.body())})


async def _invalid(request: Request) -> JSONResponse:
    # what BentoML answers when pydantic validation fails
    return JSONResponse(
        {
            "error": "1 validation error for Input",
            "detail": [
                {"type": "int_type", "loc": ["customer_ids", 2], "msg": "Input should be a valid integer"}
            ],
        },
        status_code=400,
    )


def _app(key: str | None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/predict", _echo, methods=["POST"]),
            Route("/invalid", _invalid, methods=["POST"]),
            Route("/livez", lambda r: JSONResponse({})),
            Route("/readyz", lambda r: JSONResponse({})),
        ]
    )
    guarded = RequestGuardMiddleware(app, api_paths=("/predict", "/invalid"), max_body_bytes=1000)
    return ApiKeyMiddleware(guarded, api_key=key)  # type: ignore[return-value]


def test_without_the_key_apis_answer_401_and_health_stays_open() -> None:
    # given an app protected by a key
    client = TestClient(_app("s3cret"))

    # when called without, with a wrong, and with the right key
    missing = client.post("/predict", json={})
    wrong = client.post("/predict", json={}, headers={"X-API-Key": "nope"})
    right = client.post("/predict", json={}, headers={"X-API-Key": "s3cret"})
    bearer = client.post("/predict", json={}, headers={"Authorization": "Bearer s3cret"})

    # then only the right key passes; health checks need none
    assert (missing.status_code, wrong.status_code, right.status_code, bearer.status_code) == (
        401,
        401,
        200,
        200,
    )
    assert "X-API-Key" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_without_a_configured_key_everything_is_open() -> None:
    # given no key
    client = TestClient(_app(None))

    # when an API is called without a key
    # then it answers
    assert client.post("/predict", json={}).status_code == 200


def test_the_production_profile_refuses_to_serve_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # given the prod profile and no key
    monkeypatch.delenv("PERSONA_SERVING_AUTH", raising=False)
    prod = load_settings(profile="prod")

    # when the key is resolved
    # then it is an error unless auth is switched off explicitly; a key turns auth on anywhere
    with pytest.raises(PersonaError, match="PERSONA_API_KEY"):
        resolve_api_key(prod)
    assert resolve_api_key(load_settings(profile="prod", api_key="k")) == "k"
    assert resolve_api_key(load_settings(profile="local")) is None
    assert resolve_api_key(load_settings(profile="local", api_key="k")) == "k"
    assert resolve_api_key(load_settings(profile="prod", serving_auth="off")) is None
    monkeypatch.setenv("PERSONA_SERVING_AUTH", "off")
    assert resolve_api_key(load_settings(profile="prod")) is None
    monkeypatch.setenv("PERSONA_SERVING_AUTH", "maybe")
    with pytest.raises(PersonaError, match="PERSONA_SERVING_AUTH"):
        resolve_api_key(load_settings(profile="prod"))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.bentoml+pickle",
        "text/plain",
        "multipart/form-data; b=x",
        "application/x-www-form-urlencoded",
    ],
)
def test_non_json_bodies_are_refused_with_415(content_type: str) -> None:
    # given an open app
    client = TestClient(_app(None))

    # when a non-JSON body is posted
    response = client.post("/predict", content=b"\x80\x04data", headers={"Content-Type": content_type})

    # then it is refused before the app sees it
    assert response.status_code == 415
    assert response.json()["field"] == "Content-Type"
    assert ("pickle" in response.json()["error"]) == ("pickle" in content_type)


def test_oversized_bodies_are_413_with_or_without_content_length() -> None:
    # given a 1000-byte limit
    client = TestClient(_app(None))
    body = json.dumps({"x": "y" * 2000}).encode()

    # when a larger body is sent with a Content-Length, and chunked without one
    sized = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    chunked = client.post(
        "/predict", content=iter([body[:600], body[600:]]), headers={"Content-Type": "application/json"}
    )
    small = client.post("/predict", content=iter([b"{}", b" "]), headers={"Content-Type": "application/json"})

    # then both oversized ones are 413 and a small chunked body still arrives whole
    assert (sized.status_code, chunked.status_code) == (413, 413)
    assert small.status_code == 200
    assert small.json() == {"got": 3}


def test_validation_400s_are_rewritten_to_name_the_field() -> None:
    # given BentoML's generic validation message
    client = TestClient(_app(None))

    # when the app answers 400 with pydantic details
    response = client.post("/invalid", json={})

    # then the error names the field
    assert response.status_code == 400
    assert response.json()["field"] == "customer_ids[2]"
    assert response.json()["error"] == "customer_ids[2]: Input should be a valid integer"


def test_field_path_formats_pydantic_locations() -> None:
    # given pydantic locations
    # when formatted
    # then list positions are bracketed and the empty location is the body
    assert field_path(["rows", 0, "features", "age"]) == "rows[0].features.age"
    assert field_path([]) == "body"
