"""Shared helpers and fixtures for these tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    return load_settings()


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def transactions(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"customer_id": str(i % 3 + 1), "event_timestamp": f"2024-01-{i % 28 + 1:02d}T08:00:00+01:00",
             "amount": f"{i}.50"} for i in range(start, start + n)]
