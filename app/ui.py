"""``persona ui mlflow|feast|evidently``: each tool's own UI, on this home's data.

The UIs are the tools' own servers, started as child processes with this home's settings:

- MLflow: ``mlflow ui`` on the home's tracking store (the local profile's SQLite backend and
  artifact folder). In the prod profile the tracking server started by ``persona prod up`` is
  the UI already; its URL is printed and nothing is started.
- Feast: ``feast ui`` on the feature repo with the ``PERSONA_*`` variables its yaml expands
  (:meth:`core.settings.Settings.feast_env`); plain ``feast ui`` in ``feature_repo/`` needs
  ``PERSONA_HOME`` alone. It needs ``grpcio`` (Feast's UI serves the registry through a gRPC
  handler), and the home's ``feast`` folder to exist (SQLite cannot create a file's folder): on a
  fresh home it starts on an empty registry.
- Evidently: ``evidently ui`` on the home's workspace (:func:`core.catalog.evidently_workspace`).

Default ports stay clear of prod's MLflow server (``Settings.mlflow_port``, 5000) and of
BentoML's 3000; a ``--port`` equal to the prod MLflow port is refused. Servers bind 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from core.settings import Settings

Tool = Literal["mlflow", "feast", "evidently"]
DEFAULT_PORTS: dict[str, int] = {"mlflow": 5055, "feast": 8888, "evidently": 8001}
HOST = "127.0.0.1"


@dataclass(frozen=True)
class UiLaunch:
    """How to start one UI: the command, its extra environment and folder, and where it answers.

    ``argv`` is empty when nothing needs starting (the prod MLflow server is the UI).
    """

    tool: str
    url: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    folders: tuple[Path, ...] = ()  # created before the start (a fresh home has none of them yet)


def _script(name: str) -> str:
    """The console script installed next to this interpreter (the project's venv)."""
    return str(Path(sys.executable).with_name(name))


def ui_launch(settings: Settings, tool: Tool, port: int | None = None) -> UiLaunch:
    """The launch of ``tool``'s UI on this home (pure: reads nothing, starts nothing).

    Raises:
        PersonaError: an unknown tool, or a port that would clash with prod's MLflow server.
    """
    if tool not in DEFAULT_PORTS:
        raise PersonaError(f"unknown UI {tool!r}: choose one of {', '.join(DEFAULT_PORTS)}")
    port = DEFAULT_PORTS[tool] if port is None else port
    if port == settings.mlflow_port:
        raise PersonaError(f"port {port} is the prod MLflow server's port (PERSONA_MLFLOW_PORT): choose another "
                           f"with --port (default {DEFAULT_PORTS[tool]})")
    url = f"http://{HOST}:{port}/"
    if tool == "mlflow":
        if settings.tracking_uri.startswith(("http://", "https://")):
            return UiLaunch(tool, settings.tracking_uri.rstrip("/") + "/")
        return UiLaunch(tool, url, [
            _script("mlflow"), "ui", "--backend-store-uri", settings.tracking_uri,
            "--default-artifact-root", settings.artifact_root, "--host", HOST, "--port", str(port), "--workers", "1",
        ], folders=(catalog.mlflow_db(settings).parent,))
    if tool == "feast":
        return UiLaunch(tool, url, [
            _script("feast"), "-c", str(settings.feature_repo), "-f", str(settings.feature_store_yaml),
            "ui", "--host", HOST, "--port", str(port),
        ], env=settings.feast_env(), cwd=settings.feature_repo,
            folders=(settings.feast_dir,) if settings.profile == "local" else ())
    return UiLaunch(tool, url, [
        _script("evidently"), "ui", "--workspace", str(catalog.evidently_workspace(settings)),
        "--host", HOST, "--port", str(port),
    ], folders=(catalog.evidently_workspace(settings),))


def check_runnable(launch: UiLaunch) -> None:
    """Refuse early, with the fix, what would only fail inside the child.

    Raises:
        PersonaError: Feast's UI without ``grpcio`` installed.
    """
    if launch.tool == "feast" and importlib.util.find_spec("grpc") is None:
        raise PersonaError("Feast's UI needs grpcio, which this environment lacks: "
                           "reinstall the locked environment (make setup), which holds feast[grpcio]")


def start(launch: UiLaunch, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the UI's server in its own process group (so stopping it stops its workers too)."""
    check_runnable(launch)
    for folder in launch.folders:
        folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **launch.env, "PYTHONWARNINGS": "ignore"}
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 - the child keeps the descriptor
    try:
        return subprocess.Popen(launch.argv, cwd=launch.cwd, env=env, stdout=out, stderr=subprocess.STDOUT
                                if out is not None else None, start_new_session=True)
    finally:
        if out is not None:
            out.close()


def answers(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def wait_ready(process: subprocess.Popen[bytes], url: str, deadline_s: float, poll_s: float = 0.25) -> float:
    """Poll ``url`` until it answers 200; the seconds it took.

    Raises:
        PersonaError: the process exited, or no 200 within ``deadline_s``.
    """
    started = time.monotonic()
    last: int | None = None
    while time.monotonic() - started < deadline_s:
        if process.poll() is not None:
            raise PersonaError(f"the UI server exited with code {process.returncode} before answering {url}")
        last = answers(url)
        if last == 200:
            return time.monotonic() - started
        time.sleep(poll_s)
    raise PersonaError(f"{url} did not answer 200 within {deadline_s:.0f} s (last answer: {last or 'none'})")


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stop the server and its workers (SIGTERM to its group, then SIGKILL after ``grace_s``)."""
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace_s)
    except ProcessLookupError:
        pass
