"""The current side of monitoring: the window of served and snapshot predictions, matured labels.

The readers (raw transactions, the snapshot grid, a snapshot scored by the champion) touch files
and Feast; :func:`current_window` and :func:`matured_quality` take them as arguments, so a test
(or the job's subclass) can hand in frames instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from core.contract import PREDICTION_COLUMNS
from core.errors import PersonaError
from monitoring.quality import QualityCheck, label_predictions, matured_mask, quality_check, reference_quality
from monitoring.window import ENTITY_KEY, TIMESTAMP, combine_window, latest_at_or_before, select_served

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings
    from monitoring.champion import Champion

    ScoreSnapshot = Callable[[Champion, pd.Timestamp], pd.DataFrame]


def read_transactions(settings: Settings, end: pd.Timestamp | None) -> pd.DataFrame | None:
    """Ingested transactions up to ``end`` (all when None); None before any ingest."""
    from features.build import read_raw

    frame = read_raw(settings, "transactions", columns=[ENTITY_KEY, TIMESTAMP, "amount"])
    if frame is None:
        return None
    if end is not None:
        frame = frame[pd.to_datetime(frame[TIMESTAMP], utc=True) <= end]
    return frame


def snapshot_times(settings: Settings) -> pd.DatetimeIndex:
    """The feature snapshot grid of this home's data (empty without ingested data)."""
    from features.build import snapshot_grid

    try:
        return snapshot_grid(settings)
    except PersonaError:
        return pd.DatetimeIndex([], tz="UTC")


def score_snapshot(settings: Settings, champion: Champion, at: pd.Timestamp) -> pd.DataFrame:
    """Every customer known at ``at``: offline features (point-in-time) and the champion's predictions."""
    from features.build import read_raw
    from features.dataset import build_training_set
    from scoring.score import known_customers

    transactions = read_raw(settings, "transactions", columns=[ENTITY_KEY, TIMESTAMP])
    customers = known_customers(read_raw(settings, "customers"), transactions, at)
    if customers.empty:
        return pd.DataFrame()
    entities = pd.DataFrame({ENTITY_KEY: customers, TIMESTAMP: at})
    features = build_training_set(settings, entities, champion.feature_service)
    predictions = champion.predictor.predict(features)
    keep = [c for c in features.columns if c not in PREDICTION_COLUMNS]
    return pd.concat([features[keep].reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)


def current_window(champion: Champion, end: pd.Timestamp, window_days: int, log: pd.DataFrame,
                   times: pd.DatetimeIndex, score: ScoreSnapshot) -> tuple[pd.DataFrame, dict]:
    """Served rows of ``(end - window_days, end]`` plus the latest snapshot at or before ``end``.

    Returns:
        The window and what it holds (bounds, snapshot time, rows per source, served counts).
    """
    start = end - pd.Timedelta(days=window_days)
    served, counts = select_served(log, start, end, champion.version)
    snapshot_at = latest_at_or_before(times, end)
    snapshot = score(champion, snapshot_at) if snapshot_at is not None else pd.DataFrame()
    window = combine_window(served, snapshot)
    sources = window["source"].value_counts().to_dict() if len(window) else {}
    info = {"days": window_days, "start": start.isoformat(), "end": end.isoformat(),
            "snapshot_at": snapshot_at.isoformat() if snapshot_at is not None else None,
            "rows": len(window), "sources": {str(k): int(v) for k, v in sources.items()},
            "served": counts}
    return window, info


def matured_quality(champion: Champion, end: pd.Timestamp | None, log: pd.DataFrame,
                    times: pd.DatetimeIndex, transactions: pd.DataFrame | None, score: ScoreSnapshot,
                    default_horizon: int) -> QualityCheck | None:
    """Churn quality of the champion's predictions whose label window has closed.

    Two sources: served predictions older than the horizon, and the latest snapshot after the
    champion's holdout whose labels are complete (scored now by the champion).

    Args:
        champion: the champion (version, horizon, holdout end, training metrics).
        end: labels known by then (None: all).
        log: the prediction log.
        times: the snapshot grid.
        transactions: ingested transactions up to ``end`` (the labels' source).
        score: scores a snapshot with the champion.
        default_horizon: the horizon when the champion did not record one.

    Returns:
        The check, or None without transactions.
    """
    from training.labels import latest_label_cutoff

    if transactions is None or transactions.empty:
        return None
    horizon = champion.horizon_days(default_horizon)
    cutoff = latest_label_cutoff(transactions)
    parts, sources = [], {}
    served, _ = select_served(log, None, end if end is not None else cutoff, champion.version)
    if len(served) and ENTITY_KEY in served and "churn_probability" in served:
        served = served[served[ENTITY_KEY].notna() & served["churn_probability"].notna()]
        served = served[matured_mask(served[TIMESTAMP], cutoff, horizon).to_numpy()]
        if len(served):
            rows = served[[ENTITY_KEY, TIMESTAMP, "churn_probability"]]
            parts.append(rows.astype({ENTITY_KEY: "int64"}))
            sources["prediction_log"] = len(served)
    holdout_end = champion.holdout_end
    eligible = [t for t in times if t + pd.Timedelta(days=horizon) <= cutoff
                and (holdout_end is None or t > holdout_end)]
    if eligible:
        scored = score(champion, max(eligible))
        if len(scored):
            parts.append(scored[[ENTITY_KEY, TIMESTAMP, "churn_probability"]])
            sources["snapshot"] = len(scored)
    reference = reference_quality(champion.metrics)
    if not parts:
        return QualityCheck(0, {}, reference, None, {})
    labelled = label_predictions(pd.concat(parts, ignore_index=True), transactions, horizon)
    return quality_check(labelled, reference, sources)


def matured_rows(champion: Champion, times: pd.DatetimeIndex | None, transactions: pd.DataFrame | None,
                 score: ScoreSnapshot, default_horizon: int) -> pd.DataFrame | None:
    """The latest snapshot after the champion's holdout whose labels matured: features, predictions, labels.

    The rows a label-free refresh may recalibrate churn on (never rows the champion trained or was
    gated on). None without transactions or such a snapshot.
    """
    from training.labels import latest_label_cutoff, make_labels

    if transactions is None or transactions.empty or times is None:
        return None
    horizon = champion.horizon_days(default_horizon)
    cutoff = latest_label_cutoff(transactions)
    holdout_end = champion.holdout_end
    eligible = [t for t in times if t + pd.Timedelta(days=horizon) <= cutoff
                and (holdout_end is None or t > holdout_end)]
    if not eligible:
        return None
    scored = score(champion, max(eligible))
    return make_labels(scored, transactions, horizon) if len(scored) else None
