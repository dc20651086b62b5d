"""The README's "your own features, your own labels" walkthrough, run as written.

The feature view module is taken from the README's code block (only the parquet path is pointed
at the test's file), saved in the user's own folder named by ``PERSONA_FEATURE_REPO`` (nothing is
written into the source tree), applied, materialized and trained on with a labels table through the
CLI; the run's lineage must name the new service and its features.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from core.settings import FEATURE_REPO_DIR, PROJECT_ROOT, load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

SECTION = "## For data scientists: your own features, your own labels"


def _walkthrough() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.index("\n## ", start + len(SECTION))
    return readme[start:end]


def _blocks(section: str, language: str) -> list[str]:
    pattern = re.compile(rf"```{language}\n(.*?)```", re.S)
    return [re.sub(r"(?m)^   ", "", block) for block in pattern.findall(section)]


def test_readme_walkthrough_blocks_are_present() -> None:
    # given the README section
    section = _walkthrough()
    # then it carries one python module and the train commands this test runs
    python, bash = _blocks(section, "python"), _blocks(section, "bash")
    assert len(python) == 1
    assert "FeatureService" in python[0]
    assert 'path="/data/loyalty.parquet"' in python[0]
    assert any("--labels upsell_labels.parquet --target bought_upgrade" in b for b in bash)


def _loyalty_frame(customers: np.ndarray, times: pd.DatetimeIndex, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(c, t) for t in times for c in customers]
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp"])
    frame["points"] = rng.gamma(2.0, 50.0, len(frame)).astype("float32")
    frame["tier_level"] = rng.integers(0, 4, len(frame)).astype("int64")
    return frame


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_readme_walkthrough_runs_as_written(
    persona_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from synthetic.generator import GenerateConfig, generate_dataset

    # given a home with generated data and built offline sources
    paths = generate_dataset(
        GenerateConfig(customers=200, days=200, seed=11, start=pd.Timestamp("2024-01-01")), tmp_path / "gen"
    )
    settings = load_settings()
    ingest_files(settings, {t: paths[t] for t in ("customers", "transactions", "sessions", "reviews")})
    build_offline_sources(settings)
    behavior = pd.read_parquet(settings.offline_dir / "customer_behavior.parquet")
    times = pd.DatetimeIndex(sorted(behavior["event_timestamp"].unique()))[-8:]
    customers = np.sort(behavior["customer_id"].unique())
    loyalty_path = tmp_path / "loyalty.parquet"
    _loyalty_frame(customers, times).to_parquet(loyalty_path, index=False)

    # and labels: customer_id, event_timestamp, one binary column (upgrades follow loyalty points)
    loyalty = pd.read_parquet(loyalty_path)
    labels = loyalty[loyalty["event_timestamp"].isin(times[-6:])][["customer_id", "event_timestamp"]].copy()
    merged = labels.merge(loyalty, on=["customer_id", "event_timestamp"])
    labels["bought_upgrade"] = (merged["points"].to_numpy() > np.median(merged["points"])).astype(int)
    labels_path = tmp_path / "upsell_labels.parquet"
    labels.to_parquet(labels_path, index=False)

    # and the README's module, saved in the data scientist's own folder that the setting names
    section = _walkthrough()
    module = _blocks(section, "python")[0].replace("/data/loyalty.parquet", str(loyalty_path))
    user_repo = tmp_path / "my_features"
    user_repo.mkdir()
    (user_repo / "loyalty.py").write_text(module)
    monkeypatch.setenv("PERSONA_FEATURE_REPO", str(user_repo))
    packaged = _tree(FEATURE_REPO_DIR)
    command = next(
        shlex.split(line)
        for block in _blocks(section, "bash")
        for line in block.splitlines()
        if "--target bought_upgrade" in line
    )
    assert command[:2] == ["persona", "train"]
    args = [str(labels_path) if a == "upsell_labels.parquet" else a for a in command[1:]]
    runner = CliRunner()

    # when the walkthrough's steps run: apply, materialize, train on the labels
    applied = runner.invoke(app, ["features", "apply"])
    materialized = runner.invoke(app, ["features", "materialize"])
    trained = runner.invoke(app, args)

    # then the view and service are registered from the user's file and served, and the run's lineage names them
    assert applied.exit_code == 0, applied.output
    assert f"view loyalty: 2 features  ({user_repo / 'loyalty.py'})" in applied.output
    assert f"service upsell_model_v1  ({user_repo / 'loyalty.py'})" in applied.output
    assert _tree(FEATURE_REPO_DIR) == packaged  # nothing was written into the source tree
    assert materialized.exit_code == 0, materialized.output
    assert trained.exit_code == 0, trained.output
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.feature_service = 'upsell_model_v1'")
    assert len(runs) == 1
    features = runs.iloc[0]["tags.feature_list"]
    assert "points" in features
    assert "tier_level" in features
    assert "recency_days" in features
    assert runs.iloc[0]["metrics.bought_upgrade_roc_auc"] > 0.5  # labels follow points, which the model now sees
