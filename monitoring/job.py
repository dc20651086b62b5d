"""The monitoring job: champion reference vs current window -> report -> policy -> retrain.

``MonitorJob(settings, config).run()`` reads as its named steps:

1. the reference: the champion and its training data from MLflow (:mod:`monitoring.champion`);
2. the current window: prediction log of the last ``window_days`` plus the latest feature
   snapshot scored by the champion, and quality where labels have matured
   (:mod:`monitoring.current`);
3. drift, persona shifts and the policy decision (:func:`assess`: pure, no files, no MLflow);
4. a single-flight retrain if the policy says so (:mod:`monitoring.trigger`) and matured labels
   cover the drifted period (:mod:`monitoring.retrain_scope`); until then the run says which
   date the supervised models wait for;
5. the records: HTML and JSON under ``reports/monitoring/<UTC timestamp>/``, a run in the local
   Evidently workspace and a run in the ``persona-monitoring`` MLflow experiment
   (:mod:`monitoring.records`).

Steps 1-3 (:meth:`MonitorJob.observe`) report through ``on_progress``; 4-5
(:meth:`MonitorJob.conclude`) come after, so an app can close its bar before training draws its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core import catalog
from core.progress import silent
from core.timegrid import utc
from monitoring import champion as reference
from monitoring import current, label_free, records
from monitoring.assess import Assessment, assess
from monitoring.champion import EXPERIMENT, Champion
from monitoring.drift import DriftSummary
from monitoring.policy import DEFAULT_POLICY_PATH, Decision, MonitoringPolicy, load_policy
from monitoring.quality import QualityCheck
from monitoring.records import WORKSPACE_PROJECT
from monitoring.retrain_scope import RetrainScope, drift_onset, retrain_scope, waits_for_labels
from monitoring.shares import PersonaShift
from monitoring.skew import SkewReport
from monitoring.trigger import RetrainOutcome, read_last_retrain, retrain
from monitoring.window import clip_to_reference
from serving.prediction_log import read_prediction_log
from store.repo import load_feast
from training.config import TrainConfig
from training.labels import latest_label_cutoff

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from core.progress import ProgressEvent
    from core.settings import Settings
    from monitoring.trigger import Trained

__all__ = ["EXPERIMENT", "WORKSPACE_PROJECT", "Assessment", "Champion", "MonitorConfig", "MonitorJob",
           "MonitorResult", "Observation", "assess"]

logger = logging.getLogger(__name__)

STEPS = ("loading champion", "reading current window", "matured labels", "drift report", "skew replay")


class MonitorConfig(BaseModel):
    """One monitoring run.

    Attributes:
        window_days: served predictions of the last this many days form the window.
        as_of: evaluate as if it were this time (window end, latest snapshot at or before it,
            labels known by then); default: now and the latest snapshot.
        policy_path: the retraining policy YAML.
        retrain: act on a retrain decision (False: report only).
        train: the training configuration of a retrain (default: the champion's horizon and
            feature service, labels known by ``as_of``, other settings at their defaults).
        drift_since: when the drift began, if known (default: the first snapshot a run found
            drifted since the last run that found none, see :func:`monitoring.retrain_scope.drift_onset`).
        refresh: while churn and value wait for labels, refresh what needs none (personas and value
            tiers, :mod:`training.refresh`) through its gate.
        seed: sampling seed of the drift tests.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_days: int = Field(default=7, ge=1, le=3650)
    as_of: dt.datetime | None = None
    policy_path: Path = DEFAULT_POLICY_PATH
    retrain: bool = True
    train: TrainConfig | None = None
    drift_since: dt.datetime | None = None
    refresh: bool = True
    seed: int = 0


