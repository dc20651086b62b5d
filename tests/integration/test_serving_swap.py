"""Champion swaps in a running service (in process): no request fails, a broken version is refused."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from tests.conftest import (
    SERVING_ENV,
    copy_home,
    move_champion,
    register_broken_version,
    register_copy_of,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def _until(client: TestClient, condition, timeout: float = 90.0) -> list[dict]:
    """Predict continuously until ``condition(info)`` holds; every answer must be a 200."""
    answers = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.post("/predict", json={"customer_ids": [1, 2]})
        assert response.status_code == 200, response.text
        answers.append(response.json())
        if condition(client.post("/model_info", json={}).json()):
            return answers
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_moving_champion_swaps_without_failing_requests_and_a_broken_one_is_refused(
    champion_home: Path, tmp_path: Path
) -> None:
    # given a service polling the registry every 0.2 s, on its own copy of the home
    from serving.service import PersonaService

    home = copy_home(champion_home, tmp_path / "home")
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVING_ENV:
            patch.delenv(name, raising=False)
        patch.setenv("PERSONA_HOME", str(home))
        patch.setenv("PERSONA_MODEL_POLL_SECONDS", "0.2")
        with TestClient(PersonaService.to_asgi()) as client:
            assert client.post("/predict", json={"customer_ids": [1]}).json()["model_version"] == "1"

            # when champion moves to v2 while requests keep coming
            move_champion(home, register_copy_of(home, "1"))
            answers = _until(client, lambda info: info["model_version"] == "2")

            # then every request was answered and the service now serves v2
            versions = [a["model_version"] for a in answers]
            assert set(versions) <= {"1", "2"}
            assert client.post("/predict", json={"customer_ids": [1]}).json()["model_version"] == "2"

            # when champion moves to a version whose artifacts are not a model
            broken = register_broken_version(home, tmp_path)
            move_champion(home, broken)
            _until(client, lambda info: info["last_error"] is not None)
            info = client.post("/model_info", json={}).json()

            # then v2 keeps serving and model_info says why v3 was refused
            assert info["model_version"] == "2"
            assert info["champion_version"] == broken
            assert (
                f"v{broken} failed to load" in info["last_error"]
            )
            assert (
                "still serving v2" in info["last_error"]
            )
            assert client.get("/readyz").status_code == 200
            assert client.post("/predict", json={"customer_ids": [1]}).json()["model_version"] == "2"
