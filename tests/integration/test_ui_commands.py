"""``persona ui``: each tool's UI starts on the home's data and answers 200 on its root."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from app import ui
from app.cli import app
from bench.serving_bench import free_port
from core import catalog
from core.errors import PersonaError
from core.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

READY_DEADLINE_S = 120.0  # the poll returns as soon as the root answers 200; this only bounds a hang

HAS_GRPC = importlib.util.find_spec("grpc") is not None


@pytest.mark.parametrize("tool", ["mlflow", "evidently"])  # Feast's UI needs grpcio, not in the lock yet
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
    assert str(catalog.evidently_workspace(settings)) in evidently.argv


def test_a_port_that_clashes_with_prod_mlflow_is_refused_in_one_line(persona_home: Path) -> None:
    result = CliRunner().invoke(app, ["ui", "mlflow", "--port", "5000"])
    assert result.exit_code == 1
    assert "prod MLflow server" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_feast_ui_without_grpc_says_what_to_install(persona_home: Path) -> None:
    assert not HAS_GRPC, "grpcio is installed now: add feast to the start test above"
    with pytest.raises(PersonaError, match="grpcio"):
        ui.check_runnable(ui.ui_launch(load_settings(), "feast"))
