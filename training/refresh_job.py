"""Run a label-free refresh (:mod:`training.refresh`) against the registry: fit, gate, log, register, move.

The refreshed version is a full Persona bundle in the same registered model: its MLflow run holds the
bundle with its code, the persona cards, the drift reference (the champion's rows described by the
new personas) and the champion's lineage tags, since its churn and value models are the champion's.
The alias move is a compare-and-set on the champion the gate saw, as for a training run.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import PersonaError
from core.timegrid import utc
from training import register
from training.refresh import (
    DEFAULT_MIN_GAIN,
    REFRESH_KEY,
    REFRESHED,
    REFRESHED_AT,
    REFRESHED_FROM,
    assemble,
    decide_refresh,
    fit_refresh,
    reference_of,
)

if TYPE_CHECKING:
    import pandas as pd

    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from training.config import TrainConfig

# Version tags of the champion that still describe the refreshed version (its supervised models are the same).
KEPT_TAG_PREFIXES = ("data.", "plan.", "feast.", "text_projection")
KEPT_TAGS = ("feature_service", "feature_list", "code_version")


@dataclass
class RefreshResult:
    """What a refresh did."""

    run_id: str
    model_name: str
    version: str
    base_version: str
    promoted: bool
    alias: str
    reason: str
    snapshot_at: str
    parts: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    persona_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One phrase: what was refreshed and what the gate made of it."""
        if self.promoted:
            return (f"refreshed {' and '.join(self.parts)} on the {self.snapshot_at[:10]} snapshot as "
                    f"v{self.version} (churn and value boosters from v{self.base_version}), promoted to champion "
                    f"({self.reason})")
        return (f"refitted {' and '.join(self.parts)} on the {self.snapshot_at[:10]} snapshot as v{self.version} "
                f"(churn and value boosters from v{self.base_version}), kept as {self.alias} ({self.reason})")

    def to_dict(self) -> dict:
        """Plain data for the monitoring summary."""
        return asdict(self)


def _kept_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k in KEPT_TAGS or k.startswith(KEPT_TAG_PREFIXES)}


