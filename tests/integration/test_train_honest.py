"""No silent bad champion, and custom targets of any name that train, log only what applied, summarise.

Baselines gate the first model; the champion is scored only on rows after its training window;
labels at one time split by customer (with k-fold).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.errors import PersonaError
from core.settings import load_settings
from model.registry import alias_version, configure_mlflow
from tests.conftest import make_training_frame
from training import evaluate
from training.config import PersonaParams, TrainConfig, XGBParams
from training.train import TrainJob

FAST = {
    "xgb": XGBParams(n_estimators=30),
    "personas": PersonaParams(k_min=2, k_max=4),
    "horizon_days": 7,
    "purge": False,
}


def _custom(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """A frame as custom labels leave it: the churn label under another name, no built-in labels."""
    return frame.rename(columns={"churned": target}).drop(columns=["future_orders", "future_spend"])


def test_a_first_model_worse_than_its_baseline_stays_challenger(persona_home: Path) -> None:
    # given data whose churn is linear in the features, so the logistic baseline wins
    settings = load_settings()
    frame = make_training_frame(customers=300, snapshots=4, seed=1)
    # when the first model of an empty registry is trained
    result = TrainJob(settings, TrainConfig(**FAST)).run(frame)
    # then it is registered as challenger, with the baseline it lost to, and no champion exists
    client = configure_mlflow(settings)
    assert (result.version, result.decision.alias) == ("1", "challenger")
    assert "first model; below its own baselines" in result.decision.reason
    assert "baseline_logreg_roc_auc" in result.decision.reason
    assert alias_version(client, "persona", "champion") is None
    assert result.metrics["churn_roc_auc"] < result.metrics["baseline_logreg_roc_auc"]


def test_the_champion_is_never_rescored_on_its_own_training_rows(persona_home: Path, monkeypatch) -> None:
    # given champion v1, trained on snapshots 1-3 and judged on 4
    settings = load_settings()
    frame = make_training_frame(customers=300, snapshots=5, seed=1, interaction=3.0)
    times = sorted(frame["event_timestamp"].unique())
    first = TrainJob(settings, TrainConfig(**FAST)).run(frame[frame["event_timestamp"] <= times[3]])
    assert first.decision.alias == "champion"
    scored: list[pd.DataFrame] = []
    real = evaluate.bundle_metrics
    monkeypatch.setattr(evaluate, "bundle_metrics", lambda p, rows: scored.append(rows) or real(p, rows))

    # when a run's holdout is snapshot 3, which the champion trained on
    inside = TrainJob(settings, TrainConfig(**FAST)).run(frame[frame["event_timestamp"] <= times[2]])
    # and a later run's holdout is snapshot 5, after the champion's window
    after = TrainJob(settings, TrainConfig(**FAST)).run(frame)

    # then the champion was scored only on snapshot 5, and the first comparison says it was not comparable
    assert len(scored) == 1
    assert (pd.to_datetime(scored[0]["event_timestamp"], utc=True) > pd.Timestamp(times[2])).all()
    assert not inside.champion_metrics
    assert "not comparable" in inside.decision.reason or "below its own baselines" in inside.decision.reason
    assert after.champion_metrics
    assert after.champion_metrics["churn_roc_auc"] > 0


def test_a_custom_target_called_churn_trains_logs_only_what_applied_and_summarises(persona_home: Path) -> None:
    # given custom labels whose column is named like a built-in
    settings = load_settings()
    frame = _custom(make_training_frame(customers=300, snapshots=3, seed=2, interaction=3.0), "churn")
    config = TrainConfig(labels_path=Path("labels.csv"), target="churn", xgb=XGBParams(n_estimators=30))
    # when
    result = TrainJob(settings, config).run(frame)
    # then its own registered model holds it, the summary prints, and the run logs no churn-bundle params
    assert result.model_name == "persona-churn"
    assert "churn_roc_auc" in result.summary()
    assert "baseline_logreg_churn_roc_auc" in result.metrics
    client = configure_mlflow(settings)
    run = client.get_run(result.run_id)
    assert not {"horizon_days", "purge", "gate.primary.metric", "train_snapshots"} & set(run.data.params)
    assert run.data.params["target"] == "churn"
    assert json.loads(run.data.tags["gate.rules"])["primary"]["metric"] == "churn_roc_auc"
    assert run.data.tags["plan.split"] == "time"
    assert "plan.json" in {a.path for a in client.list_artifacts(result.run_id)}


def test_labels_at_one_time_split_by_customer_with_k_fold(persona_home: Path) -> None:
    # given labels of 400 customers at one date
    settings = load_settings()
    frame = _custom(make_training_frame(customers=400, snapshots=1, seed=4, interaction=3.0), "left")
    config = TrainConfig(labels_path=Path("labels.csv"), target="left", xgb=XGBParams(n_estimators=30), cv_folds=3)
    plans = []
    # when
    result = TrainJob(settings, config, on_plan=plans.append).run(frame)
    # then the plan (told before fitting) is a stratified customer split, and the fold metrics are logged
    (plan,) = plans
    assert plan.split == "customer"
    assert plan.train_rows + plan.holdout_rows == 400
    assert plan.holdout_positives == pytest.approx(plan.train_positives / 4, rel=0.1)
    assert 0.5 < result.metrics["left_roc_auc"] <= 1.0
    assert result.metrics["cv_folds"] == 3
    assert 0.5 < result.metrics["left_roc_auc_cv_mean"] <= 1.0
    assert result.metrics["left_roc_auc_cv_std"] >= 0
    run = configure_mlflow(settings).get_run(result.run_id)
    assert run.data.tags["plan.split"] == "customer"


def test_more_folds_than_customers_of_a_class_stop_before_fitting(persona_home: Path) -> None:
    # given labels of 400 customers at one date, of whom only a few are positive
    settings = load_settings()
    frame = _custom(make_training_frame(customers=400, snapshots=1, seed=4), "left")
    positives = frame.index[frame["left"] == 1]
    frame.loc[positives[12:], "left"] = 0
    config = TrainConfig(labels_path=Path("labels.csv"), target="left", xgb=XGBParams(n_estimators=30),
                         cv_folds=20, holdout_fraction=0.5)
    plans = []
    # when 20 folds are asked for 12 positive customers (6 on each side of the split)
    with pytest.raises(PersonaError, match=r"^--cv-folds 20 needs at least 20 customers of each left value; "
                       r"the labels hold 12 with left=1: lower --cv-folds"):
        TrainJob(settings, config, on_plan=plans.append).run(frame)
    # then it stops with that line before anything is planned, fitted or logged
    assert plans == []
    assert configure_mlflow(settings).search_registered_models() == []
