"""Asking the MLflow registry which version holds an alias, and telling "absent" from "unreachable".

The serving process, the Bento builder and the launcher ask the registry the same question; a
missing model or alias is an answer (None), a registry that cannot answer is
:class:`RegistryUnavailable` naming the server and the innermost cause in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

CHAMPION = "champion"
# MLflow's client retries a failed call 7 times with exponential backoff (minutes) and waits up to
# 120 s for an answer; the served process polls again anyway, so it asks once or twice and moves on.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# Error codes of "no such model / alias" (as opposed to a registry that cannot answer).
_ABSENT_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


class RegistryUnavailable(RuntimeError):
    """The MLflow tracking server (model registry) cannot answer (message names it)."""


def is_absent(exc: BaseException) -> bool:
    """Whether an MLflow error means "no such model, version or alias" (an answer, not an outage)."""
    return getattr(exc, "error_code", None) in _ABSENT_CODES


def resolve_alias(client, model: str, tracking_uri: str, alias: str = CHAMPION) -> str | None:
    """The version holding ``alias``; None when the model or alias does not exist.

    Raises:
        RegistryUnavailable: the registry did not answer (server down, timeout, server error).
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if is_absent(exc):
            return None
        raise RegistryUnavailable(f"MLflow tracking server {tracking_uri} unreachable: {_root_cause(exc)}") from None


def target_champions(client, settings: Settings) -> list[str]:
    """Custom targets' models (``<registered_model>-<target>``) that have a champion, by name.

    Raises:
        RegistryUnavailable: the registry did not answer.
    """
    from mlflow.exceptions import MlflowException

    from model.uplift import uplift_model_name

    prefix = f"{settings.registered_model}-"
    try:
        names = [m.name for m in client.search_registered_models(filter_string=f"name LIKE '{prefix}%'")]
    except MlflowException as exc:
        raise RegistryUnavailable(
            f"MLflow tracking server {settings.tracking_uri} unreachable: {_root_cause(exc)}"
        ) from None
    return sorted(
        name for name in names
        if name != uplift_model_name(settings.registered_model)
        and resolve_alias(client, name, settings.tracking_uri) is not None
    )


def _root_cause(exc: BaseException) -> str:
    """The innermost error behind ``exc``, in one line.

    ``ConnectionRefusedError: [Errno 111] Connection refused``, or ``exc`` itself when it has no
    cause (an error answer of the server).
    """
    root, seen = exc, {id(exc)}
    while (nested := root.__cause__ or root.__context__) is not None and id(nested) not in seen:
        root = nested
        seen.add(id(root))
    text = " ".join(str(root).split())[:300]
    return text if root is exc else f"{type(root).__name__}: {text}"


__all__ = ["MLFLOW_HTTP_DEFAULTS", "RegistryUnavailable", "resolve_alias"]
