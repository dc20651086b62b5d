"""Point-in-time correct training sets through Feast's historical retrieval.

For each entity row (customer_id, event_timestamp) every feature takes the latest source row at
or before event_timestamp that is within the view's TTL; nothing from after event_timestamp can
reach the row (see tests/test_point_in_time.py for the brute-force oracle and leakage tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from core.errors import PersonaError
from store.repo import get_store

if TYPE_CHECKING:
    from core.settings import Settings

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"


def _feature_service(store, name: str):
    try:
        return store.get_feature_service(name)
    except Exception:
        known = sorted(fs.name for fs in store.list_feature_services())
        raise PersonaError(
            f"unknown feature service {name!r}; registered: {', '.join(known) or 'none'} "
            "(run `persona features apply`)"
        ) from None


def feature_names(settings: Settings, feature_service: str) -> list[str]:
    """The feature columns a feature service yields, in service order."""
    store = get_store(settings)
    service = _feature_service(store, feature_service)
    return [feature.name for projection in service.feature_view_projections for feature in projection.features]


def service_views(settings: Settings, feature_service: str) -> list[str]:
    """The feature views a feature service reads."""
    store = get_store(settings)
    service = _feature_service(store, feature_service)
    return [projection.name for projection in service.feature_view_projections]


def service_timeline(settings: Settings, feature_service: str) -> pd.DataFrame:
    """``customer_id`` and ``event_timestamp`` of every row of the service's views' offline sources.

    The entity timeline of a home without transactions: who exists, and since when, comes from
    the user's own feature sources (and the labels).
    """
    from store.repo import view_event_keys

    return view_event_keys(settings, service_views(settings, feature_service))


def feature_refs(settings: Settings, feature_service: str) -> list[str]:
    """``view:feature`` references of a feature service (for online reads)."""
    store = get_store(settings)
    service = _feature_service(store, feature_service)
    return [
        f"{projection.name_to_use()}:{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def _normalize_entities(entities: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (ENTITY_KEY, TIMESTAMP) if c not in entities.columns]
    if missing:
        raise PersonaError(f"entity frame lacks column(s) {', '.join(missing)}; need customer_id and event_timestamp")
    frame = entities.copy()
    ts = pd.to_datetime(frame[TIMESTAMP], utc=True)
    frame[TIMESTAMP] = ts
    frame[ENTITY_KEY] = frame[ENTITY_KEY].astype("int64")
    return frame


def build_training_set(settings: Settings, entities: pd.DataFrame, feature_service: str) -> pd.DataFrame:
    """Join the features of a feature service onto entity rows, point-in-time correct.

    Args:
        settings: Persona settings (profile selects the offline store).
        entities: ``customer_id``, ``event_timestamp`` and any other columns (labels), kept as they are.
        feature_service: a registered feature service, e.g. ``churn_model_v1``.

    Returns:
        The entity rows in their original order with one column per feature.
    """
    frame = _normalize_entities(entities)
    store = get_store(settings)
    service = _feature_service(store, feature_service)
    frame["_row"] = range(len(frame))
    try:
        job = store.get_historical_features(entity_df=frame, features=service, full_feature_names=False)
        result = job.to_df()
    except Exception as exc:
        raise PersonaError(f"historical retrieval for {feature_service} failed: {exc}") from exc
    result = result.sort_values("_row", kind="stable").drop(columns="_row").reset_index(drop=True)
    result[TIMESTAMP] = pd.to_datetime(result[TIMESTAMP], utc=True)
    return result
