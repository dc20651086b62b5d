"""The engine a step maps its partitions over, opened from settings (``PERSONA_ENGINE``).

A step calls :func:`open_engine` once, splits its rows into ``engine.partitions`` customer
partitions and hands a pure, importable function and one argument tuple per partition to
:meth:`Engine.map`. Results come back in partition order, whichever engine ran them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

from core.progress import silent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from core.progress import ProgressEvent
    from core.settings import Settings


class Engine(Protocol):
    """Runs one function over partitions and returns the results in partition order."""

    name: str
    partitions: int
    """How many customer partitions a step should split its rows into."""

    def map(
        self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], on_progress: ProgressEvent = silent
    ) -> list[Any]:
        """``[fn(*item) for item in items]``, wherever it runs; ``on_progress(done, total)`` per item."""
        ...


class LocalEngine:
    """This process: one partition, the function called in place."""

    name = "local"
    partitions = 1

    def map(
        self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], on_progress: ProgressEvent = silent
    ) -> list[Any]:
        """Call ``fn`` on each item in turn."""
        results = []
        for done, item in enumerate(items, start=1):
            results.append(fn(*item))
            on_progress(done, len(items))
        return results


@contextlib.contextmanager
def open_engine(settings: Settings) -> Iterator[Engine]:
    """The engine ``settings.engine`` names, connected for the block.

    Raises:
        PersonaError: engine ``ray`` and the cluster at ``PERSONA_RAY_ADDRESS`` cannot be reached
            (one line naming the address and what to do).
    """
    if settings.engine == "local":
        yield LocalEngine()
        return
    from engine.ray_engine import connected

    with connected(settings.ray_address) as ray_engine:
        yield ray_engine


__all__ = ["Engine", "LocalEngine", "open_engine"]
