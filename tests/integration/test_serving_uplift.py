"""The served process loads the registered uplift champion beside the churn champion and answers with both."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from tests.conftest import copy_home

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def _campaigns(features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Two matured randomized discount campaigns over the home's customers (recent buyers respond)."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, start in enumerate(("2025-03-01", "2025-06-01")):
        rows = features.copy()
        treated = rng.random(len(rows)) < 0.5
        effect = np.where(rows["orders_90d"].fillna(0).to_numpy() > 0, 0.4, -0.1)
        converted = (rng.random(len(rows)) < 0.2 + treated * effect).astype(np.int64)
        parts.append(rows.assign(campaign_id=f"c{k}", offer="discount", start=pd.Timestamp(start, tz="UTC"),
                                 group=np.where(treated, "treatment", "control"), converted=converted,
                                 orders=converted, spend=40.0 * converted, cost_per_contact=1.5))
    return pd.concat(parts, ignore_index=True)


def test_predict_carries_the_uplift_champions_next_best_action(champion_home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from campaign.plan import latest_features
    from campaign.train import UpliftJob
    from campaign.uplift import UpliftConfig
    from core.runtime import using
    from core.settings import load_settings
    from model.registry import configure_mlflow, move_alias
    from serving.runtime import ServingRuntime

    # given the champion home, and an uplift model registered from its customers' features
    home = copy_home(champion_home, tmp_path / "home")
    monkeypatch.setenv("PERSONA_HOME", str(home))
    settings = load_settings()
    runtime = ServingRuntime(settings)
    before = runtime.start()
    try:
        plain = before.predict_customers([1, 2], "r0").results
        assert before.info()["uplift"]["last_error"].startswith("no uplift champion registered")
    finally:
        runtime.stop()
    with using(settings):
        features = latest_features(settings, "churn_model_v1")
        result = UpliftJob(settings, config=UpliftConfig(n_estimators=20)).run(frame=_campaigns(features))
    if result.decision.alias != "champion":  # tiny data: serve it anyway
        move_alias(configure_mlflow(settings), result.model_name, "champion", result.version, "serving test")

    # when the served process starts
    runtime = ServingRuntime(settings).start()
    try:
        results = runtime.predict_customers([1, 2], "r1").results
        info = runtime.info()
    finally:
        runtime.stop()

    # then before it: no uplift fields; with it: every offer's uplift and the next best action, priced
    assert all("next_best_action" not in r for r in plain)
    assert info["uplift"]["version"] == result.version
    assert info["uplift"]["costs"] == {"discount": 1.5}
    assert info["uplift"]["last_error"] is None
    for answer in results:
        assert answer["uplift_model_version"] == result.version
        assert set(answer["uplift"]) == {"discount"}
        action = answer["next_best_action"]
        assert action["expected_value"] == pytest.approx(
            answer["uplift"]["discount"]["conversion"] * result.predictor.metadata["spend_per_conversion"] - 1.5)
