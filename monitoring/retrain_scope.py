"""What a drift-triggered retrain can learn now: matured labels must cover the drifted period (pure).

Churn and value labels need the horizon to pass: a snapshot at ``t`` is labelled only once the
data reach ``t + horizon``. A retrain started the day drift is seen would train and gate on
snapshots from before the shift only, and the next monitor run would find the same drift. So a
drift alert is split in two:

- what needs no labels is refreshed now: personas, the text projection, the value baseline, and
  the calibration on the rows whose labels did mature;
- the supervised models (churn, value) wait until enough snapshots after the drift onset have
  matured labels for their training and holdout windows; :func:`retrain_scope` prints that date.

With a purged split (``purge=True``, the training default) a training snapshot must also end its
label window by the holdout's first snapshot, so the holdout starts one horizon after the first
post-shift training snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from core.timegrid import utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

LABEL_FREE = ("personas", "text projection", "value baseline", "calibration on matured rows")
"""What a retrain refreshes while the supervised models wait for labels."""


@dataclass(frozen=True)
class RetrainScope:
    """What a retrain does for a drift that began at ``drift_start``.

    Attributes:
        supervised: the churn and value models retrain now (labels cover the drifted period).
        refresh: what is refreshed without labels (all of :data:`LABEL_FREE`, also when supervised).
        drift_start: when the drift began (the first drifted window's start).
        labels_until: the latest snapshot time with matured labels (``label_cutoff - horizon``).
        ready_at: when matured labels cover the training and holdout snapshots after the onset.
        train_from: the first post-shift training snapshot.
        holdout_from: the first post-shift holdout snapshot.
    """

    supervised: bool
    refresh: tuple[str, ...]
    drift_start: pd.Timestamp
    labels_until: pd.Timestamp
    ready_at: pd.Timestamp
    train_from: pd.Timestamp
    holdout_from: pd.Timestamp

    def summary(self) -> str:
        """One line: what retrains now and, when they wait, the date the supervised models wait for."""
        day = "%Y-%m-%d"
        if self.supervised:
            return (f"labels cover the drift since {self.drift_start:{day}}: retrain churn and value on "
                    f"snapshots from {self.train_from:{day}}, holdout from {self.holdout_from:{day}}"
                    + (f", and refresh {', '.join(self.refresh)}" if self.refresh else ""))
        return ((f"refresh {', '.join(self.refresh)} now; " if self.refresh else "")
                + f"churn and value wait for labels until {self.ready_at:{day}} (labels have matured up to "
                f"{self.labels_until:{day}}, the drift began {self.drift_start:{day}})")

    def to_dict(self) -> dict[str, object]:
        """Plain data for the monitoring summary (dates as ISO strings)."""
        stamps = {k: getattr(self, k).isoformat() for k in ("drift_start", "labels_until", "ready_at",
                                                             "train_from", "holdout_from")}
        return {"supervised": self.supervised, "refresh": list(self.refresh), **stamps, "summary": self.summary()}


def _on_grid(at: pd.Timestamp, grid: list[pd.Timestamp], every: pd.Timedelta) -> pd.Timestamp:
    """The first snapshot at or after ``at``: from the grid, else extended by the cadence."""
    later = [t for t in grid if t >= at]
    if later:
        return later[0]
    if not grid:
        return at
    last = grid[-1]
    steps = -(-(at - last) // every)  # ceiling division of Timedeltas
    return last + steps * every


def retrain_scope(
    drift_start: object,
    label_cutoff: object,
    horizon_days: int,
    snapshot_every_days: int,
    snapshots: Sequence[object] = (),
    train_snapshots: int = 1,
    holdout_snapshots: int = 1,
    purge: bool = True,
    refresh: tuple[str, ...] = LABEL_FREE,
) -> RetrainScope:
    """Decide whether the supervised models can learn the drift now, or the date they wait for.

    Args:
        drift_start: when the drift began.
        label_cutoff: the newest event time in the data (labels are known up to it).
        horizon_days: the label horizon.
        snapshot_every_days: the snapshot cadence (extends ``snapshots`` into the future).
        snapshots: the snapshot grid (default: one snapshot per cadence from ``drift_start``).
        train_snapshots: post-shift snapshots the training window must hold.
        holdout_snapshots: post-shift snapshots the holdout must hold.
        purge: training labels must end by the holdout's first snapshot (the training default).
        refresh: what the caller refreshes without labels (default :data:`LABEL_FREE`).

    Returns:
        The scope; ``supervised`` is True once ``label_cutoff`` reaches ``ready_at``.

    Raises:
        ValueError: a non-positive horizon, cadence or snapshot count.
    """
    if horizon_days < 1 or snapshot_every_days < 1 or train_snapshots < 1 or holdout_snapshots < 1:
        raise ValueError("horizon_days, snapshot_every_days, train_snapshots and holdout_snapshots must be >= 1")
    start, cutoff = utc(drift_start), utc(label_cutoff)
    horizon, every = pd.Timedelta(days=horizon_days), pd.Timedelta(days=snapshot_every_days)
    grid = sorted(utc(t) for t in snapshots)
    train_from = _on_grid(start, grid, every)
    last_train = _on_grid(train_from + (train_snapshots - 1) * every, grid, every)
    holdout_from = _on_grid(last_train + (horizon if purge else every), grid, every)
    last_holdout = _on_grid(holdout_from + (holdout_snapshots - 1) * every, grid, every)
    ready_at = last_holdout + horizon
    return RetrainScope(supervised=cutoff >= ready_at, refresh=tuple(refresh), drift_start=start,
                        labels_until=cutoff - horizon, ready_at=ready_at, train_from=train_from,
                        holdout_from=holdout_from)


def drift_onset(current: object, history: Iterable[tuple[object, bool]] = ()) -> pd.Timestamp:
    """When the drift began, as far as the monitor runs can tell: never earlier than it was seen.

    The onset is the first snapshot a run found drifted after the last snapshot a run found
    clean (``current`` when no earlier run saw it). It errs late on purpose: a supervised retrain
    planned from it has post-shift snapshots on both sides of its split, at the cost of waiting
    up to one monitoring interval longer. Monitoring at the snapshot cadence makes it sharp.

    Args:
        current: the snapshot this run found drifted.
        history: ``(snapshot_at, drifted)`` of earlier runs against the same champion.
    """
    at = utc(current)
    seen = [(utc(t), bool(drifted)) for t, drifted in history if t is not None and utc(t) <= at]
    clean = [t for t, drifted in seen if not drifted]
    last_clean = max(clean) if clean else None
    drifted = [t for t, d in seen if d and (last_clean is None or t > last_clean)]
    return min([at, *drifted])


def waits_for_labels(scope: RetrainScope | None, triggers: Sequence[str]) -> bool:
    """Whether a retrain the policy asked for must wait for labels (no scope known: it does not wait).

    A quality trigger is measured on matured labels, so they already hold the change: it retrains now.
    """
    return scope is not None and not scope.supervised and "quality" not in triggers
