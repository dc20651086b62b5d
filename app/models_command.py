"""``persona models list``: registered models, their versions, aliases, gated metrics and reasons.

Reads the registry only (:func:`model.versions.list_versions`); the MLflow UI shows the same
versions with their runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings
    from model.versions import VersionInfo

METRICS_SHOWN = 3


def collect(settings: Settings, model: str | None = None) -> dict[str, list[VersionInfo]]:
    """Versions per registered model (only ``model`` when given), newest first."""
    from core import catalog
    from model.registry import configure_mlflow
    from model.versions import list_versions, registered_models

    if settings.profile == "local" and not settings.mlflow_tracking_uri and not catalog.mlflow_db(settings).exists():
        return {}
    client = configure_mlflow(settings)
    names = [model] if model else registered_models(client)
    return {name: list_versions(client, name) for name in names}


def to_json(models: dict[str, list[VersionInfo]]) -> str:
    """The listing as JSON: model -> versions (with ISO times)."""
    doc = {name: [{**asdict(v), "created": v.created.isoformat(timespec="seconds")} for v in versions]
           for name, versions in models.items()}
    return json.dumps(doc, indent=2)


def metrics_line(metrics: dict[str, float]) -> str:
    """The first few gated metrics, e.g. ``churn_roc_auc 0.7800``."""
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())[:METRICS_SHOWN]) or "-"


def rows(models: dict[str, list[VersionInfo]]) -> list[tuple[str, ...]]:
    """One row per version: model, version, aliases, created, metrics, reason."""
    return [
        (name, f"v{v.version}", ", ".join(v.aliases) or "-", v.created.strftime("%Y-%m-%d %H:%M"),
         metrics_line(v.metrics), v.reason or "-")
        for name, versions in models.items()
        for v in versions
    ]


HEADER = ("model", "version", "aliases", "created (UTC)", "metrics", "reason")


def table(body: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text columns under :data:`HEADER` (the last column is not padded)."""
    widths = [max(len(r[i]) for r in [HEADER, *body]) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]) for r in [HEADER, *body]]
