"""``persona ui``: each tool's UI starts on the home's data and answers 200 on its root."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from app import ui
from app.cli import app
from bench.serving_bench import free_port
from core import catalog
from core.errors import PersonaError
from core.settings import PROJECT_ROOT, load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

READY_DEADLINE_S = 120.0  # the poll returns as soon as the root answers 200; this only bounds a hang


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("tool", ["mlflow", "evidently"])  # Feast's: the plain `feast ui` test below
def test_each_ui_starts_on_the_home_and_answers_200(persona_home: Path, tmp_path: Path, tool: ui.Tool) -> None:
    # given a fresh home and a free port
    launch = ui.ui_launch(load_settings(), tool, free_port())
    log = tmp_path / f"{tool}.log"
    # when the UI starts
    process = ui.start(launch, log)
    try:
        # then its root answers 200 as soon as it is ready
        took = ui.wait_ready(process, launch.url, READY_DEADLINE_S)
        assert ui.answers(launch.url) == 200, log.read_text()[-2000:]
        assert took < READY_DEADLINE_S
    finally:
        ui.stop(process)
    # and stopping it frees the port
    assert process.poll() is not None
    assert ui.answers(launch.url, timeout=0.5) is None


def test_the_launches_read_this_home(persona_home: Path) -> None:
    settings = load_settings()
    mlflow = ui.ui_launch(settings, "mlflow")
    feast = ui.ui_launch(settings, "feast")
    evidently = ui.ui_launch(settings, "evidently")
    assert settings.tracking_uri in mlflow.argv
    assert mlflow.url == "http://127.0.0.1:5055/"
    assert feast.env["PERSONA_HOME"] == str(settings.home)
    assert feast.env["PERSONA_PROJECT"] == settings.project
    assert settings.feast_dir in feast.folders  # SQLite cannot create its file's folder on a fresh home
    assert str(catalog.evidently_workspace(settings)) in evidently.argv


def test_a_port_that_clashes_with_prod_mlflow_is_refused_in_one_line(persona_home: Path) -> None:
    result = CliRunner().invoke(app, ["ui", "mlflow", "--port", "5000"])
    assert result.exit_code == 1
    assert "prod MLflow server" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_feast_ui_without_grpc_says_what_to_install(persona_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an environment without grpcio
    real_find_spec = ui.importlib.util.find_spec
    monkeypatch.setattr(ui.importlib.util, "find_spec", lambda name: None if name == "grpc" else real_find_spec(name))
    # when / then Feast's UI is refused before any child starts, naming the fix
    with pytest.raises(PersonaError, match="grpcio.*make setup"):
        ui.check_runnable(ui.ui_launch(load_settings(), "feast"))


def test_plain_feast_ui_in_the_repo_folder_serves_the_homes_project_with_persona_home_alone(
    champion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a built home and an environment that names only PERSONA_HOME (no other PERSONA_ variable)
    for name in [name for name in os.environ if name.startswith("PERSONA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PERSONA_HOME", str(champion_home))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    launch = ui.UiLaunch("feast", url, [ui._script("feast"), "ui", "--host", "127.0.0.1", "--port", str(port)],
                         cwd=PROJECT_ROOT / "feature_repo")
    log = tmp_path / "feast.log"
    # when `feast ui` starts in feature_repo/, as the README prints it
    process = ui.start(launch, log)
    try:
        ui.wait_ready(process, url, READY_DEADLINE_S)
        # then it lists Persona's project from the home's registry and serves its feature views
        projects = get_json(url + "projects-list.json")
        views = get_json(url + "api/v1/feature_views?project=persona")
    finally:
        ui.stop(process)
    assert projects == {"projects": [{"name": "Persona", "description": "Project: persona", "id": "persona",
                                      "registryPath": "/api/v1"}]}, log.read_text()[-2000:]
    names = {view["spec"]["name"] for view in views["featureViews"]}  # type: ignore[index]
    assert {"customer_behavior", "customer_profile"} <= names
