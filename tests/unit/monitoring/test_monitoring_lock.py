"""Single-flight retrain: two triggers at once give one run; cooldown and failures are recorded."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from core.errors import PersonaError
from core.locks import AlreadyRunning, single_flight
from core.settings import PROJECT_ROOT, load_settings
from monitoring.trigger import lock_path, read_last_retrain, retrain

if TYPE_CHECKING:
    from pathlib import Path

TRIGGER = """
import sys, time, pathlib
from types import SimpleNamespace
from core.settings import load_settings
from monitoring.trigger import retrain

scratch = pathlib.Path(sys.argv[1])

def train():
    with open(scratch / "trained.txt", "a") as f:
        f.write("one run\\n")
    while not (scratch / "release").exists():  # hold the lock until the test says so
        time.sleep(0.05)
    return SimpleNamespace(run_id="r1", version="7",
                           decision=SimpleNamespace(promote=True, alias="champion", reason="beats champion"))

print(retrain(load_settings(), train, cooldown_hours=0).status, flush=True)
"""


def _trained(version: str = "2", promote: bool = True) -> SimpleNamespace:
    alias = "champion" if promote else "challenger"
    gate = SimpleNamespace(promote=promote, alias=alias, reason="gate says so")
    return SimpleNamespace(run_id="run", version=version, decision=gate)


def test_two_triggers_at_once_give_one_run_and_one_already_running(tmp_path: Path) -> None:
    # given two trigger processes started together against the same home
    procs = [subprocess.Popen([sys.executable, "-c", TRIGGER, str(tmp_path)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    # when the one that lost the race has finished (the winner holds the lock meanwhile)
    deadline = time.monotonic() + 120
    while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "release").touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    # then exactly one trained
    assert sorted(outputs) == ["already_running", "trained"]
    assert (tmp_path / "trained.txt").read_text().splitlines() == ["one run"]


def test_lock_is_released_after_the_block_and_names_its_holder(tmp_path: Path) -> None:
    # given
    path = tmp_path / "x.lock"
    # when a second holder tries while the first holds it
    with single_flight(path), pytest.raises(AlreadyRunning, match=r"already running \(pid \d+ since"), \
            single_flight(path):
        pass
    # then the lock is free again afterwards
    with single_flight(path):
        pass


def test_retrain_records_its_start_and_a_second_one_meets_the_cooldown() -> None:
    # given
    settings = load_settings()
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    calls = []

    def train() -> SimpleNamespace:
        calls.append(1)
        return _trained("5", promote=False)

    # when two retrains run one after the other within the cooldown
    first = retrain(settings, train, cooldown_hours=6, now=lambda: now)
    second = retrain(settings, train, cooldown_hours=6, now=lambda: now + dt.timedelta(hours=1))
    # then only the first trained
    assert (first.status, first.version, first.promoted, first.alias) == ("trained", "5", False, "challenger")
    assert "kept as challenger" in first.summary()
    assert second.status == "cooldown"
    assert "within the 6 h cooldown" in second.message
    assert calls == [1]
    assert read_last_retrain(settings) == now


def test_cooldown_also_reads_other_sources_under_the_lock() -> None:
    # given MLflow knows of a retrain 2 hours ago
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    # when
    outcome = retrain(load_settings(), lambda: _trained(), cooldown_hours=24,
                      last_retrain_at=lambda: now - dt.timedelta(hours=2), now=lambda: now)
    # then
    assert outcome.status == "cooldown"


def test_a_failing_training_is_reported_not_raised() -> None:
    # given
    def train() -> None:
        raise PersonaError("need at least 2 label-complete snapshots")

    # when
    outcome = retrain(load_settings(), train, cooldown_hours=0)
    # then
    assert outcome.status == "failed"
    assert "label-complete" in outcome.message
    assert outcome.started_at


def test_a_held_lock_means_already_running() -> None:
    # given another holder
    settings = load_settings()
    with single_flight(lock_path(settings)):
        # when
        outcome = retrain(settings, lambda: _trained(), cooldown_hours=0)
    # then
    assert outcome.status == "already_running"
    assert "already running" in outcome.summary()
