"""The production profile's services on one machine: Postgres databases, Redis, an MLflow server.

``persona prod up`` creates the Postgres databases Persona uses (offline store + Feast registry,
and MLflow's backend store), checks Redis, and starts ``mlflow server`` in the background with its
artifacts under ``$PERSONA_HOME/mlflow/artifacts``; ``persona prod down`` stops the server.
Connection settings come from ``PERSONA_POSTGRES_*`` / ``PERSONA_REDIS_*`` / ``PERSONA_MLFLOW_PORT``.

The MLflow server runs MLflow's ``basic-auth`` app: its admin user is ``PERSONA_MLFLOW_USERNAME``
with ``PERSONA_MLFLOW_PASSWORD`` (handed to the server by environment, never written to disk), and
unauthenticated requests are answered 401. Any process can answer 200 on ``/health``, so the
server counts as up only when it is the one this home started (its pid file names a live
``mlflow server`` whose process group holds the listening socket), it refuses an unauthenticated
call and it accepts ours (:func:`mlflow_status`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
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


def _credentials(settings: Settings) -> tuple[str, str]:
    """The MLflow admin user and password (prod), or a one-line error that names the setting."""
    if settings.mlflow_password is None:
        raise PersonaError("set PERSONA_MLFLOW_PASSWORD (at least 12 characters): the prod MLflow server "
                           "requires authentication; PERSONA_MLFLOW_USERNAME names its admin user")
    password = settings.mlflow_password.get_secret_value()
    if len(password) < 12:
        raise PersonaError(f"PERSONA_MLFLOW_PASSWORD is {len(password)} characters; MLflow needs at least 12")
    return settings.mlflow_username, password


def write_auth_config(settings: Settings) -> Path:
    """MLflow's basic-auth configuration under the home: its user store, no default permission."""
    path = catalog.mlflow_auth_config(settings)
    path.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{catalog.mlflow_auth_db(settings)}\n"
        f"admin_username = {settings.mlflow_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )
    return path


def _listening_pids(port: int) -> set[int] | None:
    """Processes holding a socket that listens on TCP ``port`` (None: no procfs to ask)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not Path("/proc/net/tcp").exists():
        return None
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                pids.add(int(proc.name))
    return pids


def _identity_problem(settings: Settings) -> str | None:
    """Why the process on the MLflow port is not the server this home started; None when it is."""
    pid_file = _pid_file(settings)
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return f"no MLflow server was started from this home ({pid_file} missing)"
    if not _is_mlflow_server(pid):
        return f"the server this home started (pid {pid}) is not running"
    holders = _listening_pids(settings.mlflow_port)
    if holders is None:
        return None  # no procfs: the pid file and the authenticated call below must do
    strangers = set()
    for holder in holders:
        try:
            if os.getpgid(holder) != pid:
                strangers.add(holder)
        except ProcessLookupError:
            continue
    if not holders or strangers:
        return (f"port {settings.mlflow_port} is held by pid(s) {sorted(strangers or holders)}, not by the "
                f"server this home started (pid {pid})")
    return None


def mlflow_status(settings: Settings) -> ServiceStatus:
    """Whether the MLflow tracking server this home started answers, refusing strangers and accepting us.

    Up means: ``/health`` answers 200, the listening process belongs to the server recorded in
    this home's pid file, an unauthenticated API call gets 401 and ours gets 200.
    """
    import httpx

    base = f"http://127.0.0.1:{settings.mlflow_port}"
    probe = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        if httpx.get(f"{base}/health", timeout=2).status_code != 200:
            return ServiceStatus("mlflow", False, f"{base}/health does not answer 200")
        problem = _identity_problem(settings)
        if problem:
            return ServiceStatus("mlflow", False, f"{base}: {problem}")
        anonymous = httpx.get(probe, timeout=5).status_code
        if anonymous != 401:
            return ServiceStatus("mlflow", False, f"{base}: an unauthenticated call got {anonymous}, not 401 "
                                 "(authentication is off)")
        try:
            user, password = _credentials(settings)
        except PersonaError as exc:
            return ServiceStatus("mlflow", False, f"{base}: {exc}")
        ours = httpx.get(probe, auth=(user, password), timeout=5).status_code
        if ours != 200:
            return ServiceStatus("mlflow", False, f"{base}: user {user!r} got {ours}; check PERSONA_MLFLOW_USERNAME/"
                                 "PASSWORD (the admin password is fixed when the server first starts)")
    except httpx.HTTPError as exc:
        return ServiceStatus("mlflow", False, f"{base}: {exc.__class__.__name__}")
    return ServiceStatus("mlflow", True, f"{base} (pid {_pid_file(settings).read_text().strip()}, "
                         f"basic auth, user {settings.mlflow_username})")


def _answers_health(settings: Settings) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{settings.mlflow_port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_mlflow(settings: Settings, wait_s: float = 90.0) -> ServiceStatus:
    """Start ``mlflow server`` (Postgres backend, artifacts on disk, basic auth) unless ours already runs.

    Raises:
        PersonaError: no password set, another process holds the port, or the server did not come up.
    """
    user, password = _credentials(settings)
    status = mlflow_status(settings)
    if status.ok:
        return status
    if _answers_health(settings):
        raise PersonaError(f"something answers on port {settings.mlflow_port} but is not this home's MLflow "
                           f"server ({status.detail.split(': ', 1)[-1]}); stop it or set PERSONA_MLFLOW_PORT")
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    artifacts = catalog.mlflow_artifacts(settings)
    artifacts.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--app-name", "basic-auth",
        "--backend-store-uri", mlflow_backend_uri(settings),
        "--artifacts-destination", artifacts.as_uri(),
        "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
        "--workers", "1",
    ]
    env = {
        **os.environ,
        # Persona runs no MLflow server-side jobs; the job runner would add eight worker processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(settings)),
        "MLFLOW_AUTH_ADMIN_USERNAME": user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),  # CSRF key of this server's lifetime
    }
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
    raise PersonaError(f"mlflow server did not come up within {wait_s:.0f} s ({status.detail}); see "
                       f"{catalog.mlflow_server_log(settings)}")


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
    _credentials(settings)  # before anything is created: the server will need them
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
