"""How library code reports progress without drawing anything (the app draws; see app.console)."""

from __future__ import annotations

from typing import Protocol


class ProgressEvent(Protocol):
    """Called as work advances: ``done`` so far (absolute), ``total`` when known, ``note`` the step."""

    def __call__(self, done: float, total: float | None = None, note: str = "") -> None:
        """Report progress."""


def silent(done: float, total: float | None = None, note: str = "") -> None:
    """The default callback: report nothing."""
