"""The Ray engine: each customer partition a Ray task on the cluster ``PERSONA_RAY_ADDRESS`` names.

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
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import PersonaError
from core.progress import silent

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


def _cpu_nodes() -> list[str]:
    """The alive nodes with CPUs, in a fixed order: partition ``i`` prefers node ``i mod n``.

    Ray's own spreading favours the node whose worker is already warm, so a short step could run
    wholly on one node; a soft preference spreads partitions evenly and still lets a busy or lost
    node's partition (or its retry) run elsewhere.
    """
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)


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
    import ray

    owned = not ray.is_initialized()
    if owned:
        if address not in ("", "auto"):
            _probe(address)
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
