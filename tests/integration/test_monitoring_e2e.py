"""The loop on generated data: no retrain before the injected shift, a retrain that learns it after.

One home, one generated history with a shifted period appended (``persona generate
--shift-days``: a price rise lowers order frequency, delivery complaints surge). The champion
is trained on label windows that end before the shift. Monitoring as of the last pre-shift
day finds nothing to act on; monitoring the latest (shifted) snapshot finds drift, but labels
have not matured over the shift since it was first seen, so churn and value wait for the date
it prints; told when the shift began, labels cover it and the retrain trains and gates on it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core.settings import load_settings
from monitoring.job import MonitorConfig, MonitorJob
from training.config import PersonaParams, TrainConfig, XGBParams

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = pd.Timestamp("1997-03-01", tz="UTC")
DAYS, SHIFT_DAYS = 240, 75  # horizon 30: labels cover a training and a purged holdout snapshot after ~70 days


def test_retrain_after_injected_drift_and_not_without(persona_home: Path, tmp_path: Path) -> None:
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from model.bundle import load_predictor
    from model.registry import configure_mlflow
    from monitoring.champion import load_champion
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset
    from training.refresh import boosters_agree
    from training.train import TrainJob

    # given generated history with a shifted period, ingested, built and applied
    config = GenerateConfig(customers=1400, days=DAYS, shift_days=SHIFT_DAYS, seed=5, start=START)
    paths = generate_dataset(config, tmp_path / "gen")
    settings = load_settings()
    ingest_files(settings, {t: paths[t] for t in ("customers", "transactions", "sessions", "reviews")})
    build_offline_sources(settings)
    apply_repo(settings)
    shift_start = (START + pd.Timedelta(days=DAYS)).to_pydatetime()
    fast = {"horizon_days": 30, "xgb": XGBParams(n_estimators=40),
            "personas": PersonaParams(k_min=2, k_max=4), "train_snapshots": 2}
    # and a champion trained on label windows that close before the shift
    champion = TrainJob(settings, TrainConfig(as_of=shift_start, **fast)).run()
    assert champion.decision.alias == "champion"
    retrain_config = TrainConfig(**fast)

    # when monitoring as of the last day before the shift
    before = MonitorJob(settings, MonitorConfig(as_of=shift_start, train=retrain_config)).run()

    # then nothing crossed a threshold: no retrain
    assert before.decision.status == "ok", before.decision
    assert before.retrain is None
    assert not before.decision.triggers

    # when monitoring the latest snapshot, inside the shifted period
    seen = MonitorJob(settings, MonitorConfig(train=retrain_config)).run()

    # then drift is found, but it was first seen at that snapshot: no label after it has matured
    assert seen.decision.status == "retrain", seen.decision
    assert seen.retrain is not None
    assert seen.retrain.status == "waiting_for_labels", seen.retrain
    assert seen.scope is not None
    assert seen.scope.drift_start == pd.Timestamp(seen.window["snapshot_at"])
    assert f"churn and value wait for labels until {seen.scope.ready_at:%Y-%m-%d}" in seen.summary()
    # and meanwhile personas and value tiers were refreshed on that snapshot as v2, gated, with v1's
    # churn and value models: on the same customers v2 predicts exactly what v1 does
    refresh = seen.retrain.refresh
    assert refresh is not None
    assert refresh["status"] == "refreshed", refresh
    assert (refresh["version"], refresh["base_version"]) == ("2", "1"), refresh
    assert refresh["alias"] in ("champion", "challenger")
    assert "as v2 (churn and value boosters from v1), " in seen.summary(), seen.summary()
    client = configure_mlflow(settings)
    assert {str(v.version) for v in client.search_model_versions("name='persona'")} == {"1", "2"}
    tags = client.get_model_version("persona", "2").tags
    assert (tags["refresh"], tags["refreshed_from"]) == ("label_free", "1")
    assert tags["data.holdout_end"] == client.get_model_version("persona", "1").tags["data.holdout_end"]
    v1, v2 = (load_predictor(f"models:/persona/{v}", settings) for v in ("1", "2"))
    rows = load_champion(settings).reference
    assert boosters_agree(v1, v2, rows)
    for column in ("expected_orders", "expected_spend"):
        assert v1.predict(rows)[column].equals(v2.predict(rows)[column]), column
    churn_map = v2.metadata.get("churn_calibration")
    expected = v1.predict(rows)["churn_probability"].to_numpy()
    if churn_map is not None:  # recalibrated on the rows whose labels matured after v1's training window
        assert "churn calibration" in refresh["parts"]
        expected = np.clip(np.interp(expected, churn_map["x"], churn_map["y"]), 0, 1)
    np.testing.assert_allclose(v2.predict(rows)["churn_probability"].to_numpy(), expected)
    assert v2.metadata["refreshed_at"] == pd.Timestamp(seen.window["snapshot_at"]).isoformat()
    # and a second run on the same snapshot does not refresh again
    again = MonitorJob(settings, MonitorConfig(train=retrain_config)).run()
    assert again.retrain is not None
    assert again.retrain.refresh is not None
    assert again.retrain.refresh["status"] == "skipped", again.retrain.refresh
    assert "already refreshed for this drift (v2" in again.summary()
    assert {str(v.version) for v in client.search_model_versions("name='persona'")} == {"1", "2"}

    # when told the shift began on its first day
    after = MonitorJob(settings, MonitorConfig(train=retrain_config, drift_since=shift_start)).run()

    # then drift triggered a retrain that trained and was gated on post-shift snapshots
    assert after.decision.status == "retrain", after.decision
    assert {"key_feature:recency_days", "prediction:churn_probability"} & set(after.decision.triggers)
    assert after.retrain is not None
    assert after.retrain.status == "trained", after.retrain
    assert after.retrain.version == "3"
    assert after.scope is not None
    assert after.scope.supervised
    train_from, train_to = after.retrain.train_window.split(" – ")
    holdout_from, _ = after.retrain.holdout_window.split(" – ")
    assert train_to >= f"{shift_start:%Y-%m-%d}", after.retrain
    assert holdout_from > train_to, after.retrain
    assert f"trained on {train_from} – {train_to}" in after.summary()
    assert after.retrain.alias in ("champion", "challenger")
    assert after.retrain.refresh is None
    # and both runs are on disk and in MLflow with their decision
    for result, status in ((before, "ok"), (after, "retrain")):
        doc = json.loads((result.report_dir / "summary.json").read_text())
        assert doc["status"] == status
        assert (result.report_dir / "drift_report.html").exists()
        assert client.get_run(result.mlflow_run_id).data.tags["status"] == status
    assert before.window["snapshot_at"] < after.window["snapshot_at"]
