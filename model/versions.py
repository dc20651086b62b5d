"""Read-only views of the registry: versions with their aliases, gated metrics and the reason they hold them.

What ``persona models list`` and ``persona status`` show; the reasons come from the alias history
that :mod:`model.registry` writes on every move.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass

from model.registry import HISTORY_TAG


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version as ``persona models list`` and ``persona status`` show it.

    Attributes:
        model: registered model name.
        version: the version number (as MLflow's string).
        aliases: aliases held by this version now.
        created: registration time (UTC).
        run_id: the training run.
        metrics: the gated holdout metrics (``metric.<name>`` version tags).
        reason: why the version received the alias it holds (else its latest alias move), from
            the alias history; None when it never held one.
        description: the version's description in the registry.
    """

    model: str
    version: str
    aliases: tuple[str, ...]
    created: dt.datetime
    run_id: str | None
    metrics: dict[str, float]
    reason: str | None
    description: str


def move_reason(history: list[dict], version: str, aliases: tuple[str, ...] = ()) -> str | None:
    """The reason of the latest move that gave ``version`` one of ``aliases`` (any alias if none match)."""
    moves = [entry for entry in history if str(entry.get("to")) == str(version)]
    chosen = [entry for entry in moves if entry.get("alias") in aliases] or moves
    return str(chosen[-1].get("reason")) if chosen else None


def _metrics(tags: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            with contextlib.suppress(ValueError):
                out[key.removeprefix("metric.")] = float(value)
    return out


def _version_info(model: str, mv, held: dict[str, str] | None = None) -> VersionInfo:
    tags = dict(mv.tags or {})
    try:
        history = list(json.loads(tags.get(HISTORY_TAG, "[]")))
    except json.JSONDecodeError:
        history = []
    aliases = tuple(sorted(getattr(mv, "aliases", None) or ()))
    if held is not None:  # version searches leave aliases out: take them from the registered model
        aliases = tuple(sorted(a for a, v in held.items() if str(v) == str(mv.version)))
    return VersionInfo(
        model=model,
        version=str(mv.version),
        aliases=aliases,
        created=dt.datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, dt.UTC),
        run_id=mv.run_id,
        metrics=_metrics(tags),
        reason=move_reason(history, str(mv.version), aliases),
        description=mv.description or "",
    )


def registered_models(client) -> list[str]:
    """Names of every registered model of this registry, sorted."""
    return sorted(m.name for m in client.search_registered_models())


def list_versions(client, model: str) -> list[VersionInfo]:
    """Every version of ``model``, newest first (empty when the model is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        held = dict(client.get_registered_model(model).aliases or {})
    except MlflowException:
        return []
    versions = client.search_model_versions(f"name = '{model}'")
    return sorted((_version_info(model, mv, held) for mv in versions), key=lambda v: -int(v.version))


def alias_info(client, model: str, alias: str) -> VersionInfo | None:
    """The version holding ``alias`` with its reason, or None."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(model, alias)
    except MlflowException:
        return None
    return _version_info(model, mv)
