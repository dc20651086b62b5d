"""Scores as versioned features: ``persona score`` writes ``customer_scores`` and serves it through Feast.

Downstream jobs (campaigns, reports, other models) should not read a score file whose model they
cannot name. :func:`publish_scores` adds the scoring's rows (event time = the scoring's as-of,
with the model and version) to the ``customer_scores`` offline source and materializes that view,
so :func:`scores_as_of` gives the latest scores at or before any time (Feast point-in-time
retrieval) and :func:`scores_online` the latest by customer id. Rescoring the same as-of
replaces those rows; the online store keeps the newest as-of per customer (newer-wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from core import catalog
from core.errors import PersonaError
from core.locks import exclusive
from store.scores_source import CREATED, ENTITY_KEY, SCORE_FEATURES, TIMESTAMP

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.settings import Settings

VIEW = "customer_scores"
SCORE_REFS = [f"{VIEW}:{name}" for name in SCORE_FEATURES]


@dataclass(frozen=True)
class Published:
    """What :func:`publish_scores` wrote and materialized."""

    rows: int
    total_rows: int
    materialized: list[str]

    def summary(self) -> str:
        """One line for the terminal."""
        done = "; ".join(self.materialized)
        return f"feature view {VIEW}: +{self.rows:,} rows ({self.total_rows:,} in the offline store); {done}"


def merge_scores(existing: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``existing`` plus ``new``; a customer's row at an as-of scored again is replaced by the new one."""
    frames = [f for f in (existing, new) if len(f)]
    if not frames:
        return new
    both = pd.concat(frames, ignore_index=True)
    both = both.sort_values([ENTITY_KEY, TIMESTAMP, CREATED], kind="stable")
    return both.drop_duplicates([ENTITY_KEY, TIMESTAMP], keep="last").reset_index(drop=True)


def publish_scores(
    settings: Settings, scored: pd.DataFrame, as_of: pd.Timestamp, model: str, version: str
) -> Published:
    """Add a scoring's rows to ``customer_scores`` and materialize the view.

    Args:
        settings: Persona settings.
        scored: ``customer_id``, the prediction columns (``segment`` is the persona id), optional ``p_alive``.
        as_of: the scoring time (the rows' event time).
        model: the registered model.
        version: the version that scored.

    Raises:
        PersonaError: the feature store cannot register or materialize the view.
    """
    from features.transforms.scores import scores_frame
    from store.offline import read_source, source_exists, write_source
    from store.repo import apply_repo, get_store, materialize

    new = scores_frame(scored, as_of, pd.Timestamp.now(tz="UTC"), model, version).to_pandas()
    with exclusive(catalog.scores_lock(settings), what="the customer_scores source"):
        existing = read_source(settings, catalog.SCORES_SOURCE) if source_exists(settings, catalog.SCORES_SOURCE) \
            else new.iloc[:0]
        merged = merge_scores(existing, new)
        write_source(settings, catalog.SCORES_SOURCE, merged[list(new.columns)])
    if VIEW not in {view.name for view in get_store(settings).list_feature_views()}:
        apply_repo(settings)  # a home applied before the view existed
    lines = materialize(settings, views=[VIEW])
    return Published(len(new), len(merged), lines)


def scores_online(settings: Settings, ids: Sequence[int]) -> pd.DataFrame:
    """The latest scores of ``ids`` from the online store (one row per id, in order; nulls when unscored)."""
    from store.repo import get_store

    rows = [{ENTITY_KEY: int(i)} for i in ids]
    try:
        return get_store(settings).get_online_features(features=SCORE_REFS, entity_rows=rows).to_df()
    except Exception as exc:
        raise PersonaError(f"reading {VIEW} online failed: {exc}; run `persona score` first") from None


def scores_as_of(settings: Settings, entities: pd.DataFrame) -> pd.DataFrame:
    """Each (``customer_id``, ``event_timestamp``) row's latest scores at or before its time (point-in-time)."""
    from store.repo import get_store

    frame = entities.copy()
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    frame["_row"] = range(len(frame))
    try:
        job = get_store(settings).get_historical_features(entity_df=frame, features=SCORE_REFS)
        out = job.to_df()
    except Exception as exc:
        raise PersonaError(f"reading {VIEW} offline failed: {exc}; run `persona score` first") from None
    return out.sort_values("_row", kind="stable").drop(columns="_row").reset_index(drop=True)
