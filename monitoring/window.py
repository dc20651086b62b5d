"""The current window: served predictions from the prediction log plus the latest feature snapshot.

Pure selection and merging live here; reading files and Feast stay in :mod:`monitoring.current`.
"""

from __future__ import annotations

import pandas as pd

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
SERVED_AT = "served_at"
SOURCE = "source"
COLD_START_REASON = "cold_start_reason"  # serving/prediction_log.py: null when the model predicted


def select_served(log: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp,
                  version: str | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Prediction log rows served in ``(start, end]`` by ``version``, cold starts left out.

    Args:
        log: the prediction log (``served_at``, ``model_version``, ``cold_start_reason`` or a
            boolean ``cold_start``, ...; see ``serving/prediction_log.py``).
        start: window start (exclusive); None for no lower bound.
        end: window end (inclusive).
        version: the model version whose predictions count (None: every version).

    Returns:
        The rows (``event_timestamp`` set to ``served_at``) and counts: ``served`` (in the window),
        ``other_version`` and ``cold_start`` (left out).
    """
    counts = {"served": 0, "other_version": 0, "cold_start": 0}
    if log.empty or SERVED_AT not in log:
        return pd.DataFrame(), counts
    served = pd.to_datetime(log[SERVED_AT], utc=True)
    in_window = served <= end
    if start is not None:
        in_window &= served > start
    rows = log[in_window]
    counts["served"] = int(len(rows))
    if version is not None and "model_version" in rows:
        same = rows["model_version"].astype(str) == str(version)
        counts["other_version"] = int((~same).sum())
        rows = rows[same]
    cold = pd.Series(False, index=rows.index)
    if COLD_START_REASON in rows:
        cold |= rows[COLD_START_REASON].notna()
    if "cold_start" in rows:
        cold |= rows["cold_start"].fillna(False).astype(bool)
    counts["cold_start"] = int(cold.sum())
    rows = rows[~cold]
    rows = rows.copy()
    rows[TIMESTAMP] = pd.to_datetime(rows[SERVED_AT], utc=True)
    return rows.reset_index(drop=True), counts


def combine_window(served: pd.DataFrame, snapshot: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: the latest served row, else the snapshot row.

    Args:
        served: prediction log rows of the window (``customer_id``, features, predictions).
        snapshot: the latest feature snapshot scored by the champion.

    Returns:
        The union with a ``source`` column (``prediction_log`` or ``snapshot``).
    """
    parts = []
    if len(served):
        ordered = served.sort_values(TIMESTAMP, kind="stable")
        known = (ordered[ENTITY_KEY].notna() if ENTITY_KEY in ordered
                 else pd.Series(False, index=ordered.index))
        # rows sent as bare features (no customer id) cannot be matched to anyone: keep them all
        latest = pd.concat([ordered[known].drop_duplicates(ENTITY_KEY, keep="last"), ordered[~known]])
        parts.append(latest.assign(**{SOURCE: "prediction_log"}))
    if len(snapshot):
        rest = snapshot
        if parts and ENTITY_KEY in snapshot and ENTITY_KEY in parts[0]:
            rest = snapshot[~snapshot[ENTITY_KEY].isin(parts[0][ENTITY_KEY].dropna())]
        parts.append(rest.assign(**{SOURCE: "snapshot"}))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True, sort=False)


def latest_at_or_before(times: pd.DatetimeIndex, at: pd.Timestamp | None) -> pd.Timestamp | None:
    """The latest of ``times`` at or before ``at`` (the latest overall when ``at`` is None)."""
    times = pd.DatetimeIndex(times)
    if at is not None:
        times = times[times <= at]
    return times.max() if len(times) else None


def clip_to_reference(window: pd.DataFrame, reference: pd.DataFrame,
                      margin: float = 10.0) -> tuple[pd.DataFrame, dict[str, int]]:
    """Numeric window values pulled into the reference's range widened by ``margin`` spans.

    One absurd served value (a what-if ``1e308`` logged before the server refused such input)
    would make the drift histograms ask for billions of bins and stop monitoring for as long as it
    stays in the window. Values outside ``[min - margin*span, max + margin*span]`` of the
    reference column (``span = max(max - min, 1)``) are clipped to that range (so they still
    count as drift), non-finite ones become missing; both are counted.

    Returns:
        The window (a copy when anything changed) and the values changed per column.
    """
    import numpy as np

    changed: dict[str, int] = {}
    out = window
    for column in window.columns:
        if column not in reference.columns or not pd.api.types.is_numeric_dtype(window[column]) \
                or pd.api.types.is_bool_dtype(window[column]):
            continue
        ref = pd.to_numeric(reference[column], errors="coerce").to_numpy(dtype=float)
        ref = ref[np.isfinite(ref)]
        if not len(ref):
            continue
        values = window[column].to_numpy(dtype=float, na_value=np.nan)
        span = max(float(ref.max() - ref.min()), 1.0)
        low, high = float(ref.min()) - margin * span, float(ref.max()) + margin * span
        infinite = np.isinf(values)
        outside = np.isfinite(values) & ((values < low) | (values > high))
        count = int(infinite.sum() + outside.sum())
        if not count:
            continue
        if out is window:
            out = window.copy()
        fixed = np.where(infinite, np.nan, np.clip(values, low, high))
        out[column] = fixed.astype(window[column].dtype) if window[column].dtype.kind == "f" else fixed
        changed[column] = count
    return out, changed
