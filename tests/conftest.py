"""Shared fixtures: every test gets its own PERSONA_HOME; nothing touches the repo's .persona.

Under ``CI=true`` a test that would skip because Redis, Postgres or Chromium is missing fails
instead, with the skip's reason: CI must not go green while testing less. Every such skip in
``tests/`` says so with one of :data:`SERVICE_SKIP_PREFIXES` (checked by
``tests/test_ci_skips.py``), which is how the hook below recognises it.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from features.build import write_parquet_atomic
from features.embedding.encoder import EMBEDDING_DIM, Encoded, check_texts

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A skip whose reason starts with one of these means "a service this test needs is missing".
SERVICE_SKIP_PREFIXES = (
    "PRODUCTION SERVICES NOT REACHABLE",
    "REDIS NOT REACHABLE",
    "POSTGRES NOT REACHABLE",
    "CHROMIUM NOT FOUND",
)


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``, as CI systems set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, turn a missing-service skip (in setup or in the test) into a failure with its reason."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason.startswith(SERVICE_SKIP_PREFIXES):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a required service is missing, so this fails instead of skipping: {reason}"


@pytest.fixture(autouse=True)
def persona_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home per test, with MLflow pointed inside it."""
    home = tmp_path / "persona_home"
    monkeypatch.setenv("PERSONA_HOME", str(home))
    monkeypatch.delenv("PERSONA_PROFILE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home



def write_raw(settings, start: str = "1997-01-06", customers: int = 30, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    n = 600
    tx = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, n).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 120 * 24 * 3600, n), unit="s"),
        "amount": rng.gamma(2.0, 20.0, n),
        "discount": rng.choice([0.0, 0.1], n),
        "returned": rng.random(n) < 0.1,
    })
    customers_frame = pd.DataFrame({
        "customer_id": np.arange(1, customers + 1, dtype="int64"),
        "signup_date": t0 - pd.to_timedelta(rng.integers(0, 60, customers), unit="D"),
        "region": rng.choice(["north", "south"], customers),
    })
    sessions = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, 300).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 120 * 24 * 3600, 300), unit="s"),
    })
    reviews = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, 50).astype("int64"),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 120 * 24 * 3600, 50), unit="s"),
        "text": "fine",
        "rating": rng.integers(1, 6, 50),
    })
    for name, frame in {"transactions": tx, "customers": customers_frame, "sessions": sessions,
                        "reviews": reviews}.items():
        write_parquet_atomic(frame, settings.raw_dir / f"{name}.parquet")


class BagOfWordsEncoder:
    """A fast stand-in encoder: hashed bag of words, so shared words mean nearby vectors."""

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.calls: list[list[str]] = []

    @property
    def identity(self) -> str:
        return f"test/bag-of-words|v{self.version}|numpy|f32"

    def encode(self, texts: Sequence[str], progress=None) -> Encoded:
        check_texts(texts)
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), EMBEDDING_DIM), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % EMBEDDING_DIM] += 1.0
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if progress:
            progress(len(texts))
        return Encoded(vectors, np.zeros(len(texts), bool))

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]
