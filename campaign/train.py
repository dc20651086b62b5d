"""``persona train --uplift``: matured campaigns -> X-learner -> Qini on a held-out campaign -> MLflow -> gate.

The job reads as its steps: :mod:`campaign.data` builds the point-in-time rows and holds out the
latest campaign, :mod:`campaign.uplift` fits and evaluates (beside random, churn-score and, on
generated data, oracle targeting), then the run is logged with the same lineage tags, entry
point, code and signature as every Persona model (:mod:`training.lineage`,
:mod:`training.register`) and the gate (:mod:`training.gate`) decides on Qini against the
run's baselines and the current uplift champion scored on the same held-out campaign.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from campaign import data as dataset
from campaign.uplift import PRIMARY, UpliftConfig, evaluate_uplift, fit_uplift, uplift_gate
from core.contract import CAMPAIGN_KEY, ENTITY_KEY
from core.progress import silent
from model.registry import CHAMPION
from model.uplift import UpliftPredictor, latest_offer_costs
from model.uplift import uplift_model_name as model_uplift_name
from training import gate, register
from training.gate import GateDecision
from training.lineage import LoggedRun, bundle_code_paths, feast_lineage, git_sha, pip_requirements

if TYPE_CHECKING:
    from core.progress import ProgressEvent
    from core.settings import Settings

logger = logging.getLogger(__name__)

EXPERIMENT = "persona-uplift"
STEPS = 4


def uplift_model_name(settings: Settings) -> str:
    """The registered uplift model: ``<registered_model>-uplift``."""
    return model_uplift_name(settings.registered_model)


@dataclass
class UpliftResult:
    """What an uplift training run did (the predictor and holdout are kept for the bench and notebooks)."""

    run_id: str
    model_name: str
    version: str
    decision: GateDecision
    metrics: dict[str, float]
    predictor: UpliftPredictor
    holdout: pd.DataFrame
    holdout_campaigns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal."""
        m = self.metrics
        parts = [f"Qini {m[PRIMARY]:.4f}", f"random {m['baseline_random_uplift_qini']:.4f}"]
        for key, label in (("baseline_churn_uplift_qini", "churn score"), ("oracle_uplift_qini", "oracle")):
            if key in m:
                parts.append(f"{label} {m[key]:.4f}")
        return "\n".join([
            f"run {self.run_id}: registered {self.model_name} v{self.version} -> {self.decision.alias} "
            f"({self.decision.reason})",
            f"held-out campaign(s) {', '.join(self.holdout_campaigns)}: " + " · ".join(parts),
            f"took {self.seconds:.1f} s",
        ])


def churn_scores(settings: Settings, holdout: pd.DataFrame, feature_service: str) -> np.ndarray | None:
    """The persona champion's churn probability per holdout row (the churn-score policy), if there is one."""
    from model.bundle import load_predictor

    try:
        predictor = load_predictor(f"models:/{settings.registered_model}@{CHAMPION}", settings)
        frame = holdout
        service = predictor.metadata.get("feature_service")
        if not all(c in frame.columns for c in predictor.feature_columns) and service:
            from features.dataset import build_training_set

            frame = build_training_set(settings, holdout[[ENTITY_KEY, "event_timestamp"]], str(service))
        return predictor.predict(frame)["churn_probability"].to_numpy()
    except Exception as exc:  # no champion, or one whose features this holdout lacks: no churn baseline
        logger.info("no churn-score baseline for uplift (%s)", exc)
        return None


def read_truth(path: Path | None, holdout: pd.DataFrame) -> pd.DataFrame | None:
    """The generator's true effects aligned with the holdout rows (``campaign_truth``), when given."""
    if path is None:
        return None
    truth = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)
    keys = [ENTITY_KEY, CAMPAIGN_KEY]
    aligned = holdout[keys].merge(truth, on=keys, how="left")
    return aligned.set_index(holdout.index)


