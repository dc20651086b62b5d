"""The training job: plan -> point-in-time training set -> churn, value and persona models -> MLflow -> gate.

``TrainJob(settings, config).run()`` reads as its steps, each owned by a collaborator:
:mod:`training.data` builds the labelled frame and splits it by the :mod:`training.plan` (told
to ``on_plan`` before any fit), :mod:`training.fit` fits and evaluates the models beside their
baselines, :mod:`training.register` scores the current champion on the holdout rows after its
own training window, :mod:`training.gate` decides (every metric is known by then),
:mod:`training.lineage` logs the MLflow run (with :mod:`training.report`'s plots and cards),
and :mod:`training.register` registers the model and moves ``champion`` or ``challenger``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core import catalog
from core.progress import silent
from features.text_version import TEXT_VERSION_KEY
from model.actions import load_policy
from training import data as dataset
from training import fit, gate, lineage, register, report
from training.data import choose_snapshots, feature_columns_of
from training.fit import FIT_STEPS, PERSONA_MATCHED_TO, fit_persona_bundle
from training.gate import GateDecision
from training.plan import TrainingPlan, after_training_window
from training.report import REFERENCE_ARTIFACT

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from core.progress import ProgressEvent
    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from training.config import GateConfig, TrainConfig
    from training.persona_match import PersonaMatch

# Names other packages and notebooks import from here.
__all__ = [
    "REFERENCE_ARTIFACT",
    "TrainJob",
    "TrainResult",
    "choose_snapshots",
    "feature_columns_of",
    "fit_persona_bundle",
]

# Progress: building the frame, the fit's named steps, then logging, registering and gating.
PERSONA_STEPS = 1 + FIT_STEPS + 1
CUSTOM_STEPS = 3


@dataclass
class TrainResult:
    """What a training run did."""

    run_id: str
    model_name: str
    version: str
    decision: GateDecision
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    cards_html: Path | None = None
    seconds: float = 0.0
    kind: str = "persona"
    persona_changes: list[str] = field(default_factory=list)
    plan: TrainingPlan | None = None  # the rows it trained and was gated on (a monitor retrain reports them)
    orders_weight_line: str = ""  # how BG/NBD's weight in the expected orders was chosen (persona runs)

    def summary(self) -> str:
        """A few lines for the terminal (chosen by the model's kind, never guessed from metric names)."""
        m = self.metrics
        lines = [
            f"run {self.run_id}: registered {self.model_name} v{self.version} -> {self.decision.alias} "
            f"({self.decision.reason})"
        ]
        if self.kind == "persona":
            parts = [f"churn ROC AUC {m['churn_roc_auc']:.4f}"]
            for key, label in (
                ("baseline_logreg_roc_auc", "logreg"),
                ("baseline_rfm_roc_auc", "RFM"),
                ("oracle_churn_roc_auc", "oracle"),
                ("behavior_only_churn_roc_auc", "behavior-only"),
            ):
                if key in m:
                    parts.append(f"{label} {m[key]:.4f}")
            lines.append(" · ".join(parts))
            lines.append(
                f"brier {m['churn_brier']:.4f} · ECE {m['churn_ece']:.4f} · spend MAE "
                f"{m['spend_mae']:.2f} · spend corr {m['spend_corr']:.3f}"
                + (f" · spend corr vs truth {m['spend_corr_truth']:.3f}" if "spend_corr_truth" in m else "")
            )
            lines.append(f"personas: k={int(m['persona_k'])} (silhouette {m['persona_silhouette']:.3f})")
            lines += [f"  {line}" for line in self.persona_changes]
            if self.orders_weight_line:
                lines.append(self.orders_weight_line)
        else:
            lines.append(" · ".join(f"{k} {v:.4f}" for k, v in sorted(m.items()) if np.isfinite(v)))
        if self.cards_html:
            lines.append(f"persona cards: {self.cards_html}")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def text_version_of(settings: Settings, features: list[str]) -> dict[str, str]:
    """``{"text_projection_version": v}`` when ``features`` read the text projection, else ``{}``.

    Read from the offline rows the training set was just built from, so the model records the
    version it saw (bundle metadata and registry tag); every reader of its features checks it.
    """
    from features.text_version import source_version, uses_text

    version = source_version(settings) if uses_text(features) else None
    return {TEXT_VERSION_KEY: version} if version else {}


def persona_tags(match: PersonaMatch | None, champion_version: str | None) -> dict[str, str]:
    """Registry tags of the persona matching: ``personas.matched_to`` and one ``personas.<id>`` per persona."""
    if match is None:
        return {}
    tags = {"personas.matched_to": f"v{champion_version}"}
    for change in match.changes:
        tags[f"personas.{change.persona_id}"] = change.describe()
    return tags


def persona_lines(match: PersonaMatch | None, champion_version: str | None) -> list[str]:
    """What changed among the personas since the champion, one line each (empty when all were kept)."""
    if match is None:
        return []
    changed = [c.describe() for c in match.changes if c.status != "kept"]
    kept = sum(c.status == "kept" for c in match.changes)
    head = f"personas matched to champion v{champion_version}: {kept} kept" + (
        f", {len(changed)} changed" if changed else "")
    return [head, *changed]


def uplift_cards(settings: Settings, cards: list[dict], rows: pd.DataFrame, segments: np.ndarray) -> list[dict]:
    """The persona cards with each persona's mean uplift per offer, when an uplift champion exists.

    The uplift champion is the registered ``<model>-uplift@champion``; without one (or when it
    needs features these rows lack) the cards are returned unchanged.
    """
    import logging

    from model.registry import CHAMPION, alias_version, configure_mlflow
    from model.uplift import load_uplift, uplift_model_name
    from training.personas import cards_with_uplift

    name = uplift_model_name(settings.registered_model)
    try:
        if alias_version(configure_mlflow(settings), name, CHAMPION) is None:
            return cards
        uplift = load_uplift(f"models:/{name}@{CHAMPION}", settings)
        return cards_with_uplift(cards, segments, uplift.predict(rows), uplift.offers)
    except Exception as exc:  # the cards never fail a training run
        logging.getLogger(__name__).warning("persona cards without uplift: %s", exc)
        return cards


class TrainJob:
    """One training run; services (Feast, MLflow) are opened inside :meth:`run`.

    Args:
        settings: Persona settings.
        config: the run configuration.
        on_progress: told ``(done, total, note)`` as the run's steps advance (the app draws it).
    """

    def __init__(
        self,
        settings: Settings,
        config: TrainConfig,
        on_progress: ProgressEvent = silent,
        on_plan: Callable[[TrainingPlan], None] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.on_progress = on_progress
        self.on_plan = on_plan or (lambda _plan: None)

    def run(self, frame: pd.DataFrame | None = None) -> TrainResult:
        """Train, evaluate, log, register and gate.

        Args:
            frame: labelled rows with features (for tests and notebooks); default: built from Feast.
        """
        if self.config.labels_path is not None:
            return self._run_custom(frame)
        started = time.perf_counter()
        settings, config, step = self.settings, self.config, self.on_progress
        policy = load_policy(config.policy_path)
        step(0, PERSONA_STEPS, "building training set")
        data = dataset.build(settings, config) if frame is None else dataset.Dataset(frame)
        build_seconds = time.perf_counter() - started
        split = dataset.split(settings, config, data)
        self.on_plan(split.plan)
        reviews = dataset.read_reviews(settings, max(split.holdout[dataset.TIMESTAMP]))
        champion = self._champion()
        pinned = text_version_of(settings, split.features) if frame is None else {}
        champion_text = champion[0].metadata.get(TEXT_VERSION_KEY) if champion[0] is not None else None
        fitted = fit.fit_persona_bundle(
            split.train,
            split.holdout,
            split.features,
            config,
            policy,
            reviews,
            lambda done, _total=None, note="": step(1 + done, PERSONA_STEPS, note),
            transactions=dataset.read_transactions(settings) if frame is None else None,
            previous=champion[0],
            previous_same_text=champion_text in (None, pinned.get(TEXT_VERSION_KEY)),
            time_split=split.plan.split == "time",
        )
        fitted.predictor.metadata.update({**split.window, "features": split.features, **pinned})
        if fitted.persona_match is not None:
            fitted.predictor.metadata[PERSONA_MATCHED_TO] = champion[1]


        fitted.predictor.metadata.update({**split.window, "features": split.features})
        fitted.cards = uplift_cards(settings, fitted.cards, split.holdout, fitted.predictions["segment"].to_numpy())
        fitted.metrics["seconds_build_training_set"] = build_seconds
        step(1 + FIT_STEPS, PERSONA_STEPS, "logging to MLflow")
        log_started = time.perf_counter()
        result = self._log_register_and_gate(
            data,
            split,
            fitted.predictor,
            fitted.metrics,
            config.gate,
            settings.registered_model,
            lambda tmp: report.log_persona_report(settings, config, fitted, split, tmp),
            extra_tags={**pinned, **persona_tags(fitted.persona_match, champion[1])},
            champion=champion,
            extra_params=fitted.orders_weight.params() if fitted.orders_weight is not None else None,
        )
        result.orders_weight_line = fitted.orders_weight.line() if fitted.orders_weight is not None else ""
        result.persona_changes = persona_lines(fitted.persona_match, champion[1])
        result.plan = split.plan
        result.cards_html = catalog.persona_cards_html(settings)
        step(PERSONA_STEPS, PERSONA_STEPS, "done")
        result.seconds = time.perf_counter() - started
        self._log_late_metrics(
            result,
            {"seconds_mlflow_and_gate": time.perf_counter() - log_started, "seconds_total": result.seconds},
        )
        return result

    def _run_custom(self, frame: pd.DataFrame | None) -> TrainResult:
        """A custom target from ``--labels``: one XGBoost model, its own registered model and gate."""
        started = time.perf_counter()
        settings, config, step = self.settings, self.config, self.on_progress
        assert config.target is not None
        step(0, CUSTOM_STEPS, "building training set")
        data = dataset.build_custom(settings, config) if frame is None else dataset.Dataset(frame)
        split = dataset.split_custom(settings, config, data)
        if split.plan.split == "customer" and config.cv_folds >= 2:
            fit.check_cv_folds(data.frame, config.target, config.task, config.cv_folds)
        self.on_plan(split.plan)
        step(1, CUSTOM_STEPS, f"fitting {config.target}")
        predictor, metrics = fit.fit_target_model(
            split.train, split.holdout, split.features, config.target, config.task, config
        )
        if split.plan.split == "customer" and config.cv_folds >= 2:
            metrics.update(
                fit.cross_validate_target(
                    data.frame, split.features, config.target, config.task, config, config.cv_folds
                )
            )
        metrics.update(
            {
                "train_rows": float(len(split.train)),
                "holdout_rows": float(len(split.holdout)),
                "labels_dropped_unknown_rows": float(data.dropped_rows),
            }
        )
        predictor.metadata.update({**split.window, "features": split.features})
        step(2, CUSTOM_STEPS, "logging to MLflow")
        result = self._log_register_and_gate(
            data,
            split,
            predictor,
            metrics,
            gate.target_gate(config.target, config.task, config.gate),
            f"{settings.registered_model}-{config.target}",
            lambda tmp: report.log_target_report(predictor, split, config, tmp),
        )
        step(CUSTOM_STEPS, CUSTOM_STEPS, "done")
        result.seconds = time.perf_counter() - started
        result.kind = "target"
        return result

    def _log_register_and_gate(
        self,
        data: dataset.Dataset,
        split: dataset.Split,
        predictor: PersonaPredictor,
        metrics: dict[str, float],
        rules: GateConfig,
        model: str,
        log_report: Callable[[Path], None],
        extra_tags: dict[str, str] | None = None,
        champion: tuple[PersonaPredictor | None, str | None] | None = None,
        extra_params: dict[str, str] | None = None,
    ) -> TrainResult:
        """Score the champion, decide, log the run, register the version and move its alias."""
        from model.registry import configure_mlflow, ensure_experiment

        settings, config = self.settings, self.config
        client = configure_mlflow(settings)
        experiment_id = ensure_experiment(client, settings, config.experiment)
        not_comparable: list[str] = []

        def champion_rows(champion: PersonaPredictor, holdout: pd.DataFrame) -> pd.DataFrame | None:
            trained, current = champion.metadata.get(TEXT_VERSION_KEY), (extra_tags or {}).get(TEXT_VERSION_KEY)
            if trained and trained != current:  # its text features are not in this holdout's projection
                not_comparable.append(f"the champion was trained on text projection {trained}, "
                                      f"this holdout is in {current or 'none'}")
                return None
            rows, why = after_training_window(champion, holdout)
            if why:
                not_comparable.append(why)
                return None
            return dataset.frame_for(settings, config, data, champion, rows)

        champion_metrics, champion_version = register.champion_score(
            client, model, split.holdout, champion_rows, settings, loaded=champion
        )
        decision = gate.decide(
            metrics, champion_metrics, champion_version, rules, not_comparable[0] if not_comparable else None,
            skew=gate.skew_hold(read_skew_verdict(settings)) if model == settings.registered_model else None,
        )
        tags = {
            **lineage.lineage_tags(settings, config, split, data.from_feast),
            **split.plan.tags(),
            "gate.rules": rules.model_dump_json()[:4000],
            **(extra_tags or {}),
        }

        def log_plan_and_report(tmp: Path) -> None:
            report.log_plan(split.plan, tmp)
            log_report(tmp)

        run = lineage.log(
            settings,
            config,
            experiment_id,
            predictor,
            metrics,
            split,
            tags,
            decision,
            (champion_metrics, champion_version),
            log_plan_and_report,
            extra_params,
        )
        gated = (rules.primary.metric, *(g.metric for g in rules.guards))
        version = register.register(client, model, run, metrics, gated, settings)
        decision = register.move(client, model, version, decision, champion_version)
        return TrainResult(run.run_id, model, version, decision, metrics, champion_metrics)

    def _champion(self) -> tuple[PersonaPredictor | None, str | None]:
        """The current champion (loaded once: the fit matches personas to it, the gate scores it)."""
        from model.registry import configure_mlflow

        client = configure_mlflow(self.settings)
        return register.load_champion(client, self.settings.registered_model, self.settings)

    def _log_late_metrics(self, result: TrainResult, values: dict[str, float]) -> None:
        """Metrics known only after the run closed (its own logging time)."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.settings.tracking_uri)
        for key, value in values.items():
            client.log_metric(result.run_id, key, value)
        result.metrics.update(values)


def read_skew_verdict(settings: Settings) -> dict | None:
    """The latest skew replay's verdict (``monitoring.skew.write_verdict``), None when none ran.

    An unreadable verdict holds promotion too: a check that cannot be read has not passed.
    """
    import json

    path = catalog.skew_verdict(settings)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc
    except (OSError, ValueError) as exc:
        return {"blocked": True, "reason": f"the skew verdict {path} cannot be read ({exc})", "at": "?"}
