"""``persona serve``: check what serving needs, then hand over to ``bentoml serve``."""

from __future__ import annotations

import os
import sys

from core import catalog
from core.errors import PersonaError
from core.settings import PROJECT_ROOT, Settings, check_setting, env_name, environ_defaults

SERVICE = "serving.service:PersonaService"


def serve_command(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 3000,
    poll_seconds: float | None = None,
    wait_for_model: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The ``bentoml serve`` command line and environment for this home.

    The child's environment is a new dict: this process's plus the settings the served process
    must see (home, profile, poll interval, by default ``settings.model_poll_seconds``); this
    process's own environment is not changed. Checks first (one-line errors): the port is free
    (a server already on it, perhaps an orphan, would otherwise end the new one in a traceback), ``poll_seconds``
    against the ``model_poll_seconds`` setting's rules (finite, positive), the API key rule
    of the profile, the online-store timeout setting, the online store, and a champion in the
    registry, the persona model's or a custom target's (unless ``wait_for_model``).

    Returns:
        ``(argv, env)`` to exec.

    Raises:
        PersonaError: what is missing and which command provides it.
    """
    from serving.auth import resolve_api_key
    from store.online_reader import FeatureStoreError, online_store_timeout

    # an explicit --poll-seconds obeys the setting's rules (inf would stop the watcher silently)
    poll = settings.model_poll_seconds if poll_seconds is None else check_setting("model_poll_seconds", poll_seconds)
    resolve_api_key(settings)
    check_port_free(host, port)
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
        from serving.registry_access import MLFLOW_HTTP_DEFAULTS, RegistryUnavailable, resolve_alias, target_champions

        hint = "start it (`persona prod up`), or pass --wait-for-model to load the champion once it answers"
        try:
            with environ_defaults(MLFLOW_HTTP_DEFAULTS):  # ask the registry briefly, as the server will
                client = configure_mlflow(settings)
                version = resolve_alias(client, settings.registered_model, settings.tracking_uri)
                targets = target_champions(client, settings) if version is None else []
        except RegistryUnavailable as exc:
            raise PersonaError(f"{exc}; {hint}") from None
        except Exception as exc:
            raise PersonaError(f"cannot reach the MLflow registry at {settings.tracking_uri}: {exc}; {hint}") from None
        if version is None and not targets:  # a custom target's champion alone is something to serve
            raise PersonaError(
                f"model {settings.registered_model!r} has no champion; run `persona train` first "
                "(or pass --wait-for-model)"
            )
    env = {
        "HF_HUB_OFFLINE": "1",
        **os.environ,
        env_name("home"): str(settings.home),
        env_name("profile"): settings.profile,
        env_name("model_poll_seconds"): str(poll),
    }
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


def check_port_free(host: str, port: int) -> None:
    """Raise a one-line error when ``host:port`` cannot be bound (another server holds it).

    Raises:
        PersonaError: naming the address and what to do.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PersonaError(
                    f"port {port} on {host} is already in use (another `persona serve`?); "
                    "stop that server or pass --port"
                ) from None
            raise PersonaError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
