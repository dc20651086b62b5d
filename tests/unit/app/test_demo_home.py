"""The demo never deletes what it did not create; its ports never clash with prod; whole numbers."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from app.demo import DemoConfig, run_demo
from app.demo_home import PROD_PORTS, claim_home, free_port, materialize_summary, new_home
from core import catalog
from core.errors import PersonaError
from core.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path


def test_each_run_gets_a_new_marked_home_and_earlier_files_survive(persona_home: Path) -> None:
    # given someone's files under the demo folder (an earlier run, a note)
    base = catalog.demo_runs(load_settings())
    base.mkdir(parents=True)
    (base / "notes.txt").write_text("keep me")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    # when two runs start in the same second
    first, second = new_home(base, now), new_home(base, now)

    # then both are new, marked as the demo's, and nothing else changed
    assert first != second
    assert first.parent == second.parent == base
    assert catalog.demo_marker(first).exists()
    assert catalog.demo_marker(second).exists()
    assert (base / "notes.txt").read_text() == "keep me"


def test_a_demo_into_a_folder_with_files_refuses_and_deletes_nothing(tmp_path: Path) -> None:
    # given a folder with someone's file
    home = tmp_path / "taken"
    home.mkdir()
    (home / "mlflow.db").write_text("history")

    # when / then
    with pytest.raises(PersonaError, match="not empty"):
        run_demo(DemoConfig(), home=home)
    assert (home / "mlflow.db").read_text() == "history"
    assert sorted(p.name for p in home.iterdir()) == ["mlflow.db"]


def test_an_empty_folder_is_claimed_and_marked(tmp_path: Path) -> None:
    # when
    home = claim_home(tmp_path / "new")

    # then
    assert catalog.demo_marker(home).exists()


def test_ports_are_free_and_never_the_prod_ones() -> None:
    # when
    ports = {free_port() for _ in range(20)}

    # then
    assert not ports & set(PROD_PORTS)


def test_materialize_summary_keeps_whole_numbers() -> None:
    # given materialize's lines, with thousands separators
    lines = [
        "customer_behavior: materialized 2,743 rows, 2025-01-04T23:59:59+00:00 -> 2025-07-20T00:00:01+00:00",
        "customer_text: up to date (materialized until 2025-07-20T00:00:01+00:00)",
    ]

    # when / then
    assert materialize_summary(lines) == (
        "customer_behavior: materialized 2,743 rows; "
        "customer_text: up to date (materialized until 2025-07-20T00:00:01+00:00)"
    )
