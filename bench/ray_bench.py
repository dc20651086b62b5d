"""Issue 16 benchmark: embedding on the Ray engine's actor pool against one process, per core.

The same distinct review texts are embedded, round after round, by the fast encoder in this
process (the backend's own threads, every core) and by the Ray engine's pool of encoder actors on
a local Ray started for the run (one actor per CPU, each on one thread, as ``persona embed`` with
``PERSONA_ENGINE=ray`` does), interleaved so that other processes' load hits both alike. The pool's
time includes starting its actors and compiling the encoder in each (what a command pays); the
vectors are checked equal, bit for bit, every round. Per-core rates divide by the cores each side
used: the machine's CPUs for both (the process's threads, the pool's actors).

Run: ``python -m bench.ray_bench [--quick]`` (``python -m bench.run --only ray`` writes the table).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from bench.common import row

ISSUE = 16
AREA = "ray"


def bench_embedding_pool(n: int, rounds: int) -> list[dict]:
    """texts/s per core: one process vs the actor pool, interleaved ``rounds`` times on ``n`` texts."""
    from bench.embedding_bench import _models_dir, review_texts
    from engine.ray_engine import connected
    from features.embedding.encoder import FastEncoder
    from features.embedding.pool import encode_on_engine

    texts = review_texts(n)
    cores = os.cpu_count() or 1
    encoder = FastEncoder(_models_dir())
    encoder.warm_up()  # the export and this process's compile happen before any timing
    spent = {"process": 0.0, "pool": 0.0}
    process_cpu = 0.0
    equal = True
    load_before = os.getloadavg()[0]
    with connected("") as engine:
        for _ in range(rounds):
            began, began_cpu = time.perf_counter(), time.process_time()
            local = encoder.encode(texts).vectors
            spent["process"] += time.perf_counter() - began
            process_cpu += time.process_time() - began_cpu
            began = time.perf_counter()
            pooled = encode_on_engine(engine, encoder, texts).vectors
            spent["pool"] += time.perf_counter() - began
            equal &= bool(np.array_equal(local, pooled))
    load = (f"{n} distinct texts x {rounds} rounds, {cores} cores; "
            f"load avg {load_before:.1f}->{os.getloadavg()[0]:.1f}")
    per_core = {side: n * rounds / seconds / cores for side, seconds in spent.items()}
    ratio = per_core["pool"] / per_core["process"]
    return [
        row(ISSUE, AREA, f"embed_texts_per_s_per_core (one process, {encoder.backend} {encoder.precision}, "
            f"{cores} threads)", round(per_core["process"], 1), "texts/s/core", "reference", None) | {"note": load},
        row(ISSUE, AREA, f"embed_texts_per_s_per_core (Ray actor pool, {cores} one-thread actors, "
            "start-up included)", round(per_core["pool"], 1), "texts/s/core", ">= one process",
            ratio >= 1.0) | {"note": load},
        row(ISSUE, AREA, "embed_pool_vs_process_per_core_ratio", round(ratio, 3), "x", ">= 1", ratio >= 1.0)
        | {"note": "wall clock, same run, interleaved"},
        row(ISSUE, AREA, "embed_process_cpu_s_per_1000_texts", round(1000 * process_cpu / (n * rounds), 3),
            "CPU s", "info", None),
        row(ISSUE, AREA, "embed_pool_vectors_equal_process", float(equal), "bool", "1 (bit for bit)", equal,
            load_sensitive=False),
    ]


def run(quick: bool = False) -> list[dict]:
    """All issue-16 rows (``quick``: fewer texts and rounds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return bench_embedding_pool(600 if quick else 4000, 2 if quick else 3)


if __name__ == "__main__":  # pragma: no cover
    for result in run(quick="--quick" in sys.argv):
        print(result)
