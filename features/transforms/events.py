"""Event tables indexed for vectorized point-in-time queries: "events of customer c up to time t".

How it scales: each event table is sorted once by ``(customer, time)`` into a composite int64
key ``customer_code * (n_events + 1) + time_rank`` (``time_rank`` counts the table's events
strictly earlier, so comparisons stay exact to the nanosecond and cannot overflow). Every
``(customer, t)`` query is then one ``numpy.searchsorted`` on that key, and window counts are
differences of positions. Window sums are differences of running sums restarted per customer
(a grouped cumulative sum, in C), so one customer's values, however extreme, never change
another customer's sums, and a sum's rounding depends on that customer's events only, not on
how much data precedes it. No Python loop over customers or snapshots. Behavior features
(:mod:`features.transforms.behavior`) and realized labels (:mod:`training.labels`) both query it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY, TIMESTAMP
from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Sequence

NS_PER_DAY = 86_400 * 10**9
NAT_NS = np.iinfo(np.int64).min
"""A missing time as int64 nanoseconds (what ``NaT`` becomes)."""


def to_utc_ns(values: pd.Series | pd.Index | pd.DatetimeIndex | Sequence) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC); naive values are read as UTC.

    Args:
        values: datetimes (tz-aware, naive or parseable strings).

    Returns:
        An int64 array; missing timestamps become ``numpy.iinfo(int64).min``.
    """
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return index.as_unit("ns").asi8


def require_columns(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    """Raise a one-line :class:`PersonaError` when ``frame`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PersonaError(
            f"{table} is missing column(s) {', '.join(missing)}; expected at least {', '.join(columns)}"
        )


class EventIndex:
    """One event table sorted by ``(customer, time)`` for vectorized point-in-time queries.

    Positions returned by the query methods index the sorted arrays: for a customer code ``c``
    and a time ``q``, :meth:`positions_upto` gives one past the customer's last event at or
    before ``q``, so "events in (a, b]" is ``positions_upto(b) - positions_upto(a)`` and a sum
    of a value over them is :meth:`window_sum`.

    Args:
        customer_codes: int codes in ``[0, n_customers)`` for each event; rows with a negative
            code (customers nobody asks about) or a missing time are dropped.
        times_ns: event times as int64 nanoseconds (see :func:`to_utc_ns`).
        values: optional per-event numeric arrays to build per-customer running sums over.
    """

    def __init__(
        self,
        customer_codes: np.ndarray,
        times_ns: np.ndarray,
        values: dict[str, np.ndarray] | None = None,
    ) -> None:
        codes = np.asarray(customer_codes, dtype=np.int64)
        times = np.asarray(times_ns, dtype=np.int64)
        keep = (codes >= 0) & (times != NAT_NS)
        if not keep.all():
            codes, times = codes[keep], times[keep]
        n = len(times)
        by_time = np.argsort(times)
        self.sorted_times = times[by_time]
        # rank = number of events strictly earlier (ties share the rank of their first occurrence)
        is_first = np.ones(n, dtype=bool)
        is_first[1:] = self.sorted_times[1:] != self.sorted_times[:-1]
        ranks = np.empty(n, dtype=np.int64)
        ranks[by_time] = np.maximum.accumulate(np.where(is_first, np.arange(n, dtype=np.int64), 0))
        # a query rank (events <= q) runs 0..n, so the per-customer stride is n + 1
        self._stride = np.int64(n + 1)
        keys = codes * self._stride + ranks
        order = np.argsort(keys, kind="stable")  # ties keep input order: sums do not depend on the rest
        self.keys = keys[order]
        self.times = times[order]
        self._customer = codes[order]
        self._running: dict[str, np.ndarray] = {}
        for name, column in (values or {}).items():
            column = np.asarray(column, dtype=np.float64)
            sorted_values = (column[keep] if not keep.all() else column)[order]
            # running sum through each event, restarted at each customer's first event
            running = pd.Series(sorted_values).groupby(self._customer, sort=False).cumsum()
            self._running[name] = running.to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.keys)

    def positions_start(self, codes: np.ndarray) -> np.ndarray:
        """Position of each customer's first event."""
        return np.searchsorted(self.keys, np.asarray(codes, dtype=np.int64) * self._stride, side="left")

    def first_times(self, n_customers: int) -> np.ndarray:
        """Each customer code's first event time (int64 ns); NaT's int value when it has none."""
        bounds = self.positions_start(np.arange(n_customers + 1, dtype=np.int64))
        start, has_events = bounds[:-1], bounds[1:] > bounds[:-1]
        return np.where(has_events, self.times_at(start), NAT_NS)

    def times_at(self, positions: np.ndarray) -> np.ndarray:
        """Event times at sorted positions; positions outside the table give 0 (mask them)."""
        if not len(self.times):
            return np.zeros(len(positions), dtype=np.int64)
        return self.times[np.clip(positions, 0, len(self.times) - 1)]

    def positions_upto(
        self, codes: np.ndarray, times_ns: np.ndarray, shifts_ns: Sequence[int] = (0,)
    ) -> list[np.ndarray]:
        """For each shift ``s``: one past each customer's last event with time ``<= t - s``.

        Args:
            codes: customer code per query.
            times_ns: query time ``t`` per query (int64 ns).
            shifts_ns: offsets subtracted from ``t``; one result array per offset.

        Returns:
            A list of int64 position arrays, in the order of ``shifts_ns``.
        """
        base = np.asarray(codes, dtype=np.int64) * self._stride
        # queries share few distinct times (the snapshot grid): rank those once
        time_codes, distinct = pd.factorize(np.asarray(times_ns, dtype=np.int64))
        distinct = np.asarray(distinct, dtype=np.int64)
        positions = []
        for shift in shifts_ns:
            ranks = np.searchsorted(self.sorted_times, distinct - np.int64(shift), side="right")
            positions.append(np.searchsorted(self.keys, base + ranks[time_codes], side="left"))
        return positions

    def has_values(self, name: str) -> bool:
        """Whether running sums of value ``name`` were built."""
        return name in self._running

    def window_sum(self, name: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Sum of value ``name`` over sorted events ``[lo, hi)`` of one customer; exactly 0 when empty.

        ``[lo, hi)`` is one customer's window (as :meth:`positions_upto` returns): the running sum
        at its last event minus the one just before it, when that event is the same customer's.
        """
        running = self._running[name]
        lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        filled = hi > lo
        if not len(running):
            return np.zeros(len(lo))
        last = np.where(filled, hi - 1, 0)
        before = np.maximum(lo - 1, 0)
        same_customer = filled & (lo > 0) & (self._customer[before] == self._customer[last])
        total = running[last] - np.where(same_customer, running[before], 0.0)
        return np.where(filled, total, 0.0)


def event_index(
    events: pd.DataFrame | None, customers: pd.Index, table: str, values: dict[str, np.ndarray] | None = None
) -> EventIndex:
    """Index ``events`` (None: an empty table) by the position of each event's customer in ``customers``.

    Events of customers not in ``customers`` are dropped.

    Raises:
        PersonaError: ``events`` lacks ``customer_id`` or ``event_timestamp``.
    """
    if events is None:
        return EventIndex(np.empty(0, np.int64), np.empty(0, np.int64))
    require_columns(events, (ENTITY_KEY, TIMESTAMP), table)
    codes = customers.get_indexer(events[ENTITY_KEY]) if len(events) else np.empty(0, np.int64)
    return EventIndex(codes, to_utc_ns(events[TIMESTAMP]), values)


__all__ = ["NAT_NS", "NS_PER_DAY", "EventIndex", "event_index", "require_columns", "to_utc_ns"]
