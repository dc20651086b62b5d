"""Behavior snapshots computed per customer partition, on whichever engine the settings name.

Every behavior feature of a customer depends on that customer's own rows only (see
:mod:`features.transforms.events`: sums restart per customer and keep the input order of ties),
so the snapshots of a partition of customers, computed by the same pure transforms, are exactly
the whole table's rows for those customers. Partitions come back in partition order and are
put in the local engine's order (customer, then snapshot time), so both engines write the same
frame bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY
from engine.partition import split
from features.transforms.behavior import build_entity_snapshots, compute_behavior_features

if TYPE_CHECKING:
    from core.progress import ProgressEvent
    from engine.runner import Engine


def behavior_snapshots(
    customers: pd.DataFrame | None,
    transactions: pd.DataFrame,
    sessions: pd.DataFrame | None,
    reviews: pd.DataFrame | None,
    grid: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Behavior features of these customers at every snapshot of ``grid`` they are known at (pure)."""
    entities = build_entity_snapshots(customers, transactions, grid)
    return compute_behavior_features(entities, transactions, sessions=sessions, reviews=reviews, customers=customers)


def behavior_on_engine(
    engine: Engine,
    customers: pd.DataFrame | None,
    transactions: pd.DataFrame,
    sessions: pd.DataFrame | None,
    reviews: pd.DataFrame | None,
    grid: pd.DatetimeIndex,
    on_progress: ProgressEvent,
) -> pd.DataFrame:
    """:func:`behavior_snapshots` of every customer, one engine task per customer partition.

    Returns:
        The frame the local engine computes: sorted by customer then time, a fresh range index.
    """
    n = engine.partitions
    tables = [split(t, n) for t in (customers, transactions, sessions, reviews)]
    items = [
        (c, tx, s, r, grid)
        for c, tx, s, r in zip(*tables, strict=True)
        if (tx is not None and len(tx)) or (c is not None and len(c))  # a partition without customers has no rows
    ]
    parts = engine.map(behavior_snapshots, items, on_progress=on_progress)
    if not parts:
        return behavior_snapshots(customers, transactions, sessions, reviews, grid)
    frame = pd.concat(parts, ignore_index=True)
    # each part is sorted by customer then time already: a stable sort by customer merges them
    order = np.argsort(frame[ENTITY_KEY].to_numpy(), kind="stable")
    return frame.take(order).reset_index(drop=True)


__all__ = ["behavior_on_engine", "behavior_snapshots"]
