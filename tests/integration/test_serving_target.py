"""A real ``persona serve`` serving custom targets (``predict_target``) from a home without transactions.

One home per module: the user's loyalty features and two label files, ``upgraded`` and ``churn``
(``persona-upgraded``, ``persona-churn``; no persona champion at all), served by one server that
polls the registry every half second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from bench.serving_bench import free_port, stop, wait_http
from core.settings import PROJECT_ROOT
from tests.conftest import register_copy_of
from tests.integration.custom_target_home import (
    LoyaltySources,
    build_custom_target_home,
    custom_env,
    run_cli,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

PERSONA = str(Path(sys.executable).with_name("persona"))
TARGETS = ("upgraded", "churn")


@dataclass
class Served:
    """The module's home and the server on it."""

    home: Path
    unmaterialized: Path
    sources: LoyaltySources
    url: str
    folder: Path

    def post(self, body: object, path: str = "/predict_target") -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=60)

    def scores(self, model: str) -> pd.DataFrame:
        """``persona score --model MODEL`` of the home, as written."""
        out = self.folder / f"{model}-{time.monotonic_ns()}.parquet"
        with custom_env(self.home, self.sources.views):
            run_cli(CliRunner(), ["score", "--model", model, "--out", str(out)])
        return pd.read_parquet(out)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The home (trained, materialized) and ``persona serve`` on it, stopped afterwards."""
    folder = tmp_path_factory.mktemp("target")
    home, unmaterialized = folder / "home", folder / "unmaterialized"
    sources = build_custom_target_home(home, folder, TARGETS, before_materialize=unmaterialized)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONA_", "MLFLOW_"))}
    env.update({"PERSONA_HOME": str(home), "PERSONA_FEATURE_REPO": str(sources.views), "HF_HUB_OFFLINE": "1"})
    port = free_port()
    with open(folder / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [PERSONA, "serve", "--port", str(port), "--poll-seconds", "0.5"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(port, "/livez", 300, proc)  # readiness is a test of its own
        yield Served(home, unmaterialized, sources, f"http://127.0.0.1:{port}", folder)
    finally:
        stop(proc)


def _predictions(response: httpx.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    return pd.DataFrame(response.json()["predictions"])


def test_a_target_trained_without_transactions_serves_what_persona_score_writes(served: Served) -> None:
    # given persona-upgraded's champion scored in batch (offline features at the latest snapshot)
    scores = served.scores("persona-upgraded")

    # when every scored customer and an unknown one are asked of the server (online features)
    ids = [*scores["customer_id"].tolist(), 10**9]
    response = served.post({"target": "upgraded", "customer_ids": ids})

    # then each known customer's prediction is the number score wrote, from the same version
    answer = _predictions(response)
    body = response.json()
    assert body["model"] == "persona-upgraded"
    assert body["model_version"] == "1"
    known, unknown = answer.iloc[:-1], body["predictions"][-1]
    assert (known["status"] == "ok").all()
    assert known["customer_id"].tolist() == scores["customer_id"].tolist()
    np.testing.assert_allclose(
        known["prediction"].to_numpy(float), scores["prediction"].to_numpy(float), rtol=0, atol=1e-9
    )
    assert set(known["model_version"]) == set(scores["model_version"].astype(str)) == {"1"}
    # and the unknown customer is a cold start with the reason, as /predict answers it
    assert unknown["status"] == "cold_start"
    assert unknown["prediction"] is None
    assert "unknown customer" in unknown["cold_start_reason"]


def test_a_server_with_custom_targets_only_is_ready_and_says_which(served: Served) -> None:
    # given the module's server: no persona champion, champions of persona-upgraded and persona-churn
    # when its readiness is asked (as a probe does, for a few seconds after start)
    deadline = time.monotonic() + 10
    ready = httpx.get(served.url + "/readyz", timeout=30)
    while ready.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.25)
        ready = httpx.get(served.url + "/readyz", timeout=30)
    info = served.post({}, path="/model_info").json()

    # then it is ready (a readiness probe lets traffic in) and says it serves the custom targets
    assert ready.status_code == 200, ready.text
    assert info["ready"] is True
    assert info["ready_reason"] == "no persona champion; serving custom targets: persona-churn, persona-upgraded"


def test_a_target_named_churn_is_served_by_persona_churn_not_the_builtin_churn(served: Served) -> None:
    # given a custom target named `churn` (persona-churn) and no persona model at all
    scores = served.scores("persona-churn")

    # when it is asked for, and the built-in /predict too
    response = served.post({"target": "churn", "customer_ids": [1, 2, 3]})
    builtin = served.post({"customer_ids": [1, 2, 3]}, "/predict")

    # then persona-churn answers with its own prediction, equal to its batch score
    answer = _predictions(response)
    assert response.json()["model"] == "persona-churn"
    assert "churn_probability" not in answer.columns
    np.testing.assert_allclose(
        answer["prediction"].to_numpy(float),
        scores.set_index("customer_id").loc[[1, 2, 3], "prediction"].to_numpy(float),
        rtol=0,
        atol=1e-9,
    )
    # and the built-in churn output is not served: there is no persona champion
    assert builtin.status_code == 503
    assert "no model loaded" in builtin.json()["error"]


def test_target_predictions_go_to_a_prediction_log_of_their_own(served: Served) -> None:
    # given a request served by persona-upgraded
    from core import catalog
    from core.settings import load_settings
    from serving.prediction_log import read_prediction_log

    response = served.post({"model": "persona-upgraded", "customer_ids": [7, 8]})
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    settings = load_settings(home=served.home)

    # when the log is flushed (every 2 s)
    deadline, rows = time.monotonic() + 30, pd.DataFrame()
    while time.monotonic() < deadline:
        log = read_prediction_log(catalog.target_prediction_log(settings, "persona-upgraded"))
        rows = log[log["request_id"] == request_id]
        if len(rows) == 2:
            break
        time.sleep(0.5)

    # then its rows are in persona-upgraded's log with the features and predictions served, none in persona's
    assert rows["customer_id"].tolist() == [7, 8]
    assert set(rows["endpoint"]) == {"predict_target"}
    np.testing.assert_allclose(
        rows["prediction"].to_numpy(float), [p["prediction"] for p in response.json()["predictions"]], rtol=0, atol=0
    )
    assert {"points", "visits"} <= set(rows.columns)
    assert read_prediction_log(catalog.prediction_log(settings)).empty


@pytest.mark.parametrize(
    ("body", "status", "field", "says"),
    [
        ({"target": "nope", "customer_ids": [1]}, 404, "target", "persona-nope"),
        ({"target": "upgraded", "version": 99, "customer_ids": [1]}, 404, "version", "no version 99"),
        ({"customer_ids": [1]}, 400, "target", "required"),
        ({"target": "upgraded", "model": "persona-churn", "customer_ids": [1]}, 400, "model", "persona-upgraded"),
        ({"model": "persona", "customer_ids": [1]}, 400, "model", "/predict"),
        ({"target": 5, "customer_ids": [1]}, 400, "target", "string"),
        ({"target": "upgraded", "version": "1", "customer_ids": [1]}, 400, "version", "integer"),
        ({"target": "upgraded", "customer_ids": ["1"]}, 400, "customer_ids[0]", "integer"),
        ({"target": "upgraded", "customer_ids": []}, 400, "customer_ids", "at least 1"),
        ({"target": "upgraded", "customer_ids": list(range(1001))}, 413, "customer_ids", "at most 1000"),
        ({"target": "upgraded", "customer_ids": [1], "explain": True}, 400, "explain", "unknown field"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(served: Served, body: dict, status: int, field: str, says: str) -> None:
    # given a request the caller must fix
    # when posted
    response = served.post(body)

    # then it is refused with the status, the field and what was wrong (never a 500)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert says in response.json()["error"]


def test_a_model_without_champion_is_409_and_served_by_version(served: Served) -> None:
    # given persona-draft: a registered model (v1, signed) that no one promoted
    from core.settings import load_settings
    from model.registry import configure_mlflow
    from model.trust import record_and_sign

    settings = load_settings(home=served.home)
    client = configure_mlflow(settings)
    source = client.get_model_version("persona-upgraded", "1")
    client.create_registered_model("persona-draft")
    draft = client.create_model_version(
        "persona-draft",
        source.source,
        run_id=source.run_id,
        tags=dict(source.tags or {}),
        model_id=getattr(source, "model_id", None),
    )
    record_and_sign(client, settings, "persona-draft", str(draft.version))

    # when its champion is asked for, then version 1
    champion = served.post({"target": "draft", "customer_ids": [1]})
    pinned = served.post({"target": "draft", "version": 1, "customer_ids": [1]})

    # then the champion is 409 saying to promote or pass a version; the version answers
    assert champion.status_code == 409, champion.text
    assert champion.json()["field"] == "version"
    assert "promote" in champion.json()["error"]
    assert '"version"' in champion.json()["error"]
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["model_version"] == "1"


def test_an_unmaterialized_store_is_503_saying_what_to_run(served: Served) -> None:
    # given the same home before `persona features materialize`, served in process
    from starlette.testclient import TestClient

    from serving.service import PersonaService

    with custom_env(served.unmaterialized, served.sources.views), TestClient(PersonaService.to_asgi()) as client:
        # when a known customer is asked for
        response = client.post("/predict_target", json={"target": "upgraded", "customer_ids": [1, 2]})

    # then 503 naming the view and the command
    assert response.status_code == 503, response.text
    assert "loyalty" in response.json()["error"]
    assert "persona features materialize" in response.json()["error"]


def test_promoting_a_new_version_swaps_the_served_champion_without_failing_requests(served: Served) -> None:
    # given persona-churn served (v1)
    first = served.post({"target": "churn", "customer_ids": [1]})
    assert first.json()["model_version"] == "1"

    # when v2 is registered and promoted by hand (`persona promote --model`) while requests keep coming
    version = register_copy_of(served.home, "1", name="persona-churn")
    with custom_env(served.home, served.sources.views):
        said = run_cli(CliRunner(), ["promote", "--model", "persona-churn", "--version", version,
                                     "--reason", "swap test"])
    assert "persona-churn" in said
    seen, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        response = served.post({"target": "churn", "customer_ids": [1]})
        assert response.status_code == 200, response.text
        seen.append(response.json()["model_version"])
        if seen[-1] == version:
            break
        time.sleep(0.1)

    # then every request was answered and the new champion serves, with v1's numbers (same artifacts)
    assert seen[-1] == version == "2"
    assert set(seen) <= {"1", "2"}
    assert response.json()["predictions"][0]["prediction"] == first.json()["predictions"][0]["prediction"]


def test_promote_names_an_unknown_model_in_one_line(served: Served) -> None:
    # given the home's registry, which has no model persona-nope
    # when a version of it is promoted by hand
    with custom_env(served.home, served.sources.views):
        result = CliRunner().invoke(app, ["promote", "--model", "persona-nope", "--version", "1"])

    # then the command fails in one line naming the model
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.output
    assert "'persona-nope' has no version 1" in lines[0]


def test_forget_erases_a_customer_from_a_targets_prediction_log(served: Served) -> None:
    # given customer 11's predictions in persona-upgraded's own log (flushed every 2 s)
    from core import catalog
    from core.settings import load_settings
    from serving.prediction_log import read_prediction_log

    assert served.post({"target": "upgraded", "customer_ids": [11, 12]}).status_code == 200
    settings = load_settings(home=served.home)
    deadline, logged = time.monotonic() + 30, pd.DataFrame()
    while time.monotonic() < deadline:
        logged = read_prediction_log(catalog.target_prediction_log(settings, "persona-upgraded"))
        if {11, 12} <= set(logged["customer_id"]):
            break
        time.sleep(0.5)
    assert {11, 12} <= set(logged["customer_id"])
    # and the write-ahead segments those rows came through deleted (the flusher does so just after
    # writing parquet; a segment still there would rightly be reported by forget's scan as a leftover)
    wal = catalog.target_prediction_log(settings, "persona-upgraded") / "_wal"
    while list(wal.glob("*.wal")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(wal.glob("*.wal"))

    # when customer 11 is erased
    with custom_env(served.home, served.sources.views):
        run_cli(CliRunner(), ["forget", "--customer-id", "11"])

    # then the target's log keeps customer 12 and has no row of customer 11
    kept = read_prediction_log(catalog.target_prediction_log(settings, "persona-upgraded"))
    assert 11 not in set(kept["customer_id"])
    assert 12 in set(kept["customer_id"])
