"""The monitor's label-free step: while churn and value wait for labels, refresh what needs none.

See :mod:`training.refresh` for what is refitted and gated; this runs it once per drift under the
retrain lock, and reports what happened as plain data for :attr:`monitoring.trigger.RetrainOutcome.refresh`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import PersonaError
from core.locks import AlreadyRunning, single_flight
from core.timegrid import utc
from monitoring.trigger import lock_path
from training.config import TrainConfig
from training.refresh import REFRESHED_FROM

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from core.settings import Settings
    from monitoring.champion import Champion
    from monitoring.retrain_scope import RetrainScope


def lineage(champion: Champion) -> list[str]:
    """The champion's version and, for a label-free refresh, the version whose drift it followed."""
    base = champion.predictor.metadata.get(REFRESHED_FROM)
    return [champion.version, *([str(base)] if base else [])]


def refresh(
    settings: Settings,
    champion: Champion,
    snapshot_at: object,
    scope: RetrainScope,
    train: TrainConfig | None,
    score_snapshot: Callable[[Champion, pd.Timestamp], pd.DataFrame],
    matured_rows: Callable[[], pd.DataFrame | None] = lambda: None,
) -> dict:
    """Refresh personas and value tiers on the snapshot at ``snapshot_at`` through their gate.

    Once per drift: a champion that is already a refresh fitted since the drift began is kept. Runs
    under the retrain lock; the supervised cooldown is untouched (no label model is trained).

    Args:
        settings: Persona settings.
        champion: the monitored champion.
        snapshot_at: the latest snapshot (today's customers).
        scope: the retrain scope (its ``drift_start``).
        train: the retrain's training configuration (persona settings, seed; default: the champion's feature service).
        score_snapshot: reads every customer's offline features at a snapshot.
        matured_rows: rows after the champion's training window whose labels matured (with
            ``churned``), for the churn calibration.

    Returns:
        ``status`` (refreshed, skipped or failed), ``summary`` and, when refreshed, the
        :class:`training.refresh_job.RefreshResult` fields.
    """
    from training.refresh_job import refresh_champion, refresh_of, refreshed_since

    if snapshot_at is None:
        return {"status": "skipped", "summary": "no snapshot to refresh personas on"}
    if refreshed_since(champion.predictor.metadata, scope.drift_start):
        return {"status": "skipped", "version": champion.version,
                "summary": f"personas and value tiers were already refreshed for this drift (v{champion.version})"}
    earlier = refresh_of(settings, champion.version, scope.drift_start)
    if earlier is not None:
        return {"status": "skipped", "version": earlier[0],
                "summary": f"personas and value tiers were already refreshed for this drift (v{earlier[0]}, "
                           f"{earlier[1]})"}
    config = train or TrainConfig(feature_service=champion.feature_service)
    at = utc(snapshot_at)
    try:
        with single_flight(lock_path(settings)):
            rows = score_snapshot(champion, at)
            result = refresh_champion(settings, champion.predictor, champion.version,  # type: ignore[arg-type]
                                      champion.reference, rows, at, config, matured=matured_rows())
    except AlreadyRunning as exc:
        return {"status": "skipped", "summary": f"refresh skipped: {exc}"}
    except PersonaError as exc:
        return {"status": "failed", "summary": f"label-free refresh failed: {exc}"}
    return {"status": "refreshed", **result.to_dict(), "summary": result.summary()}
