"""Behavior features: per-customer purchase, session and review statistics at snapshot times.

Every feature at a row ``(customer_id, t)`` is computed from events with
``event_timestamp <= t`` only (an event exactly at ``t`` counts; anything after ``t`` never
does), so rows can be joined point-in-time without leaking the future. "Last N days" is the
half-open window ``(t - N days, t]``: an event exactly ``N`` days before ``t`` is out.
Each transaction row is one order.

Features (``BEHAVIOR_FEATURES``; floats are float32, counts int64):

- ``recency_days``: days from the last order at or before ``t`` to ``t``; NaN before the first order.
- ``tenure_days``: days from the customer's start to ``t``. The start is the earliest of the
  signup date (customers table) and the first transaction, session or review; only a start at
  or before ``t`` counts (NaN otherwise).
- ``orders_30d``, ``orders_90d``, ``orders_365d``: orders in the last 30 / 90 / 365 days.
- ``orders_total``: every order at or before ``t`` (all history).
- ``first_order_days``: days from the first order to ``t``; NaN before the first order. With
  ``orders_total`` and ``recency_days`` it is the buy-till-you-die summary (:mod:`model.lifetime`).
- ``spend_30d``, ``spend_90d``, ``spend_365d``: sum of ``amount`` over those orders.
- ``avg_order_value_365d``: ``spend_365d / orders_365d``; NaN without orders.
- ``order_trend``: ``(orders_30d + 1) / (orders in (t-90d, t-30d] / 2 + 1)``; 1 means a steady
  pace, above 1 speeding up, below 1 slowing down.
- ``mean_days_between_orders``: mean gap in days between consecutive orders up to ``t``
  (all history); NaN with fewer than two orders.
- ``return_share_365d``: share of the last 365 days' orders with ``returned`` true; NaN when
  the column is absent or there are no orders. A missing flag counts as not returned.
- ``discount_share_365d``: share of those orders with ``discount > 0``; same NaN rules.
- ``sessions_30d``, ``sessions_90d``: sessions in the last 30 / 90 days; 0 without a sessions table.
- ``review_count_365d``: reviews in the last 365 days.
- ``mean_rating_365d``: mean ``rating`` of those reviews that carry one; NaN if none.

How it scales: every query is a binary search on an event index
(:class:`features.transforms.events.EventIndex`), in chunks of rows to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY, TIMESTAMP
from core.errors import PersonaError
from core.progress import silent
from features.transforms.events import NAT_NS, NS_PER_DAY, EventIndex, event_index, require_columns, to_utc_ns

if TYPE_CHECKING:
    from core.progress import ProgressEvent

BEHAVIOR_FEATURES: dict[str, str] = {
    "recency_days": "float",
    "tenure_days": "float",
    "orders_30d": "int",
    "orders_90d": "int",
    "orders_365d": "int",
    "orders_total": "int",
    "first_order_days": "float",
    "spend_30d": "float",
    "spend_90d": "float",
    "spend_365d": "float",
    "avg_order_value_365d": "float",
    "order_trend": "float",
    "mean_days_between_orders": "float",
    "return_share_365d": "float",
    "discount_share_365d": "float",
    "sessions_30d": "int",
    "sessions_90d": "int",
    "review_count_365d": "int",
    "mean_rating_365d": "float",
}

_FLOAT = np.float32


def _transaction_values(transactions: pd.DataFrame) -> dict[str, np.ndarray]:
    require_columns(transactions, (ENTITY_KEY, TIMESTAMP, "amount"), "transactions")
    amount = pd.to_numeric(transactions["amount"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(amount).any():
        bad = int(np.isnan(amount).sum())
        raise PersonaError(
            f"transactions.amount has {bad} missing or non-numeric value(s); run `persona ingest`"
        )
    values = {"amount": amount}
    if "returned" in transactions.columns:
        values["returned"] = transactions["returned"].eq(True).to_numpy(dtype=np.float64)
    if "discount" in transactions.columns:
        discount = pd.to_numeric(transactions["discount"], errors="coerce").fillna(0.0)
        values["discounted"] = (discount > 0).to_numpy(dtype=np.float64)
    return values


def _signup_ns(customers: pd.DataFrame | None, index: pd.Index) -> np.ndarray:
    """Signup time per customer code (int64 ns); NaT's int value where unknown."""
    out = np.full(len(index), NAT_NS, dtype=np.int64)
    if customers is None or len(customers) == 0:
        return out
    require_columns(customers, (ENTITY_KEY, "signup_date"), "customers")
    signup = pd.Series(to_utc_ns(customers["signup_date"]), index=customers[ENTITY_KEY].to_numpy())
    signup = signup[signup != NAT_NS].groupby(level=0).min()
    codes = index.get_indexer(signup.index)
    known = codes >= 0
    out[codes[known]] = signup.to_numpy()[known]
    return out


