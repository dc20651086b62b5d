"""Custom features and labels stand alone: no transactions, the user's own views, through the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.integration.custom_target_home import CUSTOMERS, run_cli, write_loyalty_sources

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_labels_and_own_views_train_score_and_serve_without_transactions(
    persona_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a home with nothing ingested, the user's loyalty features and a labels file naming the same customers
    sources = write_loyalty_sources(tmp_path)
    points = sources.points
    monkeypatch.setenv("PERSONA_FEATURE_REPO", str(sources.views))
    runner = CliRunner()
    # when the views are applied and materialized, a model trained on the labels and scored
    applied = run_cli(runner, ["features", "apply"])
    run_cli(runner, ["features", "materialize"])
    trained = run_cli(runner, ["train", "--labels", str(sources.label_files["upgraded"]), "--target", "upgraded",
                            "--feature-service", "upsell_model_v1"])
    run_cli(runner, ["score", "--model", "persona-upgraded", "--version", "1", "--out", str(tmp_path / "s.parquet")])
    # then apply says Persona's own views are empty, training used every labelled customer,
    assert "no transactions ingested" in applied
    assert "view loyalty: 2 features" in applied
    assert "registered persona-upgraded v1" in trained
    assert "240 rows" in trained
    assert "60 rows" in trained
    # and every customer of the user's source is scored at its latest time, the prediction following the label
    scores = pd.read_parquet(tmp_path / "s.parquet").merge(sources.labels, on="customer_id")
    assert len(scores) == CUSTOMERS
    assert scores["prediction"].between(0, 1).all()
    assert scores.groupby("upgraded")["prediction"].mean().diff().iloc[-1] > 0.2
    # and the served features (online store) are the user's own values
    from core.settings import load_settings
    from features.dataset import feature_refs
    from store.repo import get_store

    settings = load_settings()
    online = get_store(settings).get_online_features(
        features=feature_refs(settings, "upsell_model_v1"), entity_rows=[{"customer_id": 1}, {"customer_id": 2}]
    ).to_df()
    np.testing.assert_allclose(online["points"].to_numpy(float), points[:2], rtol=1e-6)
