"""``persona monitor`` runs the uplift step after the monitoring job when an uplift champion exists."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from app.cli import app
from core.errors import PersonaError

runner = CliRunner()


def printed(output: str) -> list[str]:
    """The lines printed, without the blank lines progress bars leave."""
    return [line for line in output.splitlines() if line.strip()]
UPLIFT_SUMMARY = "uplift champion v2: 2025-01-01 -> 2025-03-01\n  uplift_conversion_discount: mean +0.0400 -> +0.0300"


class FakeJob:
    """The monitoring job, reduced to its summary (its own steps are tested in tests/unit/monitoring)."""

    def __init__(self, settings, config) -> None:
        self.settings = settings

    def observe(self, on_progress):
        return None

    def conclude(self, seen, on_progress):
        return SimpleNamespace(summary=lambda: "monitor v3: ok", retrain=None)


@pytest.fixture
def monitored(monkeypatch: pytest.MonkeyPatch, persona_home) -> list:
    monkeypatch.setattr("monitoring.job.MonitorJob", FakeJob)
    calls: list = []

    def monitor_uplift(settings):
        calls.append(settings.home)
        return SimpleNamespace(summary=lambda: UPLIFT_SUMMARY)

    monkeypatch.setattr("campaign.monitor.monitor_uplift", monitor_uplift)
    return calls


def test_persona_monitor_runs_the_uplift_step_and_its_readings_show_in_the_summary(monitored, monkeypatch) -> None:
    # given an uplift champion
    monkeypatch.setattr("campaign.monitor.uplift_champion_version", lambda _settings: "2")

    # when
    out = runner.invoke(app, ["monitor"])

    # then the uplift readings follow the monitor's own summary, from one run of the uplift step
    assert out.exit_code == 0, out.output
    assert printed(out.output) == ["monitor v3: ok", *UPLIFT_SUMMARY.splitlines()]
    assert len(monitored) == 1


def test_without_an_uplift_champion_persona_monitor_prints_only_its_own_summary(monitored, monkeypatch) -> None:
    # given no uplift champion
    monkeypatch.setattr("campaign.monitor.uplift_champion_version", lambda _settings: None)

    # when
    out = runner.invoke(app, ["monitor"])

    # then
    assert out.exit_code == 0, out.output
    assert printed(out.output) == ["monitor v3: ok"]
    assert monitored == []


def test_a_failing_uplift_step_is_one_line_and_leaves_the_monitor_result_alone(monitored, monkeypatch) -> None:
    # given an uplift champion whose readings cannot be taken
    monkeypatch.setattr("campaign.monitor.uplift_champion_version", lambda _settings: "2")

    def broken(_settings):
        raise PersonaError("no feature snapshot to monitor the uplift model on; run `persona features build`")

    monkeypatch.setattr("campaign.monitor.monitor_uplift", broken)

    # when
    out = runner.invoke(app, ["monitor"])

    # then the monitor still succeeds, and one line says what the uplift step lacked
    assert out.exit_code == 0, out.output
    lines = printed(out.output)
    assert lines[0] == "monitor v3: ok"
    assert len(lines) == 2
    assert lines[1].startswith("uplift monitoring failed: PersonaError: no feature snapshot")
