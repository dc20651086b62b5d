"""MLflow edges: tracking setup, aliases with a recorded history, promote and rollback.

Every alias move is written into model version tags (``persona.alias_history``, a JSON list of
``{at, alias, from, to, reason}``) on both the version that gains the alias and the one that
loses it. A version promoted to ``champion`` remembers whom it replaced
(``persona.previous_champion``); ``rollback`` walks back along that chain.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from persona.errors import PersonaError
from persona.settings import Settings
from training.gate import CHALLENGER, CHAMPION

HISTORY_TAG = "persona.alias_history"
PREVIOUS_CHAMPION_TAG = "persona.previous_champion"


def configure_mlflow(settings: Settings):  # noqa: ANN201 - MlflowClient, imported lazily
    """Point MLflow (tracking and registry) at this profile's store and return a client.

    The local profile keeps a SQLite backend under ``settings.mlflow_dir`` (absolute, so it
    does not depend on the working directory).
    """
    import os

    import mlflow
    from mlflow import MlflowClient

    # the CLI shows its own progress; MLflow's per-artifact bars only add noise
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.profile == "local" and not settings.mlflow_tracking_uri:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_experiment(client, settings: Settings, name: str) -> str:  # noqa: ANN001
    """The experiment id, creating it with local artifacts (``settings.artifact_root``) if needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (
        settings.artifact_root if settings.profile == "local" and not settings.mlflow_tracking_uri else None
    )
    return client.create_experiment(name, artifact_location=location)


def alias_version(client, model: str, alias: str) -> str | None:  # noqa: ANN001
    """The version holding ``alias``, or None (also when the model is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def _history(client, model: str, version: str) -> list[dict]:  # noqa: ANN001
    tags = client.get_model_version(model, version).tags or {}
    try:
        return list(json.loads(tags.get(HISTORY_TAG, "[]")))
    except json.JSONDecodeError:
        return []


def alias_history(client, model: str, version: str) -> list[dict]:  # noqa: ANN001
    """Every alias move that touched ``version`` (oldest first)."""
    return _history(client, model, str(version))


def move_alias(
    client,
    model: str,
    alias: str,
    version: str,
    reason: str,  # noqa: ANN001
    now: dt.datetime | None = None,
    record_previous: bool = True,
) -> dict:
    """Move ``alias`` to ``version`` and record the move on the versions involved.

    Args:
        client: MLflow client.
        model: registered model name.
        alias: e.g. ``champion``.
        version: the version that receives the alias.
        reason: why (shown in the history).
        now: time of the move (default: now, UTC).
        record_previous: for ``champion``, remember the replaced version for rollback.

    Returns:
        The history entry ``{at, alias, from, to, reason}``.
    """
    version = str(version)
    previous = alias_version(client, model, alias)
    entry = {
        "at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "alias": alias,
        "from": previous,
        "to": version,
        "reason": reason,
    }
    client.set_registered_model_alias(model, alias, version)
    for touched in {version, previous} - {None}:
        history = _history(client, model, touched) + [entry]
        client.set_model_version_tag(model, touched, HISTORY_TAG, json.dumps(history))
    if alias == CHAMPION and record_previous and previous and previous != version:
        client.set_model_version_tag(model, version, PREVIOUS_CHAMPION_TAG, previous)
    return entry


@dataclass(frozen=True)
class AliasMove:
    """Result of promote/rollback, for the CLI."""

    model: str
    alias: str
    from_version: str | None
    to_version: str
    reason: str

    def summary(self) -> str:
        return f"{self.model}@{self.alias}: v{self.from_version or '-'} -> v{self.to_version} ({self.reason})"


def _check_version(client, model: str, version: str) -> None:  # noqa: ANN001
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model, str(version))
    except MlflowException:
        raise PersonaError(
            f"model {model!r} has no version {version}; see the MLflow UI or `persona train` to register one"
        ) from None


def promote(settings: Settings, version: int | str, reason: str | None = None) -> AliasMove:
    """Make ``version`` the champion by hand (ops decision, bypassing the gate).

    Raises:
        PersonaError: unknown version, or it is already the champion.
    """
    client = configure_mlflow(settings)
    model = settings.registered_model
    version = str(version)
    _check_version(client, model, version)
    current = alias_version(client, model, CHAMPION)
    if current == version:
        raise PersonaError(f"v{version} is already the champion of {model!r}; nothing to do")
    entry = move_alias(client, model, CHAMPION, version, reason or "manual promotion (persona promote)")
    if alias_version(client, model, CHALLENGER) == version:
        client.delete_registered_model_alias(model, CHALLENGER)
    return AliasMove(model, CHAMPION, entry["from"], version, entry["reason"])


def rollback(settings: Settings, reason: str | None = None) -> AliasMove:
    """Move ``champion`` back to the version the current champion replaced.

    Raises:
        PersonaError: no champion, or the champion replaced nobody.
    """
    client = configure_mlflow(settings)
    model = settings.registered_model
    current = alias_version(client, model, CHAMPION)
    if current is None:
        raise PersonaError(f"model {model!r} has no champion to roll back; train one with `persona train`")
    tags = client.get_model_version(model, current).tags or {}
    target = tags.get(PREVIOUS_CHAMPION_TAG)
    if not target:
        raise PersonaError(
            f"champion v{current} of {model!r} replaced no earlier champion; nothing to roll back to"
        )
    _check_version(client, model, target)
    entry = move_alias(
        client, model, CHAMPION, target, reason or f"rollback from v{current}", record_previous=False
    )
    return AliasMove(model, CHAMPION, entry["from"], target, entry["reason"])
