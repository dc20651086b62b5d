"""The monitoring job: champion reference vs current window -> report -> policy -> retrain.

``MonitorJob(settings, config).run()`` loads the champion and its training reference from
MLflow, builds the current window (prediction log of the last ``window_days`` plus the latest
feature snapshot scored by the champion), measures drift, persona shifts, missing values and
(when labels have matured) quality, applies the policy, triggers a single-flight retrain if
the policy says so, and records everything: HTML and JSON under
``reports/monitoring/<UTC timestamp>/``, a run in the local Evidently workspace and a run in the
``persona-monitoring`` MLflow experiment.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core import catalog
from core.contract import PREDICTION_COLUMNS
from core.errors import PersonaError
from core.locks import exclusive
from monitoring.drift import DriftRun, DriftSummary, run_drift
from monitoring.policy import (
    DEFAULT_POLICY_PATH,
    Decision,
    MonitoringPolicy,
    decide,
    load_policy,
    quality_drop,
)
from monitoring.quality import QualityCheck, label_predictions, matured_mask, quality_check, reference_quality
from monitoring.render import render_summary_html
from monitoring.shares import PersonaShift, persona_shift
from monitoring.trigger import RetrainOutcome, read_last_retrain, retrain
from monitoring.window import (
    ENTITY_KEY,
    TIMESTAMP,
    combine_window,
    latest_at_or_before,
    select_served,
)
from serving.prediction_log import read_prediction_log
from store.repo import load_feast
from training.config import TrainConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings

logger = logging.getLogger(__name__)

EXPERIMENT = "persona-monitoring"
WORKSPACE_PROJECT = "persona-monitoring"


class MonitorConfig(BaseModel):
    """One monitoring run.

    Attributes:
        window_days: served predictions of the last this many days form the window.
        as_of: evaluate as if it were this time (window end, latest snapshot at or before it,
            labels known by then); default: now and the latest snapshot.
        policy_path: the retraining policy YAML.
        retrain: act on a retrain decision (False: report only).
        train: the training configuration of a retrain (default: the champion's horizon and
            feature service, other settings at their defaults).
        seed: sampling seed of the drift tests.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_days: int = Field(default=7, ge=1, le=3650)
    as_of: dt.datetime | None = None
    policy_path: Path = DEFAULT_POLICY_PATH
    retrain: bool = True
    train: TrainConfig | None = None
    seed: int = 0


@dataclass
class Champion:
    """The current champion and what it was trained on."""

    model: str
    version: str
    run_id: str
    predictor: object  # model.bundle.PersonaPredictor
    reference: pd.DataFrame
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    @property
    def features(self) -> list[str]:
        return list(self.predictor.feature_columns)

    @property
    def feature_service(self) -> str:
        return (self.predictor.metadata.get("feature_service") or self.tags.get("feature_service")
                or TrainConfig.model_fields["feature_service"].default)

    @property
    def holdout_end(self) -> pd.Timestamp | None:
        value = self.tags.get("data.holdout_end") or self.predictor.metadata.get("data.holdout_end")
        try:
            return pd.Timestamp(value).tz_convert("UTC") if value else None
        except (ValueError, TypeError):
            return None

    def horizon_days(self, default: int) -> int:
        try:
            return int(self.params.get("horizon_days", default))
        except (TypeError, ValueError):
            return default


@dataclass
class Assessment:
    """What one window showed and what the policy made of it."""

    drift: DriftRun
    personas: PersonaShift | None
    quality: QualityCheck | None
    decision: Decision


def assess(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    policy: MonitoringPolicy,
    now: dt.datetime,
    last_retrain_at: dt.datetime | None = None,
    quality: QualityCheck | None = None,
    metadata: dict[str, str] | None = None,
    seed: int = 0,
) -> Assessment:
    """Drift report, persona shift and the policy decision for one window (no files, no MLflow).

    Args:
        reference: the champion's training reference (features and predictions).
        current: the current window (features and predictions).
        features: the model's feature columns.
        policy: the validated policy.
        now: decision time.
        last_retrain_at: start of the last retrain (cooldown).
        quality: quality on matured labels, if any.
        metadata: stored in the Evidently snapshot.
        seed: sampling seed.
    """
    drift = run_drift(reference, current, features, policy.drift, dict(policy.predictions.thresholds),
                      policy.predictions.method, metadata, seed, timestamp=now)
    personas = persona_shift(reference, current) if len(current) else None
    decision = decide(drift.summary, policy, now, last_retrain_at, personas, quality)
    return Assessment(drift, personas, quality, decision)


