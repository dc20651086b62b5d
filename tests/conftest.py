"""Shared fixtures: every test gets its own PERSONA_HOME; nothing touches the repo's .persona."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def persona_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home per test, with MLflow pointed inside it."""
    home = tmp_path / "persona_home"
    monkeypatch.setenv("PERSONA_HOME", str(home))
    monkeypatch.delenv("PERSONA_PROFILE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home
