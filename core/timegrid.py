"""The snapshot grid: the timestamps at which per-customer features are computed.

Every feature view (behavior, text) and the generator's ground truth use this one grid so
their rows join exactly on ``(customer_id, event_timestamp)``.
"""

from __future__ import annotations

import pandas as pd


def utc(value: object) -> pd.Timestamp:
    """``value`` as a UTC timestamp: a naive time is read as UTC, an aware one converted."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def snapshot_anchor(last_event: pd.Timestamp) -> pd.Timestamp:
    """The newest snapshot: the midnight (UTC) after the last event.

    Args:
        last_event: the latest event timestamp in the data (tz-aware or naive UTC).

    Returns:
        A tz-aware UTC timestamp at 00:00 strictly after ``last_event``'s day start.
    """
    ts = pd.Timestamp(last_event)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.normalize() + pd.Timedelta(days=1)


def snapshot_timestamps(
    first_event: pd.Timestamp, last_event: pd.Timestamp, every_days: int = 7
) -> pd.DatetimeIndex:
    """Snapshots ``anchor - k * every_days`` for k = 0, 1, ... that lie after ``first_event``.

    Args:
        first_event: the earliest event in the data.
        last_event: the latest event in the data.
        every_days: days between snapshots (>= 1).

    Returns:
        Ascending tz-aware UTC timestamps; empty when the data spans no full step.
    """
    if every_days < 1:
        raise ValueError(f"every_days must be >= 1, got {every_days}")
    first = pd.Timestamp(first_event)
    first = first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")
    anchor = snapshot_anchor(last_event)
    steps = int((anchor - first) / pd.Timedelta(days=every_days))
    if anchor - steps * pd.Timedelta(days=every_days) <= first:
        steps -= 1
    if steps < 0:
        return pd.DatetimeIndex([], tz="UTC")
    offsets = pd.to_timedelta([every_days * k for k in range(steps, -1, -1)], unit="D")
    return pd.DatetimeIndex(anchor - offsets)
