"""Real public data through the CLI: CDNOW (a transaction log) and Caravan (a labelled customer table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from bench.realdata_bench import CARAVAN_SERVICE, caravan_table, cdnow_transactions, write_caravan

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

CUSTOMERS = 600  # a small slice of the 2,357-customer sample keeps CI fast
CARAVAN_CUSTOMERS = 1_500  # of 5,822, stratified by Purchase: about 90 buyers
GATE_MARGIN = 0.002  # TrainConfig's default --margin


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
    trained = _run(runner, ["train", "--horizon-days", "90"])
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
    # and BG/NBD's weight in the expected orders, searched on the latest training snapshot, in MLflow and the summary
    weight = metrics["metrics.orders_weight"]
    assert metrics["params.orders_weight_source"] == "searched"
    assert metrics["metrics.orders_weight_inner_rmse_best"] <= metrics["metrics.orders_weight_inner_rmse_default"]
    best = metrics["metrics.orders_weight_inner_rmse_best"]
    assert best == metrics[f"metrics.orders_weight_inner_rmse_w{round(weight * 100):03d}"]
    assert f"orders weight {weight:.2f} (searched: inner RMSE" in trained


def _caravan(tmp_path: Path) -> tuple[pd.DataFrame, Path, Path]:
    try:
        table = caravan_table(CARAVAN_CUSTOMERS)
    except FileNotFoundError as exc:  # a missing data set fails with its fix, never skips
        pytest.fail(str(exc), pytrace=False)
    views, labels = write_caravan(table, tmp_path / "caravan")
    return table, views, labels


def test_caravan_customer_table_trains_and_scores_without_transactions(
    persona_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a stratified slice of the real Caravan table as the user's own view (85 integer attributes
    # known at one time), labels a day later, and nothing ingested
    table, views, labels = _caravan(tmp_path)
    monkeypatch.setenv("PERSONA_FEATURE_REPO", str(views))
    runner = CliRunner()
    # when the view is applied, a purchase model trained on the labels with 3 customer folds, and scored
    applied = _run(runner, ["features", "apply"])
    trained = _run(runner, ["train", "--labels", str(labels), "--target", "purchase",
                            "--feature-service", CARAVAN_SERVICE, "--cv-folds", "3"])
    scored = _run(runner, ["score", "--model", "persona-purchase", "--version", "1",
                           "--out", str(tmp_path / "scores.parquet")])
    # then the plan says it held out customers, stratified, because the labels are at one time
    assert "view caravan: 85 features" in applied
    assert "split     customer: labels at one time" in trained
    assert "stratified by purchase" in trained
    buyers = int((table["Purchase"] == "Yes").sum())
    held_buyers = round(0.2 * buyers)  # each class rounds on its own
    holdout = held_buyers + round(0.2 * (len(table) - buyers))
    assert f"{len(table) - holdout:,} rows, {buyers - held_buyers} positive" in trained
    assert f"{holdout:,} rows, {held_buyers} positive" in trained
    # and the run logs the model beside the majority-class and logistic baselines, with the folds' mean and spread
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["tags.plan.split"] == "customer"
    m = {name.removeprefix("metrics."): run[name] for name in runs.columns if name.startswith("metrics.")}
    assert m["train_rows"] + m["holdout_rows"] == len(table)
    assert m["baseline_majority_purchase_roc_auc"] == 0.5
    assert m["baseline_majority_purchase_pr_auc"] == pytest.approx(held_buyers / holdout)
    assert 0.55 < m["purchase_roc_auc"] <= 1
    assert 0.55 < m["baseline_logreg_purchase_roc_auc"] <= 1
    assert m["cv_folds"] == 3
    assert 0.55 < m["purchase_roc_auc_cv_mean"] <= 1
    assert m["purchase_roc_auc_cv_std"] > 0
    # and the gate's verdict follows from those metrics: champion only when it beats both baselines by the margin
    baselines = ("baseline_logreg_purchase_roc_auc", "baseline_majority_purchase_roc_auc")
    beats = all(m["purchase_roc_auc"] - m[baseline] >= GATE_MARGIN for baseline in baselines)
    assert f"registered persona-purchase v1 -> {'champion' if beats else 'challenger'}" in trained
    # and every customer is scored, buyers above the others
    assert "scored 1,500 customers" in scored
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert sorted(scores["customer_id"]) == list(range(1, len(table) + 1))
    bought = (table["Purchase"] == "Yes").to_numpy()[scores["customer_id"].to_numpy() - 1]
    assert scores["prediction"].between(0, 1).all()
    assert np.mean(scores["prediction"][bought]) > 2 * np.mean(scores["prediction"][~bought])


def test_cdnow_value_model_is_calibrated_and_beats_bgnbd(persona_home: Path) -> None:
    from bench.realdata_bench import train_cdnow

    # given the CDNOW sample trained with a 90-day horizon
    metrics = train_cdnow(full=False, horizon_days=90)
    # then expected orders beat BG/NBD on MAE, RMSE and correlation, and the total is within 10%
    assert metrics["orders_mae"] < metrics["baseline_btyd_orders_mae"]
    assert metrics["orders_rmse"] < metrics["baseline_btyd_orders_rmse"]
    assert metrics["orders_corr"] > metrics["baseline_btyd_orders_corr"]
    assert 0.9 <= metrics["orders_total_ratio"] <= 1.1
