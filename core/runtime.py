"""The settings a job runs under, handed to code that Feast imports by file (the definitions).

Feast imports ``feature_repo/definitions.py`` itself, so the definitions cannot take settings as
an argument. The job that opens the repo enters ``using(settings)``; the definitions read
:func:`active_settings`. Run by the plain ``feast`` CLI, nothing is active and the settings come
from the environment (``PERSONA_HOME`` ...), as for any other command.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.settings import Settings

_ACTIVE: ContextVar[Settings | None] = ContextVar("persona_settings", default=None)


def active_settings() -> Settings:
    """The settings of the job in progress, else those of the environment."""
    current = _ACTIVE.get()
    if current is not None:
        return current
    from core.settings import load_settings

    return load_settings()


@contextlib.contextmanager
def using(settings: Settings) -> Iterator[Settings]:
    """Make ``settings`` the active ones for the duration of the block (this thread and task)."""
    token = _ACTIVE.set(settings)
    try:
        yield settings
    finally:
        _ACTIVE.reset(token)
