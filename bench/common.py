"""Shared pieces of the benchmark: rows, timing, a scratch home."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


def row(issue: int, area: str, metric: str, value: float, unit: str, target: str = "",
        ok: bool | None = None, load_sensitive: bool = True) -> dict:
    """One line of the benchmark table.

    ``load_sensitive=False`` marks a correctness count (rows lost, 5xx answers) whose value does not
    depend on how busy the machine was; only such a row may meet its target under overload.
    """
    out = {"issue": issue, "area": area, "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}
    if not load_sensitive:
        out["load_sensitive"] = False
    return out


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """Time a block; the yielded list holds the elapsed seconds once the block ends (``t[0]``)."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


@contextlib.contextmanager
def scratch_home(name: str) -> Iterator[Path]:
    """A temporary PERSONA_HOME for one benchmark, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=f"persona-bench-{name}-"))
    previous = os.environ.get("PERSONA_HOME")
    os.environ["PERSONA_HOME"] = str(base / "home")
    try:
        yield base
    finally:
        if previous is None:
            os.environ.pop("PERSONA_HOME", None)
        else:
            os.environ["PERSONA_HOME"] = previous
        shutil.rmtree(base, ignore_errors=True)
