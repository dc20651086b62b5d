"""The Ray engine: each customer partition a Ray task on the cluster ``PERSONA_RAY_ADDRESS`` names.

Stateful work (an encoder loaded once) runs as batches on a Ray Data actor pool instead
(:meth:`RayEngine.map_batches`), sized by :func:`engine.pool.plan_pool`.

The only module that imports ``ray``. A partition task runs the same pure function the local
engine runs on the whole table; partitions are dealt round-robin over the cluster's nodes, and a task that fails (its
worker died, or an error other than a :class:`PersonaError`) runs again, up to
:data:`MAX_RETRIES` times: partitions are pure, so a retried one gives the same rows. A
:class:`PersonaError` (bad data) is not retried: it comes back as a value and is raised once here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import PersonaError
from core.progress import silent
from engine.pool import PoolPlan, plan_pool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from core.progress import ProgressEvent

MAX_RETRIES = 3
"""Extra tries of a failed partition task."""
PARTITIONS_PER_CPU = 2
"""Partitions per CPU of the cluster: a slow partition does not hold the others back."""
CONNECT_TIMEOUT_SECONDS = 5.0
FAIL_ONCE_ENV = "PERSONATEST_FAIL_ONCE_FILE"
"""Tests only: a partition task on a worker whose environment names this file deletes it and fails
(once, whoever deletes it first), so the retry can be checked end to end on a real cluster."""


@dataclass(frozen=True)
class _Failed:
    """A partition's :class:`PersonaError`, carried back as a value (not retried)."""

    message: str


def _fail_once_if_armed() -> None:
    marker = os.environ.get(FAIL_ONCE_ENV)
    if not marker:
        return
    try:
        os.unlink(marker)
    except FileNotFoundError:
        return
    raise RuntimeError(f"injected one-time partition failure ({marker} removed)")


def _run_partition(fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    import ray

    _fail_once_if_armed()
    node = ray.get_runtime_context().get_node_id()
    try:
        return fn(*args), node
    except PersonaError as exc:
        return _Failed(str(exc)), node


_BATCH, _ROW, _NODE = "__batch", "__row", "__node"
"""Columns a pool worker adds to its batch's output: which batch, which row of it, which node."""
POOL_START_SECONDS = 600
"""How long a pool waits for all its actors to start (a cluster short of CPUs fails, naming it)."""
_POOL_DATA = {"enable_progress_bars": False, "print_on_execution_start": False,
              "retried_map_errors": True, "max_map_retries": MAX_RETRIES, "wait_for_min_actors_s": POOL_START_SECONDS}
"""Ray Data settings while a pool runs: no progress bars or banners (the caller reports progress);
every actor started before the first batch is handed out (so batches spread over the pool); a
batch that raised is retried up to :data:`MAX_RETRIES` times, like a partition task (an actor that
died is restarted and its batch resubmitted by Ray Data itself)."""


class _PoolWorker:
    """One actor of a :meth:`RayEngine.map_batches` pool: its worker made once, then one batch a call."""

    def __init__(self, setup: Callable[[PoolPlan], Any], call: Callable[[Any, list[Any]], dict[str, np.ndarray]],
                 plan: PoolPlan) -> None:
        import ray

        self._worker = setup(plan)
        self._call = call
        self._node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _fail_once_if_armed()
        (index,) = batch[_BATCH]
        (items,) = batch["items"]
        out = self._call(self._worker, [item for item in items])
        n = len(next(iter(out.values()))) if out else 0
        return {**out, _BATCH: np.full(n, index, np.int64), _ROW: np.arange(n), _NODE: np.full(n, self._node)}


@contextlib.contextmanager
def _data_context(**values: Any) -> Iterator[None]:
    """Ray Data's context set to ``values`` and its log quiet for the block (both restored)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = {name: getattr(context, name) for name in values}
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)
    for name, value in values.items():
        setattr(context, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        data_log.setLevel(level)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (Ray's ``cause``, then Python's chain), outermost first."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        inner = getattr(seen, "cause", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    return chain


_DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"


def _root_line(exc: BaseException) -> str:
    """The worker's own error line (``OSError: ...``), not the wrapper Ray Data put around it.

    A worker's error reaches the driver as text: the worker's traceback, then Ray Data's
    ``UserCodeException`` raised from it. The root is the last line before the first "direct cause".
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split(_DIRECT_CAUSE)[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@dataclass
class RayEngine:
    """Connected to a Ray cluster; :meth:`map` runs one task per partition."""

    address: str
    partitions: int
    name: str = "ray"
    nodes: list[str] = field(default_factory=list)
    """The node each partition of the last :meth:`map` ran on (partition order)."""

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        on_progress: ProgressEvent = silent,
        shared: tuple[Any, ...] = (),
    ) -> list[Any]:
        """Run ``fn(*shared, *item)`` for every item as a Ray task; results in item order.

        ``shared`` values go into the object store once; every task reads them from there.

        Raises:
            PersonaError: a partition's own error, or a task that still failed after its retries.
        """
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(_run_partition)
        nodes = _cpu_nodes()

        def options(i: int) -> dict[str, Any]:
            where = {"scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True)}
            return {"num_cpus": 1, "max_retries": MAX_RETRIES, "retry_exceptions": True, **(where if nodes else {})}

        stored = [ray.put(value) for value in shared]  # top-level refs: Ray hands the tasks their values
        refs = [task.options(**options(i)).remote(fn, *stored, *item) for i, item in enumerate(items)]
        pending, done = list(refs), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done += len(ready)
            on_progress(done, len(refs))
        try:
            outputs = ray.get(refs)
        except ray.exceptions.RayError as exc:
            cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise PersonaError(
                f"a partition failed on the Ray cluster after {MAX_RETRIES} retries: {cause}; "
                "see the worker logs (`ray logs`) or run with PERSONA_ENGINE=local"
            ) from None
        for result, _ in outputs:
            if isinstance(result, _Failed):
                raise PersonaError(result.message)
        self.nodes = [node for _, node in outputs]
        return [result for result, _ in outputs]

    def map_batches(
        self,
        setup: Callable[[PoolPlan], Any],
        call: Callable[[Any, list[Any]], dict[str, np.ndarray]],
        batches: Sequence[Sequence[Any]],
        on_progress: ProgressEvent = silent,
        uses_gpu: bool = False,
    ) -> list[dict[str, np.ndarray]]:
        """``call(worker, batch)`` for every batch with Ray Data ``map_batches`` over an actor pool.

        The pool (:func:`engine.pool.plan_pool`): a one-GPU actor per GPU when the cluster has GPUs
        and ``uses_gpu``, else a one-CPU, one-thread actor per cluster CPU; each actor runs
        ``setup(plan)`` once. Each batch is one row of the dataset, so an actor always gets a whole
        batch (a batch's answer may depend on its other items, as an encoder's padding does). A
        batch whose task fails is retried up to :data:`MAX_RETRIES` times on a live actor.
        :attr:`nodes` records the node of each batch.

        Raises:
            PersonaError: a worker's own error, or a batch that still failed after its retries.
        """
        import ray
        import ray.data

        total = sum(len(batch) for batch in batches)
        if not batches:
            self.nodes = []
            return []
        plan = plan_pool(_node_cpus(), ray.cluster_resources().get("GPU", 0), uses_gpu, len(batches))
        rows = [{_BATCH: i, "items": list(batch)} for i, batch in enumerate(batches)]
        pieces: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
        finished: set[int] = set()
        try:
            with _data_context(**_POOL_DATA):
                mapped = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                    _PoolWorker, fn_constructor_args=(setup, call, plan), batch_size=1, batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=plan.workers, max_tasks_in_flight_per_actor=2),
                    num_cpus=plan.num_cpus, num_gpus=plan.num_gpus,
                )
                for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
                    for index in np.unique(out[_BATCH]):
                        mine = out[_BATCH] == index
                        pieces[int(index)].append({name: column[mine] for name, column in out.items()})
                        if int(index) not in finished:
                            finished.add(int(index))
                            on_progress(sum(len(batches[i]) for i in finished), total)
        except Exception as exc:
            chain = _causes(exc)
            own = next((e for e in chain if isinstance(e, PersonaError)), None)
            if own is not None:
                raise PersonaError(str(own).strip().splitlines()[-1]) from None
            raise PersonaError(
                f"a batch failed on the Ray cluster after {MAX_RETRIES} retries: {_root_line(chain[0])}; "
                "see the worker logs (`ray logs`) or run with PERSONA_ENGINE=local"
            ) from None
        results, self.nodes = [], []
        for i in range(len(batches)):
            parts = pieces.get(i, [])
            joined = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]} if parts else {}
            order = np.argsort(joined[_ROW], kind="stable") if joined else np.zeros(0, np.int64)
            self.nodes.append(str(joined[_NODE][0]) if joined and len(joined[_NODE]) else "")
            results.append({name: column[order] for name, column in joined.items()
                            if name not in (_BATCH, _ROW, _NODE)})
        return results


