"""The production profile's services on one machine: Postgres databases, Redis, an MLflow server.

``persona prod up`` creates the Postgres databases Persona uses (offline store + Feast registry,
and MLflow's backend store), checks Redis, and starts ``mlflow server`` in the background with its
artifacts under ``$PERSONA_HOME/mlflow/artifacts``; ``persona prod down`` stops the server.
Connection settings come from ``PERSONA_POSTGRES_*`` / ``PERSONA_REDIS_*`` / ``PERSONA_MLFLOW_PORT``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from core.settings import Settings

MLFLOW_DB_SUFFIX = "_mlflow"


@dataclass(frozen=True)
class ServiceStatus:
    """One service's state, for ``persona prod status``."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """One status line: name, up/DOWN, detail."""
        return f"{self.name:<9} {'up' if self.ok else 'DOWN':<5} {self.detail}"


def _admin_conninfo(settings: Settings) -> str:
    password = f" password={settings.postgres_password}" if settings.postgres_password else ""
    return (f"host={settings.postgres_host} port={settings.postgres_port} user={settings.postgres_user} "
            f"dbname=postgres connect_timeout=5{password}")


def mlflow_backend_uri(settings: Settings) -> str:
    """SQLAlchemy URL of MLflow's backend store database."""
    auth = settings.postgres_user + (f":{settings.postgres_password}" if settings.postgres_password else "")
    return (f"postgresql+psycopg://{auth}@{settings.postgres_host}:{settings.postgres_port}/"
            f"{settings.postgres_db}{MLFLOW_DB_SUFFIX}")


def ensure_databases(settings: Settings) -> list[str]:
    """Create Persona's Postgres databases when missing.

    Returns:
        Names of the databases created.
    """
    import psycopg

    created = []
    try:
        with psycopg.connect(_admin_conninfo(settings), autocommit=True) as conn:
            for name in (settings.postgres_db, settings.postgres_db + MLFLOW_DB_SUFFIX):
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
    except psycopg.OperationalError as exc:
        raise PersonaError(
            f"cannot reach Postgres at {settings.postgres_host}:{settings.postgres_port}: "
            f"{str(exc).strip().splitlines()[0]}; start it or set PERSONA_POSTGRES_HOST/PORT"
        ) from None
    return created


def postgres_status(settings: Settings) -> ServiceStatus:
    """Whether Postgres answers and Persona's databases exist."""
    import psycopg

    where = f"{settings.postgres_host}:{settings.postgres_port}"
    names = (settings.postgres_db, settings.postgres_db + MLFLOW_DB_SUFFIX)
    try:
        with psycopg.connect(_admin_conninfo(settings), autocommit=True) as conn:
            found = {row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                                    (list(names),))}
    except psycopg.OperationalError as exc:
        return ServiceStatus("postgres", False, f"{where}: {str(exc).strip().splitlines()[0]}")
    missing = [name for name in names if name not in found]
    if missing:
        return ServiceStatus("postgres", False, f"{where}: missing databases {', '.join(missing)} "
                             "(run `persona prod up`)")
    return ServiceStatus("postgres", True, f"{where} databases {', '.join(names)}")


def redis_status(settings: Settings) -> ServiceStatus:
    """Whether Redis answers PING."""
    import redis

    try:
        redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_timeout=2).ping()
        return ServiceStatus("redis", True, f"{settings.redis_host}:{settings.redis_port}")
    except redis.RedisError as exc:
        return ServiceStatus("redis", False, f"{settings.redis_host}:{settings.redis_port}: {exc}")


def unreachable(settings: Settings, redis: bool = True) -> str | None:
    """Why Postgres (and, with ``redis``, Redis) cannot be used; None when they answer.

    For callers that must skip or stop with the reason (integration tests, the benchmark).
    """
    import psycopg

    try:
        psycopg.connect(_admin_conninfo(settings)).close()
    except psycopg.OperationalError as exc:
        return (f"Postgres at {settings.postgres_host}:{settings.postgres_port} unreachable: "
                f"{' '.join(str(exc).split())}")
    if redis:
        status = redis_status(settings)
        if not status.ok:
            where = f"{settings.redis_host}:{settings.redis_port}"
            return f"Redis at {where} unreachable: {status.detail.removeprefix(where + ': ')}"
    return None


def _pid_file(settings: Settings) -> Path:
    return catalog.mlflow_server_pid(settings)


def mlflow_status(settings: Settings) -> ServiceStatus:
    """Whether the MLflow tracking server answers /health."""
    import httpx

    url = f"http://127.0.0.1:{settings.mlflow_port}/health"
    try:
        ok = httpx.get(url, timeout=2).status_code == 200
        return ServiceStatus("mlflow", ok, url)
    except httpx.HTTPError as exc:
        return ServiceStatus("mlflow", False, f"{url}: {exc.__class__.__name__}")


def start_mlflow(settings: Settings, wait_s: float = 90.0) -> ServiceStatus:
    """Start ``mlflow server`` (Postgres backend, artifacts on disk) unless one already answers."""
    status = mlflow_status(settings)
    if status.ok:
        return status
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    artifacts = catalog.mlflow_artifacts(settings)
    artifacts.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", mlflow_backend_uri(settings),
        "--artifacts-destination", artifacts.as_uri(),
        "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
        "--workers", "1",
    ]
    # Persona runs no MLflow server-side jobs; the job runner would add eight worker processes.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(catalog.mlflow_server_log(settings), "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    _pid_file(settings).write_text(str(process.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _pid_file(settings).unlink(missing_ok=True)
            raise PersonaError(f"mlflow server exited with code {process.returncode}; see "
                               f"{catalog.mlflow_server_log(settings)}")
        status = mlflow_status(settings)
        if status.ok:
            return status
        time.sleep(0.5)
    _stop_group(process.pid)  # a server that never answered must not linger
    _pid_file(settings).unlink(missing_ok=True)
    raise PersonaError(f"mlflow server did not answer within {wait_s:.0f} s; see {catalog.mlflow_server_log(settings)}")


def _is_mlflow_server(pid: int) -> bool:
    """Whether ``pid`` runs ``mlflow server`` (a recorded pid may have been reused since)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir()  # no procfs to ask: trust the pid file
    return b"mlflow" in argv and b"server" in argv


def _stop_group(pid: int, grace_s: float = 10.0) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL what is left after ``grace_s``.

    Returns:
        False when the group was already gone.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it when this process started it
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def stop_mlflow(settings: Settings) -> str:
    """Stop the MLflow server started by :func:`start_mlflow` (its whole process group)."""
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return "mlflow server: not started from this home"
    pid = int(pid_file.read_text())
    if not _is_mlflow_server(pid) or not _stop_group(pid):
        pid_file.unlink(missing_ok=True)
        return "mlflow server: already stopped"
    pid_file.unlink(missing_ok=True)
    return f"mlflow server: stopped (pid {pid})"


def prod_up(settings: Settings) -> list[ServiceStatus]:
    """Prepare and start the production profile's services."""
    created = ensure_databases(settings)
    statuses = [ServiceStatus("postgres", True, f"{settings.postgres_host}:{settings.postgres_port} "
                              f"databases {settings.postgres_db}, {settings.postgres_db}{MLFLOW_DB_SUFFIX}"
                              + (f" (created {', '.join(created)})" if created else ""))]
    redis = redis_status(settings)
    if not redis.ok:
        raise PersonaError(f"Redis is not reachable ({redis.detail}); start it or set PERSONA_REDIS_HOST/PORT")
    statuses.append(redis)
    statuses.append(start_mlflow(settings))
    return statuses
