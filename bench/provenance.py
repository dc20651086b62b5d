"""Where each benchmark figure came from: commit, time, machine load, and a digest over the table.

Every row the harness measures is stamped with the commit it ran at (``+dirty`` when the tree
had uncommitted changes), the UTC time its suite finished, the CPU count, and the highest
1-minute load average sampled while its suite ran. A figure measured while the load exceeded
the CPU count is *noisy*: it is shown, but it never counts as meeting its target.

The table file carries a sha256 digest over its header and rows, computed by :func:`digest`;
``tests/test_bench_provenance.py`` recomputes it, so a table edited by hand fails the suite.
Rows from before provenance was recorded are *legacy*: they keep the time the old table said
they were measured, and say that their code version and machine load are unknown.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FORMAT = 2


def current_commit() -> str:
    """Short hash of HEAD, with ``+dirty`` when tracked files differ from it (``unknown`` without git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def utc_stamp(when: dt.datetime | None = None) -> str:
    """``YYYY-MM-DD HH:MM`` in UTC."""
    return f"{(when or dt.datetime.now(dt.UTC)):%Y-%m-%d %H:%M}"


class LoadSampler:
    """Samples the 1-minute load average every ``interval_s`` while a suite runs (a daemon thread).

    It also takes the suite's wall time and CPU time (this process and the children it waited
    for: servers, CLI subprocesses), so a figure can be read against how busy the run itself was.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self._began: tuple[float, float] = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> LoadSampler:
        self._began = (time.perf_counter(), _cpu_seconds())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        self.wall_s = time.perf_counter() - self._began[0]
        self.cpu_s = _cpu_seconds() - self._began[1]

    @property
    def peak(self) -> float:
        """The highest sampled 1-minute load average."""
        return max(self.samples) if self.samples else os.getloadavg()[0]


def _cpu_seconds() -> float:
    """User plus system CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def stamp(rows: list[dict], suite: str, commit: str, measured_at: str, load_peak: float, cpus: int,
          wall_s: float | None = None, cpu_s: float | None = None) -> list[dict]:
    """Rows of one suite run with their provenance; a target met under overload does not count.

    Correctness counts (``load_sensitive`` False: rows lost, 5xx answers) are exempt: load does
    not change how many rows a crash loses, so a zero measured on a busy machine is still a zero.
    """
    noisy = load_peak > cpus
    stamped = []
    for r in rows:
        out = {**r, "suite": suite, "commit": commit, "measured_at": measured_at,
               "load_peak": round(load_peak, 2), "cpus": cpus, "noisy": noisy, "provenance": "harness"}
        if wall_s is not None and cpu_s is not None:
            out["suite_wall_s"], out["suite_cpu_s"] = round(wall_s, 1), round(cpu_s, 1)
        if noisy and r.get("ok") is True and r.get("load_sensitive", True):
            # shown as "noisy": a timing or memory figure from an overloaded machine never meets a target
            out["ok"] = None
            out["ok_if_quiet"] = True
        stamped.append(out)
    return stamped


def legacy(row: dict, measured_at: str, cpus: int | None, committed_in: str | None, note: str = "") -> dict:
    """A row from before provenance was recorded, labelled as such (its own time, nothing invented)."""
    text = ("legacy: measured before the harness recorded provenance; code version and machine load "
            "during the run are unknown")
    if committed_in:
        text += f"; first committed in {committed_in}"
    if note:
        text += f"; {note}"
    return {**row, "commit": None, "measured_at": measured_at, "load_peak": None, "cpus": cpus,
            "noisy": None, "provenance": text}


def canonical(header: str, rows: list[dict[str, Any]]) -> bytes:
    """The bytes the digest covers: header and rows as sorted, compact JSON."""
    return json.dumps({"format": FORMAT, "header": header, "rows": rows}, sort_keys=True,
                      separators=(",", ":")).encode()


def digest(header: str, rows: list[dict[str, Any]]) -> str:
    """``sha256:<hex>`` over :func:`canonical`."""
    return "sha256:" + hashlib.sha256(canonical(header, rows)).hexdigest()