def refresh_champion(
    settings: Settings,
    champion: PersonaPredictor,
    champion_version: str,
    reference: pd.DataFrame,
    rows: pd.DataFrame,
    snapshot_at: pd.Timestamp,
    config: TrainConfig,
    min_gain: float = DEFAULT_MIN_GAIN,
    matured: pd.DataFrame | None = None,
) -> RefreshResult:
    """Refit personas and value tiers on ``rows``, gate them, and register the candidate.

    Args:
        settings: Persona settings (registry, home for the cards).
        champion: the champion bundle.
        champion_version: its version (the compare-and-set's expected champion).
        reference: the champion's drift reference (re-described by the candidate and logged).
        rows: today's customers (the latest snapshot's features).
        snapshot_at: that snapshot.
        config: the training configuration (persona settings, seed, experiment).
        min_gain: silhouette gain needed to take new personas (see :func:`training.refresh.decide_refresh`).
        matured: rows after the champion's training window whose labels matured, with ``churned``
            (the churn calibration's rows; None keeps the calibration).

    Raises:
        PersonaError: the champion cannot be refreshed (not a persona bundle, missing columns).
    """
    import mlflow

    from model.registry import configure_mlflow, ensure_experiment
    from training.cards import write_cards
    from training.gate import skew_hold
    from training.lineage import LoggedRun, log_bundle
    from training.report import log_reference
    from training.train import persona_lines, persona_tags, read_skew_verdict

    started = time.perf_counter()
    try:
        fitted = fit_refresh(champion, rows, config.personas, config.seed, champion_version, snapshot_at, matured)
    except ValueError as exc:
        raise PersonaError(f"cannot refresh champion v{champion_version}: {exc}") from None
    decision = decide_refresh(fitted.metrics, fitted.outputs_equal, champion_version, min_gain,
                              skew_hold(read_skew_verdict(settings)))
    candidate = assemble(champion, fitted, decision)
    if decision.promote:
        parts = [*(REFRESHED[:2] if decision.personas else ()), *(REFRESHED[2:] if decision.calibration else ())]
    else:
        parts = [*REFRESHED[:2], *(REFRESHED[2:] if fitted.calibration is not None else ())]
    client = configure_mlflow(settings)
    model = settings.registered_model
    base_tags = dict(client.get_model_version(model, champion_version).tags)
    day = f"{snapshot_at:%Y-%m-%d}"
    tags = {**_kept_tags(base_tags), **persona_tags(fitted.match, champion_version),
            REFRESH_KEY: "label_free", REFRESHED_FROM: champion_version, REFRESHED_AT: snapshot_at.isoformat(),
            "gate.decision": decision.alias, "gate.reason": decision.reason[:4000],
            "gate.champion_version": champion_version}
    experiment_id = ensure_experiment(client, settings, config.experiment)
    verdict = "promoted" if decision.promote else decision.alias
    name = f"personas refresh of v{champion_version} to {day} {verdict}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        mlflow.log_params({"refresh": "label_free", "refreshed_from": champion_version, "snapshot_at": day,
                           "persona_k_min": config.personas.k_min, "persona_k_max": config.personas.k_max,
                           "min_silhouette_gain": min_gain, "seed": config.seed})
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: v for k, v in fitted.metrics.items() if np.isfinite(v)})
        meta = {"feature_service": champion.metadata.get("feature_service", ""), "snapshot": day,
                "k": len(fitted.cards), "silhouette": round(fitted.metrics["persona_silhouette"], 3),
                "refresh": f"label-free refresh of v{champion_version}: churn and value unchanged"}
        changes = None
        if fitted.match is not None:
            changes = {"champion": champion_version, "personas": [c.to_dict() for c in fitted.match.changes]}
        label = champion.policy.label if champion.policy is not None else None
        html_path, json_path = write_cards(fitted.cards, meta, tmp_dir / "cards", changes, settings.currency, label)
        mlflow.log_artifact(str(html_path), artifact_path="persona_cards")
        mlflow.log_artifact(str(json_path), artifact_path="persona_cards")
        mlflow.log_dict({"decision": decision.reason, "parts": parts, "calibration_note": fitted.calibration_note,
                         "metrics": fitted.metrics}, "refresh/decision.json")
        log_reference(reference_of(candidate, reference), tmp_dir)
        logged = LoggedRun(run.info.run_id, log_bundle(candidate, rows, champion.feature_columns, tmp_dir), tags)
    gated = [k[len("metric."):] for k in base_tags if k.startswith("metric.")]
    carried = {k: float(base_tags[f"metric.{k}"]) for k in gated}
    version = register.register(client, model, logged, carried, gated, settings)
    moved = register.move(client, model, version, decision.gate(), champion_version)
    if moved.promote and decision.personas:  # the home's cards are the champion's
        write_cards(fitted.cards, meta, settings.reports_dir, changes, settings.currency, label)
    return RefreshResult(logged.run_id, model, version, champion_version, moved.promote, moved.alias,
                         moved.reason, snapshot_at.isoformat(), parts, fitted.metrics,
                         persona_lines(fitted.match, champion_version), time.perf_counter() - started)


def _on_or_after(at: object, onset: object) -> bool:
    return bool(utc(at) >= utc(onset))


def refreshed_since(metadata: dict, onset: object) -> bool:
    """Whether a bundle is a refresh fitted on a snapshot at or after ``onset`` (the drift already handled)."""
    at = metadata.get(REFRESHED_AT)
    return metadata.get(REFRESH_KEY) == "label_free" and bool(at) and _on_or_after(at, onset)


def refresh_of(settings: Settings, champion_version: str, onset: object) -> tuple[str, str] | None:
    """``(version, alias)`` of a refresh of ``champion_version`` fitted since ``onset``, None when there is none.

    A refresh the gate kept as challenger also counts: the same drift is not refreshed again at every run.
    """
    from model.registry import configure_mlflow

    client = configure_mlflow(settings)
    model = settings.registered_model
    for found in client.search_model_versions(f"name='{model}'"):
        tags = found.tags or {}
        if (tags.get(REFRESH_KEY) == "label_free" and tags.get(REFRESHED_FROM) == str(champion_version)
                and tags.get(REFRESHED_AT) and _on_or_after(tags[REFRESHED_AT], onset)):
            alias = tags.get("gate.decision", "challenger")
            return str(found.version), alias
    return None
