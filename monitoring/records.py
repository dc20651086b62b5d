"""Where a monitoring run is recorded: the report folder, the Evidently workspace and MLflow.

:func:`summary_doc` is the run as plain data (the ``summary.json`` of the report); the writers
below put it on disk, into the workspace history and into the ``persona-monitoring`` experiment.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

from core import catalog
from core.locks import exclusive
from monitoring.champion import EXPERIMENT
from monitoring.policy import quality_drop
from monitoring.render import render_summary_html

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping
    from pathlib import Path

    from core.settings import Settings
    from monitoring.champion import Champion
    from monitoring.drift import DriftRun
    from monitoring.policy import Decision, MonitoringPolicy
    from monitoring.quality import QualityCheck
    from monitoring.retrain_scope import RetrainScope
    from monitoring.shares import PersonaShift
    from monitoring.trigger import RetrainOutcome

logger = logging.getLogger(__name__)

WORKSPACE_PROJECT = "persona-monitoring"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(float(value))


def report_dir(settings: Settings, at: dt.datetime) -> Path:
    """A new folder ``reports/monitoring/<UTC timestamp>[-n]/`` for one run (created)."""
    base = catalog.monitoring_reports(settings)
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    path, n = base / stamp, 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def add_to_workspace(settings: Settings, snapshot: Any, name: str, key_columns: list[str]) -> str:
    """Add the Evidently run to the local workspace project (created with a dashboard if new)."""
    from evidently.ui.workspace import Workspace

    path = catalog.evidently_workspace(settings)
    path.mkdir(parents=True, exist_ok=True)
    with exclusive(settings.home / "locks" / "evidently_workspace.lock"):
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


def save_drift_report(
    settings: Settings, drift: DriftRun, folder: Path, name: str, key_columns: list[str],
    tags: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], str | None]:
    """Evidently's HTML and JSON into ``folder`` and the run into the workspace history.

    ``tags`` (e.g. the champion's ``model_version`` and the monitor's ``decision``) tag the saved
    snapshot (:func:`monitoring.drift.tagged`).

    Returns:
        The files written (by role) and the workspace snapshot id (None when not added).
    """
    from monitoring.drift import tagged

    if drift.snapshot is None:
        return {}, None
    snapshot = tagged(drift.snapshot, tags) if tags else drift.snapshot
    snapshot.save_html(str(folder / "drift_report.html"))
    snapshot.save_json(str(folder / "drift_report.json"))
    files = {"drift_report_html": "drift_report.html", "drift_report_json": "drift_report.json"}
    try:
        return files, add_to_workspace(settings, snapshot, name, key_columns)
    except Exception as exc:  # the history view must not cost the report
        logger.warning("could not add the run to the Evidently workspace: %s", exc)
        return files, None


def drift_history(settings: Settings, champion_version: str) -> list[tuple[str, bool]]:
    """``(snapshot_at, drifted)`` of the recorded runs against ``champion_version`` (a trigger fired = drifted).

    Read from the ``summary.json`` of each run folder; an unreadable one is skipped (it is history,
    not a fact the run depends on).
    """
    out: list[tuple[str, bool]] = []
    for path in sorted(catalog.monitoring_reports(settings).glob("*/summary.json")):
        try:
            doc = json.loads(path.read_text())
            if str(doc["champion"]["version"]) == champion_version and doc["window"].get("snapshot_at"):
                out.append((doc["window"]["snapshot_at"], bool(doc.get("triggers"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def summary_doc(settings: Settings, at: dt.datetime, champion: Champion, window: dict, policy: MonitoringPolicy,
                decision: Decision, drift: DriftRun, personas: PersonaShift | None, quality: QualityCheck | None,
                outcome: RetrainOutcome | None, files: dict[str, str], snapshot_id: str | None,
                scope: RetrainScope | None = None) -> dict:
    """The run as plain data: decision, window, drift per column, personas, quality, retrain, files."""
    return {
        "at": at.isoformat(timespec="seconds"),
        "status": decision.status, "retrain": decision.retrain, "triggers": list(decision.triggers),
        "reasons": list(decision.reasons), "notes": list(decision.notes), "decision": decision.summary(),
        "champion": {"model": champion.model, "version": champion.version, "run_id": champion.run_id},
        "window": window,
        "reference": {"rows": len(champion.reference), "run_id": champion.run_id},
        "drift": {"drifted_share": drift.summary.drifted_share,
                  "columns": json.loads(drift.summary.to_frame().to_json(orient="records"))
                  if drift.summary.columns else []},
        "personas": personas.to_dict() if personas is not None else None,
        "quality": quality.to_dict() if quality is not None else None,
        "quality_drop": quality_drop(quality, policy.quality.metric) if quality is not None else None,
        "retrain_outcome": {**outcome.to_dict(), "summary": outcome.summary()} if outcome is not None else None,
        "retrain_scope": scope.to_dict() if scope is not None else None,
        "policy": policy.model_dump(mode="json"),
        "files": {**files, "summary_html": "index.html", "summary_json": "summary.json"},
        "workspace": {"path": str(catalog.evidently_workspace(settings)),
                      "project": WORKSPACE_PROJECT, "snapshot_id": snapshot_id},
    }


def write_summary(doc: dict, folder: Path, html: bool = True) -> None:
    """``summary.json`` (and the ``index.html`` rendering of it) into ``folder``."""
    (folder / "summary.json").write_text(json.dumps(doc, indent=2, default=str))
    if html:
        (folder / "index.html").write_text(render_summary_html(doc))


def record_mlflow(settings: Settings, doc: dict, folder: Path) -> str | None:
    """One run in the monitoring experiment: tags, finite metrics, the summary files. Its id."""
    import mlflow

    from model.registry import configure_mlflow, ensure_experiment

    client = configure_mlflow(settings)
    experiment_id = ensure_experiment(client, settings, EXPERIMENT)
    outcome = doc.get("retrain_outcome") or {}
    tags = {
        "status": doc["status"], "retrain": str(doc["retrain"]).lower(),
        "triggers": ",".join(doc["triggers"]), "reason": "; ".join(doc["reasons"])[:4000],
        "champion_version": doc["champion"]["version"], "report_dir": str(folder),
        "window.end": doc["window"]["end"], "window.snapshot_at": str(doc["window"]["snapshot_at"]),
        "retrain.status": outcome.get("status", "none"),
    }
    for key in ("version", "promoted", "alias", "gate_reason", "started_at", "message", "train_window",
                "holdout_window"):
        if outcome.get(key) not in (None, ""):
            tags[f"retrain.{key}"] = str(outcome[key])[:4000]
    refresh = outcome.get("refresh") or {}
    if refresh:
        tags["refresh.status"] = str(refresh.get("status", ""))
        for key in ("version", "alias", "reason"):
            if refresh.get(key) not in (None, ""):
                tags[f"refresh.{key}"] = str(refresh[key])[:4000]
    scope = doc.get("retrain_scope") or {}
    if scope:
        tags["retrain.scope"] = "labels_cover_drift" if scope.get("supervised") else "waiting_for_labels"
        tags["retrain.labels_ready_at"] = str(scope.get("ready_at"))
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
    skew = doc.get("skew") or {}
    if skew.get("rows"):
        metrics["skew_mismatch_rate"] = skew.get("mismatch_rate")
        metrics["skew_rows"] = skew.get("rows")
        tags["skew.blocked"] = str(bool(skew.get("blocked"))).lower()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor {folder.name}") as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})
        for name in ("summary.json", "index.html"):
            if (folder / name).exists():
                mlflow.log_artifact(str(folder / name), artifact_path="monitoring")
        return run.info.run_id


def _add_dashboard(project: Any, key_columns: list[str]) -> None:
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