@dataclass
class Observation:
    """Steps 1-3 of a run: what was compared and what the policy decided."""

    at: dt.datetime
    policy: MonitoringPolicy
    champion: Champion
    window: dict
    assessment: Assessment
    skew: SkewReport | None = None
    skew_error: str | None = None
    label_cutoff: pd.Timestamp | None = None
    snapshots: pd.DatetimeIndex | None = None
    transactions: pd.DataFrame | None = None  # read once for quality; the refresh's calibration labels them too


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
    skew: SkewReport | None = None
    mlflow_run_id: str | None = None
    workspace_snapshot_id: str | None = None
    seconds: float = 0.0
    doc: dict = field(default_factory=dict)
    scope: RetrainScope | None = None

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
        if self.skew is not None and self.skew.rows:
            gone = self.skew.counts.get("snapshot_gone", 0)
            parts.append(f"skew {self.skew.mismatch_rate:.1%} max mismatch over {self.skew.rows:,} served rows"
                         + (f" ({gone:,} with rebuilt snapshots left out)" if gone else "")
                         + (" BLOCKS PROMOTION" if self.skew.blocked else ""))
        if self.scope is not None and self.scope.supervised:
            parts.append(f"labels cover the drift since {self.scope.drift_start:%Y-%m-%d}")
        if self.retrain is not None:
            parts.append(self.retrain.summary())
        return " · ".join(parts) + f" -> {self.report_dir}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Third-party deprecation chatter is noise to an ops user."""
    with warnings.catch_warnings():
        load_feast()  # on import Feast turns DeprecationWarning back on; silence after it
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


