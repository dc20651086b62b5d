"""``persona serve``: check what serving needs, then hand over to ``bentoml serve``."""

from __future__ import annotations

import os
import sys

from persona.errors import PersonaError
from persona.settings import PROJECT_ROOT, Settings

SERVICE = "serving.service:PersonaService"


def serve_command(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 3000,
    poll_seconds: float = 10.0,
    wait_for_model: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The ``bentoml serve`` command line and environment for this home.

    Checks first (one-line errors): the API key rule of the profile, the online store, and a
    champion in the registry (unless ``wait_for_model``).

    Returns:
        ``(argv, env)`` to exec.

    Raises:
        PersonaError: what is missing and which command provides it.
    """
    from serving.auth import resolve_api_key

    resolve_api_key(settings)
    if settings.profile == "local" and not (settings.feast_dir / "online_store.db").exists():
        raise PersonaError(
            f"no online store under {settings.feast_dir}; run `persona features apply` and "
            "`persona features materialize` first"
        )
    if not wait_for_model:
        from training.registry import alias_version, configure_mlflow

        try:
            version = alias_version(configure_mlflow(settings), settings.registered_model, "champion")
        except Exception as exc:
            raise PersonaError(
                f"cannot reach the MLflow registry at {settings.tracking_uri}: {exc}"
            ) from None
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