@dataclass
class MonitorResult:
    """What a monitoring run found, decided and did."""

    at: dt.datetime
    report_dir: Path
    decision: Decision
    drift: DriftSummary
    personas: PersonaShift | None
    quality: QualityCheck | None
    champion_version: str
    window: dict
    retrain: RetrainOutcome | None = None
    mlflow_run_id: str | None = None
    workspace_snapshot_id: str | None = None
    seconds: float = 0.0
    doc: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: status, the main numbers, what happened and where the report is."""
        share = self.drift.drifted_share
        testable = [c for c in self.drift.features if c.status != "insufficient_data"]
        parts = [f"monitor v{self.champion_version}: {self.decision.status}",
                 f"{self.drift.current_rows:,} rows",
                 f"{sum(c.status == 'drift' for c in testable)}/{len(testable)} features drifted"
                 + (f" ({share:.0%})" if share is not None else "")]
        for col in self.drift.predictions:
            if col.score is not None:
                parts.append(f"{col.column} {col.score:.3f}{' drift' if col.status == 'drift' else ''}")
        if self.personas is not None and self.personas.max_share_change is not None:
            parts.append(f"persona shift {self.personas.max_share_change:.1%}")
        if self.decision.reasons and self.decision.status != "ok":
            parts.append(self.decision.reasons[0])
        if self.retrain is not None:
            parts.append(self.retrain.summary())
        return " · ".join(parts) + f" -> {self.report_dir}"


def _utc(value: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(float(value))


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description:<28}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), transient=True)


class MonitorJob:
    """One monitoring run; MLflow, Feast and Evidently are opened inside :meth:`run`."""

    def __init__(self, settings: Settings, config: MonitorConfig | None = None,
                 train: Callable[[], object] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        """Args:
        settings: Persona settings.
        config: the run configuration.
        train: runs a retrain (default: ``TrainJob(settings, config.train).run``).
        clock: current time (tz-aware UTC); for tests.
        """
        self.settings = settings
        self.config = config or MonitorConfig()
        self._train = train
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # ---- MLflow ----
    def load_champion(self) -> Champion:
        """The champion version, its predictor, training metrics and reference data.

        Raises:
            PersonaError: no champion, not a persona bundle, or no reference data logged.
        """
        import mlflow

        from model.bundle import load_predictor
        from model.registry import CHAMPION, alias_version, configure_mlflow
        from training.train import REFERENCE_ARTIFACT

        client = configure_mlflow(self.settings)
        model = self.settings.registered_model
        version = alias_version(client, model, CHAMPION)
        if version is None:
            raise PersonaError(f"model {model!r} has no champion yet; run `persona train` before "
                               "`persona monitor`")
        model_version = client.get_model_version(model, version)
        run = client.get_run(model_version.run_id)
        try:
            predictor = load_predictor(f"models:/{model}/{version}")
        except Exception as exc:
            raise PersonaError(f"cannot load champion {model} v{version}: {exc}") from None
        if predictor.kind != "persona":
            raise PersonaError(f"champion {model} v{version} is a custom-target model; monitoring needs a "
                               "persona bundle (train one with `persona train`)")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=model_version.run_id,
                                                           artifact_path=REFERENCE_ARTIFACT, dst_path=tmp)
                reference = pd.read_parquet(path)
            except Exception:
                raise PersonaError(f"champion {model} v{version} (run {model_version.run_id}) has no "
                                   f"{REFERENCE_ARTIFACT} artifact; retrain with `persona train`") from None
        return Champion(model, str(version), model_version.run_id, predictor, reference,
                        dict(run.data.metrics), dict(run.data.params), dict(run.data.tags))

    def mlflow_last_retrain(self) -> dt.datetime | None:
        """Start of the latest monitoring run that retrained, from MLflow (None if none)."""
        from model.registry import configure_mlflow

        client = configure_mlflow(self.settings)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return None
        runs = client.search_runs([experiment.experiment_id],
                                  filter_string="tags.`retrain.status` = 'trained'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            return None
        started = runs[0].data.tags.get("retrain.started_at")
        if started:
            return dt.datetime.fromisoformat(started)
        return dt.datetime.fromtimestamp(runs[0].info.start_time / 1000, dt.UTC)

    def last_retrain_at(self) -> dt.datetime | None:
        """The latest retrain start known to this home or to MLflow."""
        known = [t for t in (read_last_retrain(self.settings), self.mlflow_last_retrain()) if t is not None]
        return max(known) if known else None

    # ---- data ----
    def _transactions(self, end: pd.Timestamp | None) -> pd.DataFrame | None:
        from features.build import read_raw

        frame = read_raw(self.settings, "transactions", columns=[ENTITY_KEY, TIMESTAMP, "amount"])
        if frame is None:
            return None
        if end is not None:
            frame = frame[pd.to_datetime(frame[TIMESTAMP], utc=True) <= end]
        return frame

    def snapshot_times(self) -> pd.DatetimeIndex:
        """The feature snapshot grid of this home's data (empty without ingested data)."""
        from features.build import snapshot_grid

        try:
            return snapshot_grid(self.settings)
        except PersonaError:
            return pd.DatetimeIndex([], tz="UTC")

    def score_snapshot(self, champion: Champion, at: pd.Timestamp) -> pd.DataFrame:
        """Every customer known at ``at``: offline features (point-in-time) and the champion's predictions."""
        from features.build import read_raw
        from features.dataset import build_training_set
        from scoring.score import known_customers

        transactions = read_raw(self.settings, "transactions", columns=[ENTITY_KEY, TIMESTAMP])
        customers = known_customers(read_raw(self.settings, "customers"), transactions, at)
        if customers.empty:
            return pd.DataFrame()
        entities = pd.DataFrame({ENTITY_KEY: customers, TIMESTAMP: at})
        features = build_training_set(self.settings, entities, champion.feature_service)
        predictions = champion.predictor.predict(features)
        keep = [c for c in features.columns if c not in PREDICTION_COLUMNS]
        return pd.concat([features[keep].reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)

    def current_window(self, champion: Champion, end: pd.Timestamp, log: pd.DataFrame,
                       times: pd.DatetimeIndex) -> tuple[pd.DataFrame, dict]:
        """Served rows of ``(end - window_days, end]`` plus the latest snapshot at or before ``end``."""
        start = end - pd.Timedelta(days=self.config.window_days)
        served, counts = select_served(log, start, end, champion.version)
        snapshot_at = latest_at_or_before(times, end)
        snapshot = self.score_snapshot(champion, snapshot_at) if snapshot_at is not None else pd.DataFrame()
        window = combine_window(served, snapshot)
        sources = window["source"].value_counts().to_dict() if len(window) else {}
        info = {"days": self.config.window_days, "start": start.isoformat(), "end": end.isoformat(),
                "snapshot_at": snapshot_at.isoformat() if snapshot_at is not None else None,
                "rows": int(len(window)), "sources": {str(k): int(v) for k, v in sources.items()},
                "served": counts}
        return window, info

    def matured_quality(self, champion: Champion, end: pd.Timestamp | None, log: pd.DataFrame,
                        times: pd.DatetimeIndex) -> QualityCheck | None:
        """Churn quality of the champion's predictions whose label window has closed.

        Two sources: served predictions older than the horizon, and the latest snapshot after the
        champion's holdout whose labels are complete (scored now by the champion).
        """
        from training.labels import latest_label_cutoff

        transactions = self._transactions(end)
        if transactions is None or transactions.empty:
            return None
        horizon = champion.horizon_days(self.settings.horizon_days)
        cutoff = latest_label_cutoff(transactions)
        parts, sources = [], {}
        served, _ = select_served(log, None, end if end is not None else cutoff, champion.version)
        if len(served) and ENTITY_KEY in served and "churn_probability" in served:
            served = served[served[ENTITY_KEY].notna() & served["churn_probability"].notna()]
            served = served[matured_mask(served[TIMESTAMP], cutoff, horizon).to_numpy()]
            if len(served):
                rows = served[[ENTITY_KEY, TIMESTAMP, "churn_probability"]]
                parts.append(rows.astype({ENTITY_KEY: "int64"}))
                sources["prediction_log"] = int(len(served))
        holdout_end = champion.holdout_end
        eligible = [t for t in times if t + pd.Timedelta(days=horizon) <= cutoff
                    and (holdout_end is None or t > holdout_end)]
        if eligible:
            scored = self.score_snapshot(champion, max(eligible))
            if len(scored):
                parts.append(scored[[ENTITY_KEY, TIMESTAMP, "churn_probability"]])
                sources["snapshot"] = int(len(scored))
        reference = reference_quality(champion.metrics)
        if not parts:
            return QualityCheck(0, {}, reference, None, {})
        labelled = label_predictions(pd.concat(parts, ignore_index=True), transactions, horizon)
        return quality_check(labelled, reference, sources)

    # ---- outputs ----
    def _report_dir(self, at: dt.datetime) -> Path:
        base = catalog.monitoring_reports(self.settings)
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        path, n = base / stamp, 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{n}"
        path.mkdir(parents=True)
        return path

    def add_to_workspace(self, snapshot: object, name: str, key_columns: list[str]) -> str:
        """Add the Evidently run to the local workspace project (created with a dashboard if new)."""
        from evidently.ui.workspace import Workspace

        path = catalog.evidently_workspace(self.settings)
        path.mkdir(parents=True, exist_ok=True)
        with exclusive(self.settings.home / "locks" / "evidently_workspace.lock"):
            workspace = Workspace(str(path))
            found = workspace.search_project(WORKSPACE_PROJECT)
            if found:
                project = found[0]
            else:
                project = workspace.create_project(WORKSPACE_PROJECT, description="Persona drift history "
                                                   "(persona monitor)")
                _add_dashboard(project, key_columns)
            ref = workspace.add_run(project.id, snapshot, include_data=False, name=name)
        return str(ref.id)

    def _record_mlflow(self, doc: dict, report_dir: Path) -> str | None:
        import mlflow

        from model.registry import configure_mlflow, ensure_experiment

        client = configure_mlflow(self.settings)
        experiment_id = ensure_experiment(client, self.settings, EXPERIMENT)
        outcome = doc.get("retrain_outcome") or {}
        tags = {
            "status": doc["status"], "retrain": str(doc["retrain"]).lower(),
            "triggers": ",".join(doc["triggers"]), "reason": "; ".join(doc["reasons"])[:4000],
            "champion_version": doc["champion"]["version"], "report_dir": str(report_dir),
            "window.end": doc["window"]["end"], "window.snapshot_at": str(doc["window"]["snapshot_at"]),
            "retrain.status": outcome.get("status", "none"),
        }
        for key in ("version", "promoted", "alias", "gate_reason", "started_at", "message"):
            if outcome.get(key) not in (None, ""):
                tags[f"retrain.{key}"] = str(outcome[key])[:4000]
        metrics = {"window_rows": doc["window"]["rows"], "reference_rows": doc["reference"]["rows"],
                   "retrain": float(bool(doc["retrain"])),
                   "retrained": float(outcome.get("status") == "trained"),
                   "drifted_share": doc["drift"]["drifted_share"]}
        if outcome.get("status") == "trained":
            metrics["promoted"] = float(bool(outcome.get("promoted")))
        for col in doc["drift"]["columns"]:
            if _finite(col.get("score")):
                metrics[f"drift.{col['column']}"] = col["score"]
            metrics[f"missing.{col['column']}"] = col["current_missing"]
        personas = doc.get("personas") or {}
        metrics["persona_max_share_change"] = personas.get("max_share_change")
        metrics["persona_moved_share"] = personas.get("moved_share")
        quality = doc.get("quality") or {}
        metrics["quality_rows"] = quality.get("rows", 0)
        for name, value in (quality.get("current") or {}).items():
            metrics[f"quality_{name}"] = value
        metrics["quality_drop"] = doc.get("quality_drop")
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor {report_dir.name}") as run:
            mlflow.set_tags(tags)
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})
            for name in ("summary.json", "index.html"):
                if (report_dir / name).exists():
                    mlflow.log_artifact(str(report_dir / name), artifact_path="monitoring")
            return run.info.run_id

    # ---- run ----
    def _default_train(self, champion: Champion) -> Callable[[], object]:
        def train() -> object:
            from training.train import TrainJob

            horizon = champion.horizon_days(self.settings.horizon_days)
            config = self.config.train or TrainConfig(horizon_days=horizon,
                                                      feature_service=champion.feature_service)
            return TrainJob(self.settings, config).run()

        return train

    def run(self) -> MonitorResult:
        """Monitor, decide, maybe retrain, and record.

        Raises:
            PersonaError: bad policy file, no champion or no reference data.
        """
        with warnings.catch_warnings():  # third-party deprecation chatter is noise to an ops user
            load_feast()  # on import Feast turns DeprecationWarning back on; silence after it
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return self._run()

    def _run(self) -> MonitorResult:
        at = self._clock()
        policy = load_policy(self.config.policy_path)
        as_of = _utc(self.config.as_of) if self.config.as_of is not None else None
        end = as_of if as_of is not None else _utc(at)
        with _progress() as progress:
            task = progress.add_task("loading champion", total=4)
            champion = self.load_champion()
            progress.update(task, advance=1, description="reading current window")
            log = read_prediction_log(catalog.prediction_log(self.settings))
            times = self.snapshot_times()
            current, window = self.current_window(champion, end, log, times)
            progress.update(task, advance=1, description="matured labels")
            quality = self.matured_quality(champion, as_of, log, times)
            progress.update(task, advance=1, description="drift report")
            metadata = {"champion_version": champion.version, "window_end": window["end"],
                        "snapshot_at": str(window["snapshot_at"])}
            assessment = assess(champion.reference, current, champion.features, policy, at,
                                self.last_retrain_at(), quality, metadata, self.config.seed)
            progress.update(task, advance=1)
        outcome = None
        if assessment.decision.retrain and self.config.retrain:
            # training shows its own progress; ours is closed by now (rich allows one live display)
            train = self._train or self._default_train(champion)
            outcome = retrain(self.settings, train, policy.cooldown_hours, self.mlflow_last_retrain,
                              self._clock)
        result = self._record(at, champion, window, policy, assessment, outcome)
        result.seconds = (self._clock() - at).total_seconds()
        return result

    def _record(self, at: dt.datetime, champion: Champion, window: dict, policy: MonitoringPolicy,
                assessment: Assessment, outcome: RetrainOutcome | None) -> MonitorResult:
        report_dir = self._report_dir(at)
        decision, drift = assessment.decision, assessment.drift
        files = {}
        snapshot_id = None
        if drift.snapshot is not None:
            drift.snapshot.save_html(str(report_dir / "drift_report.html"))
            drift.snapshot.save_json(str(report_dir / "drift_report.json"))
            files = {"drift_report_html": "drift_report.html", "drift_report_json": "drift_report.json"}
            try:
                key_columns = [*policy.predictions.thresholds, *policy.drift.key_features]
                name = f"{at:%Y-%m-%d %H:%M:%S} UTC {decision.status}"
                snapshot_id = self.add_to_workspace(drift.snapshot, name, key_columns)
            except Exception as exc:  # the history view must not cost the report
                logger.warning("could not add the run to the Evidently workspace: %s", exc)
        doc = {
            "at": at.isoformat(timespec="seconds"),
            "status": decision.status, "retrain": decision.retrain, "triggers": list(decision.triggers),
            "reasons": list(decision.reasons), "notes": list(decision.notes), "decision": decision.summary(),
            "champion": {"model": champion.model, "version": champion.version, "run_id": champion.run_id},
            "window": window,
            "reference": {"rows": int(len(champion.reference)), "run_id": champion.run_id},
            "drift": {"drifted_share": drift.summary.drifted_share,
                      "columns": json.loads(drift.summary.to_frame().to_json(orient="records"))
                      if drift.summary.columns else []},
            "personas": assessment.personas.to_dict() if assessment.personas is not None else None,
            "quality": assessment.quality.to_dict() if assessment.quality is not None else None,
            "quality_drop": (quality_drop(assessment.quality, policy.quality.metric)
                             if assessment.quality is not None else None),
            "retrain_outcome": ({**outcome.to_dict(), "summary": outcome.summary()}
                                if outcome is not None else None),
            "policy": policy.model_dump(mode="json"),
            "files": {**files, "summary_html": "index.html", "summary_json": "summary.json"},
            "workspace": {"path": str(catalog.evidently_workspace(self.settings)),
                          "project": WORKSPACE_PROJECT, "snapshot_id": snapshot_id},
        }
        (report_dir / "summary.json").write_text(json.dumps(doc, indent=2, default=str))
        (report_dir / "index.html").write_text(render_summary_html(doc))
        try:
            run_id = self._record_mlflow(doc, report_dir)
        except Exception as exc:  # the report on disk stands even if MLflow is unreachable
            logger.warning("could not record the monitoring run in MLflow: %s", exc)
            run_id = None
        doc["mlflow_run_id"] = run_id
        (report_dir / "summary.json").write_text(json.dumps(doc, indent=2, default=str))
        return MonitorResult(at, report_dir, decision, drift.summary, assessment.personas, assessment.quality,
                             champion.version, window, outcome, run_id, snapshot_id, doc=doc)


def _add_dashboard(project: object, key_columns: list[str]) -> None:
    """Line plots of the drift scores of the predictions and key features over runs."""
    try:
        from evidently.sdk.models import PanelMetric
        from evidently.sdk.panels import line_plot_panel

        values = [PanelMetric(legend=col, metric="ValueDrift", metric_labels={"column": col})
                  for col in key_columns]
        if values:
            project.dashboard.add_panel(line_plot_panel(title="Drift score of predictions and key features",
                                                        values=values), tab="Drift")
    except Exception as exc:  # a dashboard is a convenience
        logger.warning("could not add the Evidently dashboard panel: %s", exc)
