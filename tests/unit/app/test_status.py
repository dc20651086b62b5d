"""``persona status`` of an empty home, ``persona models list`` of an empty registry, ``--version``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from app.cli import app

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()


def _status_json() -> dict:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["sections"]


def test_version_and_shell_completion_are_offered() -> None:
    # when
    version = runner.invoke(app, ["--version"])
    helped = runner.invoke(app, ["--help"])

    # then
    assert version.exit_code == 0
    assert version.stdout.startswith("persona ")
    assert "--install-completion" in helped.stdout
    assert "--show-completion" in helped.stdout


def test_status_of_an_empty_home_says_what_to_run_for_every_section(persona_home: Path) -> None:
    # when
    result = runner.invoke(app, ["status"])
    sections = _status_json()

    # then every section answers, none fails, and each unbuilt one names its command
    assert result.exit_code == 0, result.output
    assert "could not read" not in result.stdout
    for name, section in sections.items():
        if name == "serving":
            assert section["data"]["running"] is False
            continue
        assert section["built"] is False, name
        assert "run `persona " in section["hint"], name
    assert not persona_home.exists()  # a status view creates nothing


def test_models_list_of_an_empty_registry() -> None:
    # when
    result = runner.invoke(app, ["models", "list"])

    # then
    assert result.exit_code == 0
    assert "run `persona train`" in result.stdout


def test_monitoring_shows_the_newest_run_also_within_one_second() -> None:
    from app.status import monitoring_section
    from core import catalog
    from core.settings import load_settings

    # given two monitor runs in the same second (the second folder gets "-2")
    settings = load_settings()
    for name, decision in (("20250101T000000Z", "first"), ("20250101T000000Z-2", "second")):
        folder = catalog.monitoring_reports(settings) / name
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"at": name, "decision": decision}))

    # when
    section = monitoring_section(settings)

    # then
    assert section.data["last_run"]["decision"] == "second"


def test_the_skew_section_shows_a_clean_replay_and_one_that_holds_promotion() -> None:
    from app.status import skew_section
    from core import catalog
    from core.settings import load_settings

    settings = load_settings()
    path = catalog.skew_verdict(settings)
    path.parent.mkdir(parents=True)
    feature = {"feature": "orders_90d", "rate": 0.25}

    # given a clean replay
    path.write_text(json.dumps({"at": "2025-01-01T00:00:00", "blocked": False, "rows": 992,
                                "mismatch_rate": 0.0, "features": []}))
    clean = skew_section(settings)
    # then
    assert clean.built
    assert clean.lines == ["replay 2025-01-01T00:00:00: 992 served rows, max mismatch 0.0%: clean"]

    # given one that holds promotion
    path.write_text(json.dumps({"at": "2025-01-02T00:00:00", "blocked": True, "rows": 40, "mismatch_rate": 0.25,
                                "reason": "orders_90d 25.0% of rows differ", "features": [feature]}))
    held = skew_section(settings)
    # then
    assert not held.built
    assert held.lines[1] == "HOLDS PROMOTION: orders_90d 25.0% of rows differ"
    assert held.data["worst"] == [feature]
