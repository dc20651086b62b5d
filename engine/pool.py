"""How many workers a pool of stateful workers (encoder actors) gets, and what each reserves (pure).

A stateful worker loads something heavy once (an encoder) and then handles batch after batch.
On a cluster with GPUs, a worker that can use one gets one GPU each, one worker per GPU; otherwise
every CPU of the cluster gets a one-CPU worker computing on one thread, so the pool's workers
never compete for a core (what "no loss per core" against one process needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class PoolPlan:
    """A pool of ``workers`` identical workers.

    Attributes:
        workers: how many workers (actors) the pool holds.
        num_cpus: CPUs each worker reserves.
        num_gpus: GPUs each worker reserves (0: a CPU worker).
        threads: compute threads each worker runs with (its reserved CPUs).
    """

    workers: int
    num_cpus: float
    num_gpus: float
    threads: int

    @property
    def device(self) -> str:
        """``cuda`` for a GPU worker, else ``cpu``."""
        return "cuda" if self.num_gpus else "cpu"


def plan_pool(node_cpus: Sequence[float], cluster_gpus: float, worker_uses_gpu: bool, batches: int) -> PoolPlan:
    """The pool for ``batches`` batches on nodes with ``node_cpus`` CPUs and ``cluster_gpus`` GPUs in all.

    Args:
        node_cpus: CPUs of each alive node.
        cluster_gpus: GPUs of the cluster, all nodes together.
        worker_uses_gpu: the worker computes on a GPU when it has one (an encoder on CPU only would
            hold a GPU it never uses, so it gets CPU workers even on a GPU cluster).
        batches: batches to handle; never more workers than batches (an idle worker still loads).
    """
    cap = max(1, batches)
    gpus = int(cluster_gpus)
    if worker_uses_gpu and gpus >= 1:
        return PoolPlan(workers=min(gpus, cap), num_cpus=1, num_gpus=1, threads=1)
    cpus = sum(int(c) for c in node_cpus)
    return PoolPlan(workers=min(max(1, cpus), cap), num_cpus=1, num_gpus=0, threads=1)


__all__ = ["PoolPlan", "plan_pool"]
