"""Skew replay end to end: rows served from the real online store, rebuilt through Feast offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from tests.conftest import copy_home

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_served_rows_replay_clean_and_an_offline_rewrite_is_named_and_holds_promotion(
    champion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from app.cli import app
    from core import catalog
    from core.settings import load_settings
    from features.build import write_parquet_atomic
    from monitoring.job import MonitorConfig, MonitorJob
    from monitoring.skew import run_skew
    from serving.prediction_log import PredictionLog
    from serving.runtime import ServingRuntime
    from training.gate import skew_hold
    from training.train import read_skew_verdict

    # given 40 customers served by the champion from the online store, logged
    home = copy_home(champion_home, tmp_path / "home")
    monkeypatch.setenv("PERSONA_HOME", str(home))
    settings = load_settings()
    served = ServingRuntime(settings).load_version("1").predict_customers(list(range(1, 41)), "r1")
    log = PredictionLog(catalog.prediction_log(settings)).start()
    log.append(served.log)
    log.close()

    # when replayed as is
    clean = run_skew(settings, window_days=1)

    # then every served row matches its offline rebuild
    assert clean.rows == sum(r["status"] == "ok" for r in served.results) > 20
    assert {"orders_90d", "recency_days", "region"} <= {f.feature for f in clean.features}
    assert clean.mismatch_rate == 0.0
    assert skew_hold(read_skew_verdict(settings)) is None

    # when the offline rows that were served are rewritten (one feature) and replayed again
    path = catalog.offline_source(settings, catalog.BEHAVIOR_SOURCE)
    frame = pd.read_parquet(path)
    frame["orders_90d"] = frame["orders_90d"] + 5
    write_parquet_atomic(frame, path)
    skewed = run_skew(settings, window_days=1)
    cli = CliRunner().invoke(app, ["skew", "--window-days", "1"])
    monitored = MonitorJob(settings, MonitorConfig(window_days=1, retrain=False)).run()

    # then that feature is named with its share and size (command, monitor and its page), and promotion is held
    assert cli.exit_code == 1, cli.output
    assert "orders_90d" in cli.output
    assert "BLOCKS PROMOTION" in cli.output
    assert monitored.doc["skew"]["blocked"] is True
    assert "orders_90d" in (monitored.report_dir / "index.html").read_text()
    assert "BLOCKS PROMOTION" in monitored.summary()
    assert [f.feature for f in skewed.skewed] == ["orders_90d"]
    (orders,) = skewed.skewed
    assert orders.rate == 1.0
    assert orders.mean_abs_diff == pytest.approx(5.0)
    hold = skew_hold(read_skew_verdict(settings))
    assert hold is not None
    assert "orders_90d 100.0%" in hold
    # and a hand promotion is held too, in one line naming the feature, unless overridden with a reason
    held = CliRunner().invoke(app, ["promote", "--version", "1"])
    assert held.exit_code == 1
    assert "promotion is held" in held.output
    assert "orders_90d 100.0%" in held.output
    assert "--override-skew" in held.output
    overridden = CliRunner().invoke(app, ["promote", "--version", "1", "--override-skew", "checked by hand"])
    assert "promotion is held" not in overridden.output
    assert "already the champion" in overridden.output  # past the hold, the registry answered
    # and `persona status` shows the verdict that holds
    status = CliRunner().invoke(app, ["status"])
    assert "HOLDS PROMOTION" in status.output
    assert "orders_90d" in status.output
