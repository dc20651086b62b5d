"""The pool of stateful workers: how many, and what each reserves (pure), and the local engine's pool."""

from __future__ import annotations

import numpy as np

from engine.pool import plan_pool
from engine.runner import LOCAL_PLAN, LocalEngine


def test_a_cpu_cluster_gets_a_one_cpu_one_thread_worker_per_cpu() -> None:
    # given two nodes of 4 and 2 CPUs, no GPU
    # when a pool is planned for 100 batches
    plan = plan_pool([4, 2], cluster_gpus=0, worker_uses_gpu=True, batches=100)

    # then six CPU workers, each reserving one CPU and computing on one thread
    assert (plan.workers, plan.num_cpus, plan.num_gpus, plan.threads, plan.device) == (6, 1, 0, 1, "cpu")


def test_a_gpu_cluster_gets_one_gpu_worker_per_gpu_for_a_worker_that_uses_it() -> None:
    # given nodes with 16 CPUs and 3 GPUs in all
    # when a pool of GPU-capable workers is planned
    plan = plan_pool([8, 8], cluster_gpus=3, worker_uses_gpu=True, batches=100)

    # then one worker per GPU, each holding one GPU
    assert (plan.workers, plan.num_gpus, plan.num_cpus, plan.device) == (3, 1, 1, "cuda")


def test_a_cpu_only_worker_on_a_gpu_cluster_holds_no_gpu() -> None:
    # given a GPU cluster and a worker that computes on CPU only
    # when its pool is planned
    plan = plan_pool([8, 8], cluster_gpus=2, worker_uses_gpu=False, batches=100)

    # then CPU workers, one per CPU, and no GPU held idle
    assert (plan.workers, plan.num_gpus, plan.device) == (16, 0, "cpu")


def test_never_more_workers_than_batches_and_never_none() -> None:
    # given few batches, or a cluster reporting no CPU
    # when pools are planned
    # then a worker per batch at most, and at least one worker
    assert plan_pool([8, 8], 0, False, batches=3).workers == 3
    assert plan_pool([8], 4, True, batches=2).workers == 2
    assert plan_pool([0], 0, False, batches=5).workers == 1
    assert plan_pool([8], 0, False, batches=0).workers == 1


class _Doubler:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.calls = 0


def _setup(plan) -> _Doubler:
    return _Doubler(plan.threads)


def _double(worker: _Doubler, batch: list[int]) -> dict[str, np.ndarray]:
    worker.calls += 1
    return {"doubled": np.asarray(batch) * 2, "call": np.full(len(batch), worker.calls)}


def test_local_pool_makes_one_worker_and_answers_each_batch_in_order() -> None:
    # given three batches
    batches = [[1, 2], [3], [4, 5, 6]]
    progress: list[tuple[float, float | None]] = []

    # when the local engine maps them
    def record(done: float, total: float | None = None, note: str = "") -> None:
        progress.append((done, total))

    out = LocalEngine().map_batches(_setup, _double, batches, on_progress=record)

    # then one worker (the backend's own threads) handled them in turn, in batch order
    assert LOCAL_PLAN.threads == 0
    assert [o["doubled"].tolist() for o in out] == [[2, 4], [6], [8, 10, 12]]
    assert [o["call"][0] for o in out] == [1, 2, 3]
    assert progress == [(2, 6), (3, 6), (6, 6)]