class MonitorJob:
    """One monitoring run; MLflow, Feast and Evidently are opened inside :meth:`run`.

    The readers below (champion, snapshot grid, scored snapshot, transactions) are methods so a
    test can replace them with frames.

    Args:
        settings: Persona settings.
        config: the run configuration.
        train: runs a retrain (default: ``TrainJob(settings, config.train).run``).
        clock: current time (tz-aware UTC); for tests.
        refresh: runs the label-free refresh (default: :meth:`refresh_label_free`); returns what
            :attr:`RetrainOutcome.refresh` holds.
    """

    def __init__(self, settings: Settings, config: MonitorConfig | None = None,
                 train: Callable[[], Trained] | None = None,
                 clock: Callable[[], dt.datetime] | None = None,
                 refresh: Callable[[Observation, RetrainScope], dict] | None = None) -> None:
        self.settings = settings
        self.config = config or MonitorConfig()
        self._train = train
        self._refresh = refresh
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # ---- readers ----
    def load_champion(self) -> Champion:
        """The champion and its training reference (see :func:`monitoring.champion.load_champion`)."""
        return reference.load_champion(self.settings)

    def mlflow_last_retrain(self) -> dt.datetime | None:
        """Start of the latest monitoring run that retrained, from MLflow (None if none)."""
        return reference.mlflow_last_retrain(self.settings)

    def last_retrain_at(self) -> dt.datetime | None:
        """The latest retrain start known to this home or to MLflow."""
        known = [t for t in (read_last_retrain(self.settings), self.mlflow_last_retrain()) if t is not None]
        return max(known) if known else None

    def _transactions(self, end: pd.Timestamp | None) -> pd.DataFrame | None:
        return current.read_transactions(self.settings, end)

    def snapshot_times(self) -> pd.DatetimeIndex:
        """The feature snapshot grid of this home's data (empty without ingested data)."""
        return current.snapshot_times(self.settings)

    def score_snapshot(self, champion: Champion, at: pd.Timestamp) -> pd.DataFrame:
        """Every customer known at ``at``: offline features (point-in-time) and the champion's predictions."""
        return current.score_snapshot(self.settings, champion, at)

    def replay_skew(self, champion: Champion, policy: MonitoringPolicy, end: pd.Timestamp,
                    log: pd.DataFrame) -> SkewReport:
        """Served rows of the window rebuilt offline (:func:`monitoring.skew.replay`); the verdict is written."""
        from monitoring import skew

        lookup: Callable[[str], str] | None = None

        def service_of(version: str) -> str:  # the champion's is known; ask MLflow for others only
            nonlocal lookup
            if version == champion.version:
                return champion.feature_service
            lookup = lookup or skew.feature_service_of(self.settings)
            return lookup(version)

        report = skew.replay(self.settings, policy.skew, self.config.window_days, end, service_of, log,
                             seed=self.config.seed)
        skew.write_verdict(self.settings, report)
        return report

    # ---- run ----
    def run(self, on_progress: ProgressEvent = silent) -> MonitorResult:
        """Monitor, decide, maybe retrain, and record.

        Args:
            on_progress: told as steps 1-3 advance (``done`` of 4, the step as ``note``).

        Raises:
            PersonaError: bad policy file, no champion or no reference data.
        """
        return self.conclude(self.observe(on_progress))

    def observe(self, on_progress: ProgressEvent = silent) -> Observation:
        """Steps 1-3: the champion's reference, the current window, drift and the decision.

        Raises:
            PersonaError: bad policy file, no champion or no reference data.
        """
        with _quiet():
            at = self._clock()
            policy = load_policy(self.config.policy_path)
            as_of = utc(self.config.as_of) if self.config.as_of is not None else None
            end = as_of if as_of is not None else utc(at)
            on_progress(0, len(STEPS), STEPS[0])
            champion = self.load_champion()
            on_progress(1, len(STEPS), STEPS[1])
            log = read_prediction_log(catalog.prediction_log(self.settings))
            times = self.snapshot_times()
            window_rows, window = current.current_window(champion, end, self.config.window_days, log, times,
                                                         self.score_snapshot)
            window_rows, clipped = clip_to_reference(window_rows, champion.reference)
            if clipped:
                window["clipped_values"] = clipped
                logger.warning("clipped extreme served values to the reference range before drift: %s", clipped)
            on_progress(2, len(STEPS), STEPS[2])
            transactions = self._transactions(as_of)
            quality = current.matured_quality(champion, as_of, log, times, transactions,
                                              self.score_snapshot, self.settings.horizon_days)
            on_progress(3, len(STEPS), STEPS[3])
            metadata = {"champion_version": champion.version, "window_end": window["end"],
                        "snapshot_at": str(window["snapshot_at"])}
            assessment = assess(champion.reference, window_rows, champion.features, policy, at,
                                self.last_retrain_at(), quality, metadata, self.config.seed)
            on_progress(4, len(STEPS), STEPS[4])
            skew_report, skew_error = None, None
            try:  # before any retrain: its gate reads the verdict
                skew_report = self.replay_skew(champion, policy, end, log)
            except Exception as exc:  # the drift report stands without it; the summary says why
                skew_error = f"{type(exc).__name__}: {exc}"
                logger.warning("skew replay failed: %s", skew_error)
            on_progress(len(STEPS), len(STEPS))
        cutoff = latest_label_cutoff(transactions) if transactions is not None and len(transactions) else None
        return Observation(at, policy, champion, window, assessment, skew_report, skew_error, cutoff, times,
                           transactions)

    def conclude(self, seen: Observation, on_progress: ProgressEvent = silent) -> MonitorResult:
        """Steps 4-5: retrain when the policy says so (and the config allows), then record everything.

        Args:
            seen: what :meth:`observe` found.
            on_progress: told as a retrain advances (training's own steps).
        """
        with _quiet():
            outcome, scope = None, None
            if seen.assessment.decision.retrain and self.config.retrain:
                scope = self.retrain_scope(seen)
                if scope is not None and waits_for_labels(scope, seen.assessment.decision.triggers):
                    refreshed = None
                    if self.config.refresh:
                        refreshed = (self._refresh or self.refresh_label_free)(seen, scope)
                    outcome = RetrainOutcome("waiting_for_labels", message=(
                        f"{scope.summary()}; then post-shift training snapshots from {scope.train_from:%Y-%m-%d}, "
                        f"holdout from {scope.holdout_from:%Y-%m-%d}"), refresh=refreshed)
                else:
                    train = self._train or self._default_train(seen.champion, on_progress)
                    outcome = retrain(self.settings, train, seen.policy.cooldown_hours, self.mlflow_last_retrain,
                                      self._clock)
            result = self._record(seen, outcome, scope)
        result.seconds = (self._clock() - seen.at).total_seconds()
        return result

    def retrain_scope(self, seen: Observation) -> RetrainScope | None:
        """Whether matured labels cover the drifted period (None: no labels or snapshot to tell).

        The supervised models train on the freshest matured window; this says whether that window
        holds post-shift snapshots for training and holdout, or the date it will.
        """
        snapshot_at = seen.window.get("snapshot_at")
        if seen.label_cutoff is None or snapshot_at is None:
            return None
        history = [row for version in label_free.lineage(seen.champion)
                   for row in records.drift_history(self.settings, version)]
        onset = self.config.drift_since or drift_onset(snapshot_at, history)
        train = self.config.train
        horizon = train.horizon_days if train else seen.champion.horizon_days(self.settings.horizon_days)
        return retrain_scope(onset, seen.label_cutoff, horizon, self.settings.snapshot_every_days,
                             seen.snapshots if seen.snapshots is not None else (),
                             purge=train.purge if train else True, refresh=())

    def refresh_label_free(self, seen: Observation, scope: RetrainScope) -> dict:
        """Refresh personas and value tiers on the latest snapshot (:func:`monitoring.label_free.refresh`)."""
        def matured() -> pd.DataFrame | None:
            return current.matured_rows(seen.champion, seen.snapshots, seen.transactions, self.score_snapshot,
                                        self.settings.horizon_days)

        return label_free.refresh(self.settings, seen.champion, seen.window.get("snapshot_at"), scope,
                                  self.config.train, self.score_snapshot, matured)

    def _default_train(self, champion: Champion, on_progress: ProgressEvent = silent) -> Callable[[], Trained]:
        def train() -> Trained:
            from training.train import TrainJob

            horizon = champion.horizon_days(self.settings.horizon_days)
            config = self.config.train or TrainConfig(horizon_days=horizon, as_of=self.config.as_of,
                                                      feature_service=champion.feature_service)
            return TrainJob(self.settings, config, on_progress=on_progress).run()

        return train

    def _record(self, seen: Observation, outcome: RetrainOutcome | None,
                scope: RetrainScope | None = None) -> MonitorResult:
        at, policy, assessment = seen.at, seen.policy, seen.assessment
        decision, drift = assessment.decision, assessment.drift
        folder = records.report_dir(self.settings, at)
        key_columns = [*policy.predictions.thresholds, *policy.drift.key_features]
        files, snapshot_id = records.save_drift_report(
            self.settings, drift, folder, f"{at:%Y-%m-%d %H:%M:%S} UTC {decision.status}", key_columns,
            tags={"model_version": seen.champion.version, "decision": decision.status})
        doc = records.summary_doc(self.settings, at, seen.champion, seen.window, policy, decision, drift,
                                  assessment.personas, assessment.quality, outcome, files, snapshot_id, scope)
        doc["skew"] = seen.skew.to_dict() if seen.skew is not None else {"error": seen.skew_error}
        records.write_summary(doc, folder)
        try:
            run_id = records.record_mlflow(self.settings, doc, folder)
        except Exception as exc:  # the report on disk stands even if MLflow is unreachable
            logger.warning("could not record the monitoring run in MLflow: %s", exc)
            run_id = None
        doc["mlflow_run_id"] = run_id
        records.write_summary(doc, folder, html=False)
        return MonitorResult(at, folder, decision, drift.summary, assessment.personas, assessment.quality,
                             seen.champion.version, seen.window, outcome, seen.skew, run_id, snapshot_id, doc=doc,
                             scope=scope)
