"""The console: the only place that draws progress bars (library code reports through callbacks).

Library functions take an ``on_progress`` callback (see :data:`core.progress.Progress`); the app
passes :func:`progress` as that callback's home::

    with progress("materialize customer_behavior", unit="rows") as on_progress:
        materialize(settings, on_progress=on_progress)
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.progress import ProgressEvent

console = Console(stderr=True)


@contextlib.contextmanager
def progress(label: str, unit: str = "") -> Iterator[ProgressEvent]:
    """A transient bar; yields the callback library code reports to.

    The callback takes ``(done, total=None, note="")``: ``done`` is the amount finished so far
    (absolute), ``total`` the amount expected when known, ``note`` replaces the bar's label
    (the step in progress).
    """
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def report(done: float, total: float | None = None, note: str = "") -> None:
            bar.update(task, completed=done, total=total, description=f"{label}: {note}" if note else label)

        yield report
