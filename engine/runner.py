"""The engine a step maps its partitions over, opened from settings (``PERSONA_ENGINE``).

A step calls :func:`open_engine` once, splits its rows into ``engine.partitions`` customer
partitions and hands a pure, importable function and one argument tuple per partition to
:meth:`Engine.map`. Results come back in partition order, whichever engine ran them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY
from core.progress import silent
from engine.partition import partition_of
from engine.pool import PoolPlan

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from core.progress import ProgressEvent
    from core.settings import Settings


class Engine(Protocol):
    """Runs one function over partitions and returns the results in partition order."""

    name: str

    @property
    def partitions(self) -> int:
        """How many customer partitions a step should split its rows into."""
        ...

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        on_progress: ProgressEvent = silent,
        shared: tuple[Any, ...] = (),
    ) -> list[Any]:
        """``[fn(*shared, *item) for item in items]``, wherever it runs; ``on_progress(done, total)`` per item.

        ``shared`` arguments (a model) are sent to the workers once, not once per item.
        """
        ...

    def map_batches(
        self,
        setup: Callable[[PoolPlan], Any],
        call: Callable[[Any, list[Any]], dict[str, np.ndarray]],
        batches: Sequence[Sequence[Any]],
        on_progress: ProgressEvent = silent,
        uses_gpu: bool = False,
    ) -> list[dict[str, np.ndarray]]:
        """``[call(worker, batch) for batch in batches]`` over a pool of workers each made once by ``setup``.

        A worker is stateful (an encoder loaded once); ``setup`` learns the worker's plan
        (threads, device) and must be picklable. ``call`` returns equal-length columns for one
        batch, which comes back whole: results in batch order, ``on_progress(items done, total)``.
        """
        ...


class LocalEngine:
    """This process: one partition, the function called in place."""

    name = "local"
    partitions = 1

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        on_progress: ProgressEvent = silent,
        shared: tuple[Any, ...] = (),
    ) -> list[Any]:
        """Call ``fn`` on each item in turn."""
        results = []
        for done, item in enumerate(items, start=1):
            results.append(fn(*shared, *item))
            on_progress(done, len(items))
        return results

    def map_batches(
        self,
        setup: Callable[[PoolPlan], Any],
        call: Callable[[Any, list[Any]], dict[str, np.ndarray]],
        batches: Sequence[Sequence[Any]],
        on_progress: ProgressEvent = silent,
        uses_gpu: bool = False,
    ) -> list[dict[str, np.ndarray]]:
        """One worker in this process (the backend's own thread count) handles every batch in turn."""
        worker = setup(LOCAL_PLAN)
        results, done, total = [], 0, sum(len(batch) for batch in batches)
        for batch in batches:
            results.append(call(worker, list(batch)))
            done += len(batch)
            on_progress(done, total)
        return results


LOCAL_PLAN = PoolPlan(workers=1, num_cpus=0, num_gpus=0, threads=0)
"""The local engine's one worker: this process, ``threads`` 0 leaves the count to the backend."""


def map_rows(
    engine: Engine,
    fn: Callable[..., pd.DataFrame],
    frame: pd.DataFrame,
    shared: tuple[Any, ...] = (),
    on_progress: ProgressEvent = silent,
) -> pd.DataFrame:
    """``fn(*shared, rows)`` over customer partitions of ``frame``, put back in ``frame``'s row order and index.

    For a row-wise ``fn`` (one output row per input row, each depending on its own row only, such
    as a model's predictions) the answer is ``fn(*shared, frame)`` whatever the engine.
    """
    if engine.partitions == 1 or len(frame) == 0:
        return engine.map(fn, [(frame,)], on_progress=on_progress, shared=shared)[0]
    parts = partition_of(frame[ENTITY_KEY].to_numpy(), engine.partitions)
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(engine.partitions + 1))
    pieces = [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
    items = [(frame.iloc[rows].reset_index(drop=True),) for rows in pieces]
    outputs = engine.map(fn, items, on_progress=on_progress, shared=shared)
    for rows, output in zip(pieces, outputs, strict=True):
        if len(output) != len(rows):
            raise ValueError(f"{getattr(fn, '__name__', fn)} returned {len(output)} rows for {len(rows)}")
    joined = pd.concat(outputs, ignore_index=True)
    back = joined.take(np.argsort(np.concatenate(pieces), kind="stable"))
    return back.set_axis(frame.index)


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


class _OnFirstUse:
    """The engine ``settings.engine`` names, opened (connected) by the first call that needs it."""

    def __init__(self, settings: Settings, stack: contextlib.ExitStack) -> None:
        self.name: str = settings.engine
        self._settings = settings
        self._stack = stack
        self._opened: Engine | None = None

    def _engine(self) -> Engine:
        if self._opened is None:
            self._opened = self._stack.enter_context(open_engine(self._settings))
        return self._opened

    @property
    def partitions(self) -> int:
        return self._engine().partitions

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        on_progress: ProgressEvent = silent,
        shared: tuple[Any, ...] = (),
    ) -> list[Any]:
        return self._engine().map(fn, items, on_progress=on_progress, shared=shared)

    def map_batches(
        self,
        setup: Callable[[PoolPlan], Any],
        call: Callable[[Any, list[Any]], dict[str, np.ndarray]],
        batches: Sequence[Sequence[Any]],
        on_progress: ProgressEvent = silent,
        uses_gpu: bool = False,
    ) -> list[dict[str, np.ndarray]]:
        return self._engine().map_batches(setup, call, batches, on_progress=on_progress, uses_gpu=uses_gpu)


@contextlib.contextmanager
def open_engine_on_first_use(settings: Settings) -> Iterator[Engine]:
    """:func:`open_engine`, but connected only when a step first maps something (closed at the block's end).

    For a step that often has nothing to hand out (``persona embed`` with every text cached): it
    neither joins a cluster nor starts a local Ray for nothing. ``name`` is known without opening.

    Raises:
        PersonaError: at the first call, as :func:`open_engine` would at the start.
    """
    with contextlib.ExitStack() as stack:
        yield _OnFirstUse(settings, stack)


__all__ = ["LOCAL_PLAN", "Engine", "LocalEngine", "map_rows", "open_engine", "open_engine_on_first_use"]