class UpliftJob:
    """One uplift training run.

    Args:
        settings: Persona settings.
        feature_service: the Feast feature service (features as of each contact).
        truth_path: the generator's ``campaign_truth`` (oracle metrics; read only when given).
        margin: the Qini gain over the champion required to promote.
        on_progress: told ``(done, total, note)`` as the steps advance.
    """

    def __init__(self, settings: Settings, feature_service: str = "churn_model_v1", truth_path: Path | None = None,
                 margin: float = 0.0, config: UpliftConfig | None = None,
                 on_progress: ProgressEvent = silent) -> None:
        self.settings, self.feature_service, self.truth_path = settings, feature_service, truth_path
        self.margin, self.config, self.on_progress = margin, config or UpliftConfig(), on_progress

    def run(self, frame: pd.DataFrame | None = None, churn: np.ndarray | None = None) -> UpliftResult:
        """Build, fit, evaluate, log, register and gate.

        Args:
            frame: matured exposures with outcomes, ``start`` and features (tests, notebooks);
                default: built from the ingested tables and Feast.
            churn: churn scores of the holdout rows (default: the persona champion's).
        """
        started = time.perf_counter()
        step, settings = self.on_progress, self.settings
        step(0, STEPS, "building the uplift training set")
        from_feast = frame is None
        rows = dataset.build(settings, self.feature_service) if frame is None else frame
        split = dataset.split_latest(rows)
        step(1, STEPS, f"fitting uplift models on {len(split.train):,} exposures")
        predictor = fit_uplift(split.train, split.features, self.config)
        predictor.metadata.update({"feature_service": self.feature_service, "features": split.features,
                                   "holdout_campaigns": split.holdout_campaigns,
                                   "train_campaigns": sorted(split.train[CAMPAIGN_KEY].astype(str).unique()),
                                   "offer_costs": latest_offer_costs(rows)})
        step(2, STEPS, "evaluating on the held-out campaign")
        if churn is None and from_feast:
            churn = churn_scores(settings, split.holdout, self.feature_service)
        predictions = predictor.predict(split.holdout)
        truth = read_truth(self.truth_path, split.holdout)
        metrics = evaluate_uplift(predictions, split.holdout, churn, truth)
        metrics["train_rows"] = float(len(split.train))
        step(3, STEPS, "logging to MLflow")
        result = self._log_register_and_gate(predictor, split, metrics, from_feast)
        step(STEPS, STEPS, "done")
        result.seconds = time.perf_counter() - started
        return result

    def _champion(self, client, name: str, holdout: pd.DataFrame) -> tuple[dict[str, float] | None, str | None]:
        from model.registry import alias_version
        from model.uplift import load_uplift

        version = alias_version(client, name, CHAMPION)
        if version is None:
            return None, None
        try:
            champion = load_uplift(f"models:/{name}@{CHAMPION}", self.settings)
            return evaluate_uplift(champion.predict(holdout), holdout), version
        except Exception as exc:  # an unreadable champion, or one needing other features, must not block training
            logger.warning("could not evaluate uplift champion v%s: %s", version, exc)
            return {}, version

    def _log_register_and_gate(self, predictor: UpliftPredictor, split: dataset.UpliftSplit,
                               metrics: dict[str, float], from_feast: bool) -> UpliftResult:
        import mlflow
        from mlflow.models import infer_signature

        from model.bundle import BUNDLE_ENTRY, to_model_input
        from model.registry import configure_mlflow, ensure_experiment

        settings = self.settings
        client = configure_mlflow(settings)
        experiment_id = ensure_experiment(client, settings, EXPERIMENT)
        name = uplift_model_name(settings)
        champion_metrics, champion_version = self._champion(client, name, split.holdout)
        rules = uplift_gate(metrics, self.margin)
        decision = gate.decide(metrics, champion_metrics, champion_version, rules)
        tags = {
            "model_kind": "uplift",
            "feature_service": self.feature_service,
            "feature_list": json.dumps(split.features)[:7900],
            "code_version": git_sha(),
            "feast.project": settings.project,
            **(feast_lineage(settings, self.feature_service) if from_feast else {}),
            "data.train_campaigns": ",".join(predictor.metadata["train_campaigns"])[:4000],
            "data.holdout_campaigns": ",".join(split.holdout_campaigns)[:4000],
            "data.as_of": str(pd.to_datetime(split.holdout["window_end"], utc=True).max())
            if "window_end" in split.holdout else "",
            "gate.rules": rules.model_dump_json()[:4000],
        }
        with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
            mlflow.log_params({"learner": "X-learner (XGBoost)", "feature_service": self.feature_service,
                               **{f"xgb.{k}": v for k, v in self.config.__dict__.items()}})
            mlflow.set_tags(tags)
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
            if champion_metrics:
                mlflow.log_metrics({f"champion_{k}": v for k, v in champion_metrics.items() if np.isfinite(v)})
            mlflow.set_tags({"gate.decision": decision.alias, "gate.reason": decision.reason[:4000],
                             "gate.champion_version": champion_version or ""})
            bundle_dir = predictor.save(Path(tmp) / "bundle")
            example = to_model_input(split.holdout.head(5), predictor.feature_columns)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(BUNDLE_ENTRY), artifacts={"bundle": str(bundle_dir)},
                code_paths=bundle_code_paths(Path(tmp) / "code"),
                signature=infer_signature(example, predictor.predict(example)), input_example=example,
                pip_requirements=pip_requirements(),
            )
            logged = LoggedRun(run.info.run_id, info.model_uri, tags)
        version = register.register(client, name, logged, metrics, (PRIMARY,), settings)
        decision = register.move(client, name, version, decision, champion_version)
        return UpliftResult(logged.run_id, name, version, decision, metrics, predictor, split.holdout,
                            split.holdout_campaigns)


__all__ = ["EXPERIMENT", "UpliftJob", "UpliftResult", "churn_scores", "uplift_model_name"]