def _cpu_nodes() -> list[str]:
    """The alive nodes with CPUs, in a fixed order: partition ``i`` prefers node ``i mod n``.

    Ray's own spreading favours the node whose worker is already warm, so a short step could run
    wholly on one node; a soft preference spreads partitions evenly and still lets a busy or lost
    node's partition (or its retry) run elsewhere.
    """
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)


def _node_cpus() -> list[float]:
    """CPUs of each alive node."""
    import ray

    return [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]


def _where(address: str) -> str:
    return "a local Ray" if not address else f"the Ray cluster at {address}"


def _probe(address: str) -> None:
    """Fail fast, in one line, when nothing listens at ``host:port`` (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise PersonaError(
        f"cannot reach the Ray cluster at {address} ({reason}); start its head node (`ray start --head`) "
        "or fix PERSONA_RAY_ADDRESS (empty starts a local Ray)"
    )


@contextlib.contextmanager
def connected(address: str) -> Iterator[RayEngine]:
    """A :class:`RayEngine` on the cluster at ``address`` (empty: a local Ray started for the block).

    A Ray connection this process already holds is used as it is and left open.

    Raises:
        PersonaError: the cluster cannot be reached (naming the address and what to do).
    """
    loaded = sys.modules.get("ray")
    owned = loaded is None or not loaded.is_initialized()
    if owned and address not in ("", "auto"):
        _probe(address)  # before importing Ray: an unreachable address costs no import
    import ray

    if owned:
        try:
            if address.startswith("ray://"):
                ray.init(address=address)
            elif address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            if address == "auto":
                raise PersonaError(
                    "no Ray cluster runs on this machine (PERSONA_RAY_ADDRESS=auto); start one with "
                    "`ray start --head`, name its address, or leave PERSONA_RAY_ADDRESS empty to start a local Ray"
                ) from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
            raise PersonaError(
                f"cannot connect to {_where(address)}: {first}; start one with `ray start --head` "
                "or fix PERSONA_RAY_ADDRESS (empty starts a local Ray)"
            ) from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield RayEngine(address=address, partitions=max(1, cpus * PARTITIONS_PER_CPU))
    finally:
        if owned:
            ray.shutdown()


__all__ = ["MAX_RETRIES", "RayEngine", "connected"]
