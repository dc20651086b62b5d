"""``persona serve``: check what serving needs, then hand over to ``bentoml serve``."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError
from core.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

SERVICE = "serving.service:PersonaService"


@contextlib.contextmanager
def _env_defaults(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set to ``values`` where unset, for the block only."""
    missing = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in missing})
    try:
        yield
    finally:
        for name in missing:
            os.environ.pop(name, None)


def serve_command(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 3000,
    poll_seconds: float = 10.0,
    wait_for_model: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The ``bentoml serve`` command line and environment for this home.

    Checks first (one-line errors): the API key rule of the profile, the online-store timeout
    setting, the online store, and a champion in the registry (unless ``wait_for_model``).

    Returns:
        ``(argv, env)`` to exec.

    Raises:
        PersonaError: what is missing and which command provides it.
    """
    from serving.auth import resolve_api_key
    from store.online_reader import FeatureStoreError, online_store_timeout

    resolve_api_key(settings)
    try:
        online_store_timeout(settings)
    except FeatureStoreError as exc:
        raise PersonaError(str(exc)) from None
    if settings.profile == "local" and not catalog.online_store_db(settings).exists():
        raise PersonaError(
            f"no online store under {settings.feast_dir}; run `persona features apply` and "
            "`persona features materialize` first"
        )
    if not wait_for_model:
        from model.registry import configure_mlflow
        from serving.runtime import MLFLOW_HTTP_DEFAULTS, RegistryUnavailable, resolve_alias

        hint = "start it (`persona prod up`), or pass --wait-for-model to load the champion once it answers"
        try:
            with _env_defaults(MLFLOW_HTTP_DEFAULTS):  # ask the registry briefly, as the server will
                version = resolve_alias(configure_mlflow(settings), settings.registered_model, settings.tracking_uri)
        except RegistryUnavailable as exc:
            raise PersonaError(f"{exc}; {hint}") from None
        except Exception as exc:
            raise PersonaError(f"cannot reach the MLflow registry at {settings.tracking_uri}: {exc}; {hint}") from None
        if version is None:
            raise PersonaError(
                f"model {settings.registered_model!r} has no champion; run `persona train` first "
                "(or pass --wait-for-model)"
            )
    env = {
        **os.environ,
        "PERSONA_HOME": str(settings.home),
        "PERSONA_PROFILE": settings.profile,
        "PERSONA_MODEL_POLL_SECONDS": str(poll_seconds),
    }
    env.setdefault("HF_HUB_OFFLINE", "1")
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(PROJECT_ROOT),
    ]
    return command, env
