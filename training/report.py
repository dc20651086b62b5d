"""The report step: plots, persona cards and reference data, logged into the open MLflow run.

Called by :func:`training.lineage.log` while its run is active; the persona cards are also
written to the home's reports folder, where ``persona train`` points the user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from core import catalog
from training.data import ENTITY_KEY, TIMESTAMP, sample_rows

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from training.config import TrainConfig
    from training.data import Split
    from training.fit import FitResult
    from training.plan import TrainingPlan

# Where the reference data (holdout features + predictions) lives in a run; monitoring reads it.
REFERENCE_ARTIFACT = catalog.REFERENCE_ARTIFACT


def log_reference(reference: pd.DataFrame, tmp_dir: Path) -> None:
    """Log the drift reference (holdout features and predictions) as ``reference/reference.parquet``."""
    import mlflow

    path = tmp_dir / "reference.parquet"
    reference.to_parquet(path, index=False)
    mlflow.log_artifact(str(path), artifact_path="reference")


def reference_frame(split: Split, predictions: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """A sample of the holdout's keys and features beside the bundle's predictions."""
    holdout = split.holdout
    ref = pd.concat(
        [
            holdout[[ENTITY_KEY, TIMESTAMP, *split.features]].reset_index(drop=True),
            predictions.reset_index(drop=True),
        ],
        axis=1,
    )
    return sample_rows(ref, config.reference_rows, config.seed)


def log_plan(plan: TrainingPlan, tmp_dir: Path) -> None:
    """Log the training plan as ``plan.json`` (the printed plan, with every time and count)."""
    import json

    import mlflow

    path = tmp_dir / "plan.json"
    path.write_text(json.dumps(plan.to_dict(), indent=2, default=str))
    mlflow.log_artifact(str(path))


def log_target_report(predictor: PersonaPredictor, split: Split, config: TrainConfig, tmp_dir: Path) -> None:
    """What a custom-target run logs besides its model: the reference data."""
    log_reference(reference_frame(split, predictor.predict(split.holdout), config), tmp_dir)


def log_persona_report(
    settings: Settings, config: TrainConfig, fit: FitResult, split: Split, tmp_dir: Path
) -> None:
    """Plots (ROC, calibration, importance, personas), persona cards, silhouettes and reference data."""
    import mlflow

    from training.cards import write_cards
    from training.fit import PERSONA_MATCHED_TO
    from training.plots import calibration_figure, importance_figure, persona_figure, roc_figure

    y = split.holdout["churned"].to_numpy(int)
    for fig, name in (
        (roc_figure(y, fit.roc_curves), "roc.png"),
        (calibration_figure(y, fit.predictions["churn_probability"].to_numpy()), "calibration.png"),
        (importance_figure(fit.importance), "feature_importance.png"),
        (persona_figure(fit.cards), "personas.png"),
    ):
        mlflow.log_figure(fig, f"plots/{name}")
    meta = {
        "feature_service": config.feature_service,
        **split.window,
        "k": len(fit.cards),
        "silhouette": round(fit.silhouettes.get(len(fit.cards), float("nan")), 3),
    }
    changes = None
    if fit.persona_match is not None:
        changes = {"champion": str(fit.predictor.metadata.get(PERSONA_MATCHED_TO)),
                   "personas": [c.to_dict() for c in fit.persona_match.changes]}
    policy = fit.predictor.policy
    label = policy.label if policy is not None else None
    html_path, json_path = write_cards(fit.cards, meta, tmp_dir / "cards", changes, settings.currency, label)
    mlflow.log_artifact(str(html_path), artifact_path="persona_cards")
    mlflow.log_artifact(str(json_path), artifact_path="persona_cards")
    write_cards(fit.cards, meta, settings.reports_dir, changes, settings.currency, label)
    mlflow.log_dict(
        {"silhouette_by_k": {str(k): v for k, v in fit.silhouettes.items()}}, "personas/silhouette.json"
    )
    log_reference(reference_frame(split, fit.predictions, config), tmp_dir)
