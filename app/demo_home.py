"""Where a demo run lives and what it prints: a fresh home per run, free ports, a quiet console.

The demo never deletes anything: each run gets a new folder under ``PERSONA_HOME/demo`` (marked
as the demo's own), ports are picked free and never the prod profile's (library output goes to the run's log
through :func:`app.quiet.quiet_output`, as for ``persona train``).
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from pathlib import Path

PROD_PORTS = (3000, 5000)  # serving's and the prod MLflow server's defaults: the demo never prints these


def free_port(avoid: tuple[int, ...] = PROD_PORTS) -> int:
    """A port free on 127.0.0.1 now, never one of ``avoid`` (the prod profile's ports)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def materialize_summary(lines: list[str]) -> str:
    """``materialize``'s lines without their time ranges, numbers whole (``2,743 rows``)."""
    return "; ".join(line.split(", ")[0] for line in lines)


def new_home(base: Path, now: dt.datetime | None = None) -> Path:
    """A fresh home for one demo run under ``base`` (``run-<UTC time>[-n]``), created and marked as the demo's.

    Nothing that exists is touched: earlier runs (their MLflow and Evidently history) stay.
    """
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    home, n = base / f"run-{stamp}", 1
    while home.exists():
        n += 1
        home = base / f"run-{stamp}-{n}"
    home.mkdir(parents=True)
    catalog.demo_marker(home).write_text(f"created by persona demo at {stamp}\n")
    return home


def claim_home(home: Path) -> Path:
    """Use ``home`` for a demo run only if it is new or empty (never delete what is there).

    Raises:
        PersonaError: ``home`` holds files.
    """
    if home.exists() and any(home.iterdir()):
        raise PersonaError(f"{home} is not empty; the demo only writes into a new folder: pick another "
                           "or leave it out (each run gets its own folder under PERSONA_HOME/demo)")
    home.mkdir(parents=True, exist_ok=True)
    catalog.demo_marker(home).write_text("created by persona demo\n")
    return home
