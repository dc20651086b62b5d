"""``persona train --uplift`` logs, registers and gates like every Persona model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from campaign.train import UpliftJob
from campaign.uplift import UpliftConfig
from core.runtime import using
from core.settings import load_settings
from model.uplift import load_uplift
from tests.unit.campaign.conftest import planted_campaign

if TYPE_CHECKING:
    from pathlib import Path


def test_an_uplift_run_is_registered_signed_and_gated_on_qini(persona_home: Path) -> None:
    # given two matured campaigns (the later one is held out)
    settings = load_settings()
    frame = pd.concat([planted_campaign(n=1500, seed=1),
                       planted_campaign(n=1500, seed=2, start="2024-09-01", campaign="c2")], ignore_index=True)

    # when
    with using(settings):
        result = UpliftJob(settings, config=UpliftConfig(n_estimators=30)).run(frame=frame)
        loaded = load_uplift(f"models:/{result.model_name}@champion", settings)

    # then the first model beats random on the held-out campaign and becomes champion
    assert result.holdout_campaigns == ["c2"]
    assert result.decision.alias == "champion", result.decision.reason
    assert result.metrics["uplift_qini"] > result.metrics["baseline_random_uplift_qini"]
    # the registered, signed version predicts what was fitted, and carries the lineage
    holdout = frame[frame["campaign_id"] == "c2"]
    assert np.allclose(loaded.predict(holdout).to_numpy(), result.predictor.predict(holdout).to_numpy())
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    version = client.get_model_version(result.model_name, result.version)
    assert version.tags["model_kind"] == "uplift"
    assert version.tags["data.holdout_campaigns"] == "c2"
    assert "metric.uplift_qini" in version.tags
