"""End to end: train -> MLflow run and registered bundle -> gate -> promote / rollback; bad labels; score."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from core import catalog
from core.errors import PersonaError
from core.settings import load_settings
from model.bundle import load_predictor, to_model_input
from model.registry import HISTORY_TAG, alias_version, configure_mlflow, promote, rollback
from tests.conftest import make_training_frame
from training import register
from training.config import PersonaParams, TrainConfig, XGBParams
from training.train import TrainJob

FAST = {
    "xgb": XGBParams(n_estimators=30),
    "personas": PersonaParams(k_min=2, k_max=4),
    "horizon_days": 7,
    "purge": False,
}


def _history(client, version: str) -> list[dict]:
    return json.loads(client.get_model_version("persona", version).tags[HISTORY_TAG])


def test_train_registers_champion_gates_a_tie_and_rolls_back(persona_home: Path) -> None:
    # given a labelled feature frame where the boosted model beats its baselines, and an empty registry
    settings = load_settings()
    frame = make_training_frame(customers=300, snapshots=4, seed=1, interaction=3.0)
    config = TrainConfig(**FAST)

    # when the first model is trained
    first = TrainJob(settings, config).run(frame)

    # then it is registered as champion with its run's metrics, plots, cards and reference data
    client = configure_mlflow(settings)
    assert (first.version, first.decision.alias) == ("1", "champion")
    assert alias_version(client, "persona", "champion") == "1"
    run = client.get_run(first.run_id)
    assert run.data.metrics["churn_roc_auc"] > 0.6
    for key in (
        "churn_pr_auc",
        "churn_log_loss",
        "churn_brier",
        "churn_ece",
        "spend_mae",
        "spend_rmse",
        "orders_corr",
        "baseline_logreg_roc_auc",
        "baseline_rfm_roc_auc",
        "text_lift_roc_auc",
    ):
        assert key in run.data.metrics, key
    # and no orders weight where the bundle has no BG/NBD (these rows lack its inputs): only what applied
    assert first.metrics.get("orders_weight") is None
    assert "orders_weight_source" not in run.data.params
    assert "orders weight" not in first.summary()
    for tag in ("feature_service", "feature_list", "code_version", "data.holdout_start", "feast.project"):
        assert run.data.tags.get(tag), tag
    artifacts = {
        a.path
        for d in ("plots", "persona_cards", "reference")
        for a in client.list_artifacts(first.run_id, d)
    }
    assert {
        "plots/roc.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
        "plots/personas.png",
        "persona_cards/persona_cards.html",
        "persona_cards/persona_cards.json",
        "reference/reference.parquet",
    } <= artifacts
    assert (persona_home / "reports" / "persona_cards.html").exists()

    # and the registered pyfunc predicts every output from a feature frame, with a signature
    model = mlflow.pyfunc.load_model("models:/persona@champion")
    assert model.metadata.signature is not None
    out = model.predict(to_model_input(frame.head(20), model.metadata.get_input_schema().input_names()))
    assert list(out.columns) == [
        "churn_probability",
        "expected_orders",
        "expected_spend",
        "segment",
        "persona",
        "action",
    ]

    # when the same data is trained again, the champion is re-scored on the same holdout: a tie
    second = TrainJob(settings, config).run(frame)

    # then its personas were matched to the champion's: ids, names and the diff in cards and tags
    v1 = load_predictor("models:/persona/1", settings)
    v2 = load_predictor("models:/persona/2", settings)
    assert v2.persona_names == v1.persona_names
    assert second.persona_changes[0].startswith(f"personas matched to champion v1: {len(v1.persona_names)} kept")
    tags = client.get_model_version("persona", "2").tags
    assert tags["personas.matched_to"] == "v1"
    assert all(f"personas.{i}" in tags for i in v1.persona_names)
    cards = json.loads((persona_home / "reports" / "persona_cards.json").read_text())
    assert cards["changes"]["champion"] == "1"
    assert {c["status"] for c in cards["changes"]["personas"]} == {"kept"}
    assert "Changes since champion v1" in (persona_home / "reports" / "persona_cards.html").read_text()

    # and the candidate becomes challenger and the champion stays
    assert (second.version, second.decision.alias) == ("2", "challenger")
    assert second.champion_metrics["churn_roc_auc"] == pytest.approx(second.metrics["churn_roc_auc"])
    assert alias_version(client, "persona", "champion") == "1"

    # when ops promote v2 by hand and then roll back
    promoted = promote(settings, 2, reason="manual check")
    back = rollback(settings)

    # then champion returns to v1 and every move is in the version tags
    assert (promoted.from_version, promoted.to_version) == ("1", "2")
    assert (back.from_version, back.to_version) == ("2", "1")
    assert alias_version(client, "persona", "champion") == "1"
    moves = [(m["alias"], m["from"], m["to"]) for m in _history(client, "2")]
    assert moves == [("challenger", None, "2"), ("champion", "1", "2"), ("champion", "2", "1")]
    assert _history(client, "2")[1]["reason"] == "manual check"
    assert _history(client, "2")[1]["at"]
    with pytest.raises(PersonaError, match="replaced no earlier champion"):
        rollback(settings)


def test_promote_and_rollback_without_models_fail_in_one_line() -> None:
    # given an empty registry
    runner = CliRunner()
    # when
    rolled = runner.invoke(app, ["rollback"])
    promoted = runner.invoke(app, ["promote", "--version", "3"])
    # then
    assert rolled.exit_code == 1
    assert "no champion to roll back" in rolled.output
    assert promoted.exit_code == 1
    assert "has no version 3" in promoted.output


@pytest.fixture
def transactions(persona_home: Path) -> Path:
    raw = persona_home / "data" / "raw"
    raw.mkdir(parents=True)
    pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "event_timestamp": pd.to_datetime(["2024-01-01"] * 3, utc=True),
            "amount": [10.0, 20.0, 30.0],
        }
    ).to_parquet(raw / "transactions.parquet")
    return raw / "transactions.parquet"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"customer_id": [1, 2], "event_timestamp": ["2024-02-01"] * 2}, "upgraded"),
        (
            {"customer_id": [98, 99], "event_timestamp": ["2024-02-01"] * 2, "upgraded": [0, 1]},
            "known customer",
        ),
        (
            {"customer_id": [1, 2], "event_timestamp": ["2024-02-01"] * 2, "upgraded": [0, 2]},
            "must be binary",
        ),
    ],
    ids=["missing-column", "unknown-customers", "non-binary"],
)
def test_bad_labels_file_is_a_clear_error(
    transactions: Path, tmp_path: Path, labels: dict, message: str
) -> None:
    # given a labels file with a problem
    path = tmp_path / "labels.csv"
    pd.DataFrame(labels).to_csv(path, index=False)
    config = TrainConfig(labels_path=path, target="upgraded", task="classification")
    # when / then
    with pytest.raises(PersonaError, match=message):
        TrainJob(load_settings(), config).run()


def test_custom_target_trains_its_own_registered_model() -> None:
    # given labels of another target, already joined with features (the labels file is not read)
    frame = make_training_frame(customers=200, snapshots=3, seed=2)
    frame["upgraded"] = (frame["spend_365d"] > frame["spend_365d"].median()).astype(int)
    frame = frame.drop(columns=["churned", "future_orders", "future_spend"])
    config = TrainConfig(labels_path=Path("unused.csv"), target="upgraded", xgb=XGBParams(n_estimators=20))
    job = TrainJob(load_settings(), config)
    # when
    result = job.run(frame)
    # then
    assert result.model_name == "persona-upgraded"
    assert result.decision.alias == "champion"
    assert result.metrics["upgraded_roc_auc"] > 0.8


@pytest.mark.integration
def test_real_chain_on_generated_data(persona_home: Path, tmp_path: Path) -> None:
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from scoring.score import score
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset

    # given generated data, ingested, built and applied
    paths = generate_dataset(
        GenerateConfig(customers=250, days=260, seed=5, start=pd.Timestamp("1997-03-01")), tmp_path / "gen"
    )
    settings = load_settings()
    ingest_files(settings, {t: paths[t] for t in ("customers", "transactions", "sessions", "reviews")})
    catalog.ground_truth(settings).write_bytes(paths["ground_truth"].read_bytes())
    build_offline_sources(settings)
    apply_repo(settings)
    config = TrainConfig(
        xgb=XGBParams(n_estimators=40),
        personas=PersonaParams(k_min=2, k_max=4),
        train_snapshots=2,
        ground_truth_path=catalog.ground_truth(settings),
    )

    # when
    result = TrainJob(settings, config).run()
    report = score(settings, tmp_path / "scores.parquet")

    # then
    assert result.decision.alias == "champion"
    assert 0.5 < result.metrics["churn_roc_auc"] <= 1.0
    assert np.isfinite(
        result.metrics["oracle_churn_roc_auc"]
    )
    run = mlflow.get_run(result.run_id)
    assert (
        run.data.tags["feature_service"] == "churn_model_v2"
    )
    assert (
        "recency_days" in run.data.tags["feature_list"]
    )
    scores = pd.read_parquet(report.path)
    assert list(scores.columns) == [
        "customer_id",
        "churn_probability",
        "expected_orders",
        "expected_spend",
        "segment",
        "persona",
        "action",
        "model_version",
        "p_alive",
    ]
    assert scores["p_alive"].between(0, 1).all()
    assert len(scores) == report.rows > 0
    assert (scores["model_version"] == result.version).all()


def test_a_champion_moved_while_gating_leaves_the_candidate_a_challenger(persona_home: Path, monkeypatch) -> None:
    # given champion v1, and a run whose gate was decided before another process promoted v2
    settings = load_settings()
    frame = make_training_frame(customers=300, snapshots=4, seed=1, interaction=3.0)
    config = TrainConfig(**FAST)
    TrainJob(settings, config).run(frame)
    TrainJob(settings, config).run(frame)  # v2: a tie, so a challenger
    client = configure_mlflow(settings)
    decided_against_empty_registry = lambda client, model, holdout, frame_for, settings=None, loaded=None: (None, None)  # noqa: E731
    monkeypatch.setattr(register, "champion_score", decided_against_empty_registry)

    # when v3's gate (which saw no champion) tries to take the alias that v1 holds
    third = TrainJob(settings, config).run(frame)

    # then the compare-and-set refuses: v1 stays champion, v3 is a challenger and says why
    assert alias_version(client, "persona", "champion") == "1"
    assert (third.version, third.decision.alias, third.decision.promote) == ("3", "challenger", False)
    assert "champion moved meanwhile" in third.decision.reason
    assert _history(client, "3")[-1]["alias"] == "challenger"