def _earliest(*times: np.ndarray) -> np.ndarray:
    """Element-wise minimum ignoring NaT's int value; that value where all are missing."""
    big = np.iinfo(np.int64).max
    out = np.full(len(times[0]), big, dtype=np.int64)
    for t in times:
        np.minimum(out, np.where(t == NAT_NS, big, t), out=out)
    return np.where(out == big, NAT_NS, out)


def build_entity_snapshots(
    customers: pd.DataFrame | None, transactions: pd.DataFrame, snapshots: pd.DatetimeIndex
) -> pd.DataFrame:
    """Rows ``(customer_id, event_timestamp)`` for every customer known at each snapshot.

    A customer is known from the earliest of its signup date (when a customers table is given)
    and its first transaction; it gets a row at every snapshot at or after that moment.
    Customers that appear only in the customers table or only in transactions are both included.

    Args:
        customers: the customers table (``customer_id``, ``signup_date``) or None.
        transactions: the transactions table (``customer_id``, ``event_timestamp``).
        snapshots: snapshot times (see :func:`core.timegrid.snapshot_timestamps`).

    Returns:
        A frame sorted by customer then time, ``customer_id`` int64 and ``event_timestamp``
        tz-aware UTC (ns).
    """
    require_columns(transactions, (ENTITY_KEY, TIMESTAMP), "transactions")
    ids = [transactions[ENTITY_KEY]]
    if customers is not None:
        require_columns(customers, (ENTITY_KEY, "signup_date"), "customers")
        ids.append(customers[ENTITY_KEY])
    index = pd.Index(np.sort(pd.unique(pd.concat(ids, ignore_index=True))))
    first_order = event_index(transactions, index, "transactions").first_times(len(index))
    known = _earliest(_signup_ns(customers, index), first_order)

    snaps = np.sort(pd.unique(to_utc_ns(snapshots)))
    snaps = snaps[snaps != NAT_NS]
    first_snapshot = np.searchsorted(snaps, known, side="left")
    n_rows = np.where(known == NAT_NS, 0, len(snaps) - first_snapshot)
    row_start = np.cumsum(n_rows) - n_rows
    snapshot_pos = np.arange(int(n_rows.sum()), dtype=np.int64) - np.repeat(
        row_start - first_snapshot, n_rows
    )
    return pd.DataFrame(
        {
            ENTITY_KEY: np.repeat(index.to_numpy(), n_rows).astype(np.int64),
            TIMESTAMP: pd.DatetimeIndex(snaps[snapshot_pos].view("datetime64[ns]"), tz="UTC"),
        }
    )


@dataclass(frozen=True)
class _BehaviorIndex:
    transactions: EventIndex
    sessions: EventIndex
    reviews: EventIndex
    start_ns: np.ndarray  # per customer code: signup or first event, NaT's int value if none


