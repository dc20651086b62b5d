"""Customer partitions: every row of one customer lands in the same partition, on any machine.

The partition of a customer is a fixed hash of its id (``pandas.util.hash_array``: SipHash with
a fixed key, so no per-process seed), modulo the partition count. Rows keep their order inside a
partition, so a transform that depends on the order of one customer's rows (ties at the same
timestamp) sees the same order as it would on the whole table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY


def partition_of(customer_ids: pd.Series | np.ndarray, n_partitions: int) -> np.ndarray:
    """The partition (``0..n_partitions-1``) of each customer id."""
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be at least 1, got {n_partitions}")
    ids = np.asarray(customer_ids, dtype=np.int64)
    return (pd.util.hash_array(ids) % np.uint64(n_partitions)).astype(np.int64)


def split(frame: pd.DataFrame | None, n_partitions: int) -> list[pd.DataFrame | None]:
    """``frame``'s rows by the partition of their ``customer_id``, order kept (None stays None)."""
    if frame is None:
        return [None] * n_partitions
    parts = partition_of(frame[ENTITY_KEY].to_numpy(), n_partitions)
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(n_partitions + 1))
    return [frame.iloc[order[lo:hi]] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


__all__ = ["partition_of", "split"]
