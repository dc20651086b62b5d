"""The ``customer_scores`` offline source: model outputs written back as versioned features.

Batch scoring (``persona score``) writes one row per customer and scoring time; Feast serves
them offline as of any time (point-in-time, like any feature) and online by customer id, so
campaigns and other downstream jobs read scores through the feature store and always know which
model version made them. The names here are the ones the view (``feature_repo/definitions.py``),
the writer (:mod:`scoring.publish`) and the readers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from core import catalog

if TYPE_CHECKING:
    from core.settings import Settings

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
CREATED = "created_timestamp"

SCORE_FEATURES: dict[str, str] = {
    "churn_probability": "float",
    "expected_orders": "float",
    "expected_spend": "float",
    "p_alive": "float",
    "persona_id": "int",
    "persona": "str",
    "action": "str",
    "model": "str",
    "model_version": "str",
}
"""Feature name -> kind of the ``customer_scores`` view (``p_alive`` is null unless the model gives it)."""

_ARROW = {"float": pa.float64(), "int": pa.int64(), "str": pa.string()}


def scores_schema() -> pa.Schema:
    """The source's columns: key, scoring time, write time, then :data:`SCORE_FEATURES`."""
    return pa.schema(
        [pa.field(ENTITY_KEY, pa.int64()), pa.field(TIMESTAMP, pa.timestamp("us", tz="UTC")),
         pa.field(CREATED, pa.timestamp("us", tz="UTC"))]
        + [pa.field(name, _ARROW[kind]) for name, kind in SCORE_FEATURES.items()]
    )


def ensure_scores_source(settings: Settings) -> bool:
    """Create an empty ``customer_scores`` source when there is none (the view registers before any scoring).

    Returns:
        Whether one was created.
    """
    from store.offline import source_exists, write_source

    if source_exists(settings, catalog.SCORES_SOURCE):
        return False
    write_source(settings, catalog.SCORES_SOURCE, pa.Table.from_pylist([], schema=scores_schema()))
    return True
