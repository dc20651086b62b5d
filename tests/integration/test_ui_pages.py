"""MLflow's and Feast's UIs, started by ``persona ui``, draw Persona's data in headless Chromium.

Both UIs are JavaScript apps: their root answering 200 (``test_ui_commands``) says nothing about
what a user sees. Here each starts on a home with a champion, Chromium loads the page a user would
open (the champion's version page; the feature views), and the test reads the DOM after the app
rendered it and checks the screenshot is not blank. Both servers start at once (they start in
10-25 s each on two shared cores), so the module costs about one start.

Needs Debian's ``chromium`` (``make browser``); under ``CI=true`` a missing one fails.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from app import ui
from bench.serving_bench import free_port
from core.settings import load_settings
from model.registry import configure_mlflow
from tests.conftest import dominant_colour_share, render_in_chromium

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

READY_DEADLINE_S = 120.0  # the poll returns as soon as the root answers 200; this only bounds a hang
BLANK_SHARE = 0.9  # a page whose one colour covers more than this is blank (a bare text line covers 99.9%)


@pytest.fixture(scope="module")
def uis(champion_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """MLflow's and Feast's UIs on the champion home, started together: tool -> URL."""
    settings = load_settings(home=champion_home)
    logs = tmp_path_factory.mktemp("ui-logs")
    launches = {tool: ui.ui_launch(settings, tool, free_port()) for tool in ("mlflow", "feast")}
    processes = {tool: ui.start(launch, logs / f"{tool}.log") for tool, launch in launches.items()}
    try:
        for tool, launch in launches.items():
            ui.wait_ready(processes[tool], launch.url, READY_DEADLINE_S)
        yield {tool: launch.url for tool, launch in launches.items()}
    finally:
        for process in processes.values():
            ui.stop(process)


def visible_text(dom: str) -> str:
    """The DOM's text, tags and styles removed, whitespace collapsed (scripts are already gone)."""
    text = re.sub(r"<style\b[^>]*>.*?</style>", " ", dom, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text).replace("&nbsp;", " ")
    return re.sub(r"\s+", " ", text)


def test_mlflow_ui_draws_the_champions_version_page(uis: dict[str, str], champion_home: Path, tmp_path: Path) -> None:
    # given the champion as the registry holds it: its name, version, readable run name and description
    settings = load_settings(home=champion_home)
    client = configure_mlflow(settings)
    champion = client.get_model_version_by_alias(settings.registered_model, "champion")
    run_name = client.get_run(champion.run_id).info.run_name
    png = tmp_path / "mlflow.png"
    # when Chromium opens the version page a user follows from `persona models list`
    page = f"{uis['mlflow']}#/models/{settings.registered_model}/versions/{champion.version}"
    text = visible_text(render_in_chromium(page, tmp_path / "profile", png))
    # then the app drew the version with its alias, the run that made it and the gate's reason
    assert f"{settings.registered_model} Version {champion.version}" in text, text[:2000]
    assert "Aliases : @ champion" in text, text[:2000]
    assert f"Source Run : {run_name}" in text, text[:2000]
    assert champion.description, "the gate writes its reason into the version description"
    assert champion.description in text, text[:2000]
    # and the screenshot is a drawn page, not a blank one
    assert dominant_colour_share(png) < BLANK_SHARE


def test_feast_ui_draws_personas_feature_views(uis: dict[str, str], champion_home: Path, tmp_path: Path) -> None:
    # given Feast's UI on the home's registry
    project = load_settings(home=champion_home).project
    png = tmp_path / "feast.png"
    # when Chromium opens the project's feature views
    text = visible_text(render_in_chromium(f"{uis['feast']}p/{project}/feature-view", tmp_path / "profile", png))
    # then the app listed Persona's views, read from the home's registry
    for name in ("customer_behavior", "customer_profile", "customer_text"):
        assert name in text, text[:2000]
    # and the screenshot is a drawn page, not a blank one
    assert dominant_colour_share(png) < BLANK_SHARE
