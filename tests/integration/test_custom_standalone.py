"""Custom features and labels stand alone: no transactions, the user's own views, through the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

CUSTOMERS = 300
LABELLED_AT = pd.Timestamp("2024-06-01", tz="UTC")
VIEWS = '''
from datetime import timedelta
from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Float32, Int64

from feature_repo.definitions import customer

loyalty_source = FileSource(name="loyalty_source", path="{path}", timestamp_field="event_timestamp")
loyalty_fv = FeatureView(name="loyalty", entities=[customer], ttl=timedelta(days=30),
                         schema=[Field(name="points", dtype=Float32), Field(name="visits", dtype=Int64)],
                         source=loyalty_source)
upsell_model_v1 = FeatureService(name="upsell_model_v1", features=[loyalty_fv])
'''


def _run(runner: CliRunner, args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"persona {' '.join(args)}:\n{result.output}"
    return result.output


def test_labels_and_own_views_train_score_and_serve_without_transactions(
    persona_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a home with nothing ingested, the user's loyalty features and a labels file naming the same customers
    rng = np.random.default_rng(3)
    ids = np.arange(1, CUSTOMERS + 1, dtype="int64")
    points = rng.normal(0, 1, CUSTOMERS).astype("float32")
    features = pd.DataFrame({"customer_id": ids, "event_timestamp": LABELLED_AT - pd.Timedelta(days=1),
                             "points": points, "visits": rng.integers(0, 20, CUSTOMERS).astype("int64")})
    features.to_parquet(tmp_path / "loyalty.parquet", index=False)
    upgraded = (rng.random(CUSTOMERS) < 1 / (1 + np.exp(-3 * points))).astype(int)
    pd.DataFrame({"customer_id": ids, "event_timestamp": LABELLED_AT, "upgraded": upgraded}).to_csv(
        tmp_path / "labels.csv", index=False)
    views = tmp_path / "views"
    views.mkdir()
    (views / "loyalty.py").write_text(VIEWS.format(path=tmp_path / "loyalty.parquet"))
    monkeypatch.setenv("PERSONA_FEATURE_REPO", str(views))
    runner = CliRunner()
    # when the views are applied and materialized, a model trained on the labels and scored
    applied = _run(runner, ["features", "apply"])
    _run(runner, ["features", "materialize"])
    trained = _run(runner, ["train", "--labels", str(tmp_path / "labels.csv"), "--target", "upgraded",
                            "--feature-service", "upsell_model_v1"])
    _run(runner, ["score", "--model", "persona-upgraded", "--version", "1", "--out", str(tmp_path / "s.parquet")])
    # then apply says Persona's own views are empty, training used every labelled customer,
    assert "no transactions ingested" in applied
    assert "view loyalty: 2 features" in applied
    assert "registered persona-upgraded v1" in trained
    assert "240 rows" in trained
    assert "60 rows" in trained
    # and every customer of the user's source is scored at its latest time, the prediction following the label
    scores = pd.read_parquet(tmp_path / "s.parquet").merge(
        pd.DataFrame({"customer_id": ids, "upgraded": upgraded}), on="customer_id")
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