def _share(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` where the denominator is positive, NaN elsewhere."""
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan), where=denominator > 0)


def _chunk_features(codes: np.ndarray, t_ns: np.ndarray, idx: _BehaviorIndex) -> dict[str, np.ndarray]:
    day = NS_PER_DAY
    tx = idx.transactions
    at_t, at_30, at_90, at_365 = tx.positions_upto(codes, t_ns, (0, 30 * day, 90 * day, 365 * day))
    start = tx.positions_start(codes)
    orders_all = at_t - start
    orders_30 = at_t - at_30
    orders_90 = at_t - at_90
    orders_365 = at_t - at_365
    last_order = tx.times_at(at_t - 1)
    first_order = tx.times_at(start)
    start_ns = idx.start_ns[codes]
    started = (start_ns != NAT_NS) & (start_ns <= t_ns)
    spend_365 = tx.window_sum("amount", at_365, at_t)
    no_value = np.full(len(codes), np.nan)

    features = {
        "recency_days": np.where(orders_all > 0, (t_ns - last_order) / day, np.nan),
        "tenure_days": np.where(started, (t_ns - start_ns) / day, np.nan),
        "orders_30d": orders_30,
        "orders_90d": orders_90,
        "orders_365d": orders_365,
        "orders_total": orders_all,
        "first_order_days": np.where(orders_all > 0, (t_ns - first_order) / day, np.nan),
        "spend_30d": tx.window_sum("amount", at_30, at_t),
        "spend_90d": tx.window_sum("amount", at_90, at_t),
        "spend_365d": spend_365,
        "avg_order_value_365d": _share(spend_365, orders_365),
        "order_trend": (orders_30 + 1) / ((orders_90 - orders_30) / 2 + 1),
        "mean_days_between_orders": _share((last_order - first_order) / day, orders_all - 1),
    }
    for column, feature in (("returned", "return_share_365d"), ("discounted", "discount_share_365d")):
        features[feature] = (
            _share(tx.window_sum(column, at_365, at_t), orders_365) if tx.has_values(column) else no_value
        )

    s_t, s_30, s_90 = idx.sessions.positions_upto(codes, t_ns, (0, 30 * day, 90 * day))
    features["sessions_30d"] = s_t - s_30
    features["sessions_90d"] = s_t - s_90
    reviews = idx.reviews
    r_t, r_365 = reviews.positions_upto(codes, t_ns, (0, 365 * day))
    features["review_count_365d"] = r_t - r_365
    features["mean_rating_365d"] = (
        _share(reviews.window_sum("rating", r_365, r_t), reviews.window_sum("rated", r_365, r_t))
        if reviews.has_values("rating")
        else no_value
    )
    return features


def compute_behavior_features(
    entity_snapshots: pd.DataFrame,
    transactions: pd.DataFrame,
    sessions: pd.DataFrame | None = None,
    reviews: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    chunk_rows: int = 262_144,
    on_progress: ProgressEvent = silent,
) -> pd.DataFrame:
    """Behavior features for each ``(customer_id, event_timestamp)`` row, point-in-time correct.

    Definitions are in the module docstring; only events at or before each row's timestamp are used.

    Args:
        entity_snapshots: rows to compute features for (``customer_id``, ``event_timestamp``),
            e.g. from :func:`build_entity_snapshots` or a label frame.
        transactions: ``customer_id``, ``event_timestamp``, ``amount``; optional ``returned``
            (bool) and ``discount`` (0..1).
        sessions: ``customer_id``, ``event_timestamp``, or None.
        reviews: ``customer_id``, ``event_timestamp``, optional ``rating``, or None.
        customers: ``customer_id``, ``signup_date``, or None.
        chunk_rows: rows queried at once (bounds the temporary memory).
        on_progress: told ``(rows_done, rows_total)`` after each chunk.

    Returns:
        ``customer_id``, ``event_timestamp`` and the :data:`BEHAVIOR_FEATURES` columns, one row
        per input row in the same order and with the same index.
    """
    require_columns(entity_snapshots, (ENTITY_KEY, TIMESTAMP), "entity snapshots")
    t_ns = to_utc_ns(entity_snapshots[TIMESTAMP])
    if (t_ns == NAT_NS).any():
        raise PersonaError("entity snapshots have missing event_timestamp values; give every row a time")
    codes, uniques = pd.factorize(entity_snapshots[ENTITY_KEY])
    codes = codes.astype(np.int64, copy=False)
    customer_index = pd.Index(uniques)

    tx = event_index(transactions, customer_index, "transactions", _transaction_values(transactions))
    session_index = event_index(sessions, customer_index, "sessions")
    review_values = None
    if reviews is not None and "rating" in reviews.columns:
        rating = pd.to_numeric(reviews["rating"], errors="coerce").to_numpy(dtype=np.float64)
        review_values = {
            "rating": np.nan_to_num(rating, nan=0.0),
            "rated": (~np.isnan(rating)).astype(np.float64),
        }
    review_index = event_index(reviews, customer_index, "reviews", review_values)
    n_customers = len(customer_index)
    idx = _BehaviorIndex(
        transactions=tx,
        sessions=session_index,
        reviews=review_index,
        start_ns=_earliest(
            _signup_ns(customers, customer_index),
            tx.first_times(n_customers),
            session_index.first_times(n_customers),
            review_index.first_times(n_customers),
        ),
    )

    n = len(entity_snapshots)
    float_names = [name for name, kind in BEHAVIOR_FEATURES.items() if kind == "float"]
    int_names = [name for name, kind in BEHAVIOR_FEATURES.items() if kind == "int"]
    floats = np.empty((len(float_names), n), dtype=_FLOAT)
    ints = np.empty((len(int_names), n), dtype=np.int64)
    for lo in range(0, n, max(chunk_rows, 1)):
        hi = min(lo + max(chunk_rows, 1), n)
        chunk = _chunk_features(codes[lo:hi], t_ns[lo:hi], idx)
        for row, name in enumerate(float_names):
            floats[row, lo:hi] = chunk[name]
        for row, name in enumerate(int_names):
            ints[row, lo:hi] = chunk[name]
        on_progress(hi, n)

    columns: dict[str, object] = {
        ENTITY_KEY: entity_snapshots[ENTITY_KEY].array.copy(),
        TIMESTAMP: entity_snapshots[TIMESTAMP].array.copy(),
    }
    rows = {
        **{name: floats[i] for i, name in enumerate(float_names)},
        **{name: ints[i] for i, name in enumerate(int_names)},
    }
    columns.update({name: rows[name] for name in BEHAVIOR_FEATURES})
    # copy=False keeps one block per column: no consolidation copy of ~0.5 GB at full scale
    return pd.DataFrame(columns, index=entity_snapshots.index, copy=False)


__all__ = ["BEHAVIOR_FEATURES", "build_entity_snapshots", "compute_behavior_features"]
