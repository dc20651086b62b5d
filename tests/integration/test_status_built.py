"""``persona status`` and ``persona models list`` of a built home; the Feast-free registry reader."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.status import record_check, record_serving
from core import catalog
from core.settings import load_settings
from tests.conftest import make_training_frame
from training.config import PersonaParams, TrainConfig, XGBParams

if TYPE_CHECKING:
    from pathlib import Path

FAST = TrainConfig(xgb=XGBParams(n_estimators=30), personas=PersonaParams(k_min=2, k_max=4),
                   horizon_days=7, purge=False)
runner = CliRunner()


def _status_json() -> dict:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["sections"]


@pytest.mark.integration
def test_status_and_models_list_of_a_built_home(persona_home: Path, tmp_path: Path) -> None:
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.registry_read import view_states, view_states_via_feast
    from store.repo import apply_repo, materialize
    from synthetic.generator import GenerateConfig, generate_dataset
    from training.train import TrainJob

    # given a home with data, snapshots, materialized views, a champion, a check, a server and a monitor run
    paths = generate_dataset(GenerateConfig(customers=150, days=150, seed=3, start=pd.Timestamp("2024-01-01")),
                             tmp_path / "gen")
    settings = load_settings()
    ingest_files(settings, {t: paths[t] for t in ("customers", "transactions", "sessions", "reviews")})
    build_offline_sources(settings)
    apply_repo(settings)
    materialize(settings)
    # a frame where the boosted model beats its baselines, so the gate makes it champion
    TrainJob(settings, FAST).run(make_training_frame(customers=300, snapshots=4, seed=1, interaction=3.0))
    record_check(settings, "consistent: 10 customers", ok=True, checked=10)
    record_serving(settings, "127.0.0.1", 3999, pid=os.getpid())
    run = catalog.monitoring_reports(settings) / "20250101T000000Z"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"at": "2025-01-01T00:00:00+00:00", "status": "ok",
                                                  "decision": "ok: no drift", "champion": {"version": "1"}}))

    # when
    sections = _status_json()
    text = runner.invoke(app, ["status"])
    listed = runner.invoke(app, ["models", "list", "--json"])

    # then every section is filled
    assert text.exit_code == 0, text.output
    assert sections["data"]["data"]["transactions"]["rows"] > 0
    assert sections["data"]["data"]["transactions"]["last"] is not None
    assert sections["snapshots"]["data"]["count"] > 0
    views = sections["feature views"]["data"]
    assert views["customer_behavior"]["materialized_until"] is not None
    assert sections["consistency"]["data"]["ok"] is True
    assert sections["models"]["data"]["champion"]["version"] == "1"
    assert sections["models"]["data"]["champion"]["reason"]
    assert sections["serving"]["data"]["running"] is True
    assert sections["monitoring"]["data"]["last_run"]["decision"] == "ok: no drift"
    assert "could not read" not in text.stdout
    # and the registry reader agrees with Feast's own client
    assert view_states(settings) == view_states_via_feast(settings)
    # and models list shows the champion with its metrics
    assert listed.exit_code == 0, listed.output
    versions = json.loads(listed.stdout)["persona"]
    assert versions[0]["aliases"] == ["champion"]
    assert versions[0]["metrics"]
    # and the registry's version description carries the gate's reason
    assert versions[0]["description"].startswith("champion since ")
    assert sections["models"]["data"]["champion"]["reason"] in versions[0]["description"]
