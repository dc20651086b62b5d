"""``persona serve``: checks before handing over to ``bentoml serve``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from app.cli import app
from core.errors import PersonaError
from core.settings import load_settings
from serving.launch import serve_command

if TYPE_CHECKING:
    from pathlib import Path


def test_serve_in_an_empty_home_fails_with_one_line(persona_home: Path) -> None:
    # given a home with nothing materialized
    # when `persona serve` runs
    result = CliRunner().invoke(app, ["serve", "--port", "3999"])

    # then it exits 1 saying what to run first
    assert result.exit_code == 1
    assert "persona features materialize" in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_serve_in_production_without_a_key_is_refused(
    persona_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the production profile and no PERSONA_API_KEY
    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    monkeypatch.delenv("PERSONA_SERVING_AUTH", raising=False)

    # when the serve command is prepared
    # then it refuses before starting anything
    with pytest.raises(PersonaError, match="PERSONA_API_KEY"):
        serve_command(load_settings(profile="prod"))


@pytest.mark.integration
def test_serve_command_runs_bentoml_on_this_home(served_env: Path) -> None:
    # given a home with a champion
    settings = load_settings()

    # when the serve command is prepared
    command, env = serve_command(settings, host="0.0.0.0", port=3123, poll_seconds=2.5)

    # then it runs the service through bentoml with this home and poll interval
    assert command[1:5] == ["-m", "bentoml", "serve", "serving.service:PersonaService"]
    assert (
        command[command.index("--port") + 1] == "3123"
    )
    assert (
        command[command.index("--host") + 1] == "0.0.0.0"
    )
    assert env["PERSONA_HOME"] == str(served_env)
    assert env["PERSONA_MODEL_POLL_SECONDS"] == "2.5"


@pytest.mark.integration
def test_serve_without_a_champion_needs_wait_for_model(
    champion_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a home with an online store but an empty registry
    import shutil

    home = tmp_path / "home"
    shutil.copytree(champion_home / "feast", home / "feast")
    monkeypatch.setenv("PERSONA_HOME", str(home))

    # when the serve command is prepared with and without --wait-for-model
    with pytest.raises(PersonaError, match="persona train"):
        serve_command(load_settings())
    command, _ = serve_command(load_settings(), wait_for_model=True)

    # then only the waiting variant starts
    assert "serving.service:PersonaService" in command


def test_the_poll_interval_comes_from_settings_and_the_environment_stays_untouched(persona_home: Path) -> None:
    import os

    from core import catalog
    from serving.runtime import RuntimeOptions

    # given a home with an online store and a poll interval in the settings
    settings = load_settings(model_poll_seconds=4)
    catalog.online_store_db(settings).parent.mkdir(parents=True)
    catalog.online_store_db(settings).touch()
    before = dict(os.environ)

    # when the serve command is prepared without --poll-seconds
    _, env = serve_command(settings, wait_for_model=True)

    # then the child gets the settings' interval in its own environment, ours is unchanged
    assert env["PERSONA_MODEL_POLL_SECONDS"] == "4.0"
    assert dict(os.environ) == before
    # and the served process polls at it (retrying a failed version 5 polls later)
    assert RuntimeOptions.from_settings(load_settings(model_poll_seconds=4)) == RuntimeOptions(4.0, 20.0)
    assert RuntimeOptions.from_settings(load_settings()) == RuntimeOptions()
