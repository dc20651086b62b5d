"""Real public data through the CLI: CDNOW (a transaction log) and Caravan (a labelled customer table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlflow
import pytest
from typer.testing import CliRunner

from app.cli import app
from bench.realdata_bench import cdnow_transactions

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

CUSTOMERS = 600  # a small slice of the 2,357-customer sample keeps CI fast


def _run(runner: CliRunner, args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"persona {' '.join(args)}:\n{result.output}"
    return result.output


def test_cdnow_trains_end_to_end_with_the_btyd_baseline(persona_home: Path, tmp_path: Path) -> None:
    # given a slice of the real CDNOW log as a transactions file
    orders = cdnow_transactions(full=False)
    orders = orders[orders["customer_id"] <= CUSTOMERS]
    path = tmp_path / "cdnow.csv"
    orders.to_csv(path, index=False)
    runner = CliRunner()
    # when it goes through ingest, features and train as a user would run them
    _run(runner, ["ingest", "--transactions", str(path)])
    _run(runner, ["features", "build"])
    _run(runner, ["features", "apply"])
    _run(runner, ["train", "--horizon-days", "90"])
    # then the run logs the value model beside BG/NBD, with both totals against the actual one
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1
    metrics = runs.iloc[0]
    for name in (
        "orders_mae",
        "baseline_btyd_orders_mae",
        "baseline_btyd_orders_rmse",
        "baseline_btyd_orders_corr",
        "orders_total_ratio",
        "baseline_btyd_orders_total_ratio",
        "baseline_btyd_churn_roc_auc",
        "baseline_btyd_p_alive_mean",
    ):
        assert f"metrics.{name}" in metrics, name
    assert 0.3 < metrics["metrics.baseline_btyd_orders_total_ratio"] < 3.0  # 600 customers: a noisy total
    assert 0 < metrics["metrics.baseline_btyd_p_alive_mean"] <= 1
    assert metrics["metrics.baseline_btyd_orders_corr"] > 0.3


def test_cdnow_value_model_is_calibrated_and_beats_bgnbd(persona_home: Path) -> None:
    from bench.realdata_bench import train_cdnow

    # given the CDNOW sample trained with a 90-day horizon
    metrics = train_cdnow(full=False, horizon_days=90)
    # then expected orders beat BG/NBD on MAE, RMSE and correlation, and the total is within 10%
    assert metrics["orders_mae"] < metrics["baseline_btyd_orders_mae"]
    assert metrics["orders_rmse"] < metrics["baseline_btyd_orders_rmse"]
    assert metrics["orders_corr"] > metrics["baseline_btyd_orders_corr"]
    assert 0.9 <= metrics["orders_total_ratio"] <= 1.1
