"""The data contract: which tables Persona accepts and what their columns mean.

This module only describes; validation lives in :mod:`ingest.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class TableSpec:
    """Columns a contract table must and may carry.

    Attributes:
        name: table name, also the stem of files (``transactions.parquet``).
        required: column -> kind (``int``, ``timestamp``, ``float>=0``, ``text``, ``any``).
        optional: column -> kind, validated when present.
        timestamp: the column that orders rows in time.
    """

    name: str
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    timestamp: str = TIMESTAMP


TRANSACTIONS = TableSpec(
    name="transactions",
    required={ENTITY_KEY: "int", TIMESTAMP: "timestamp", "amount": "float>=0"},
    optional={
        "order_id": "any",
        "quantity": "float>=0",
        "category": "any",
        "channel": "any",
        "discount": "share",  # share of list price taken off, 0..1
        "returned": "bool",
    },
)
SESSIONS = TableSpec(
    name="sessions",
    required={ENTITY_KEY: "int", TIMESTAMP: "timestamp"},
    optional={"page_views": "float>=0", "duration_s": "float>=0", "channel": "any"},
)
REVIEWS = TableSpec(
    name="reviews",
    required={ENTITY_KEY: "int", TIMESTAMP: "timestamp", "text": "text"},
    optional={"rating": "rating"},
)
CUSTOMERS = TableSpec(
    name="customers",
    required={ENTITY_KEY: "int", "signup_date": "timestamp"},
    timestamp="signup_date",
)
LABELS = TableSpec(name="labels", required={ENTITY_KEY: "int", TIMESTAMP: "timestamp"})

# What a model answers per customer: the bundle's output, the API's fields, the prediction log's
# columns and the score file's columns, in this order.
PREDICTION_COLUMNS = ("churn_probability", "expected_orders", "expected_spend", "segment", "persona", "action")

TABLES: dict[str, TableSpec] = {t.name: t for t in (TRANSACTIONS, SESSIONS, REVIEWS, CUSTOMERS)}
"""The customer tables: every row belongs to a customer (features, erasure, the generator)."""

# Campaigns: what was offered to whom, and who was held out. Outcomes are never ingested; they
# are computed from transactions inside each exposure's response window (campaign.outcomes).
CAMPAIGN_KEY = "campaign_id"
GROUP = "group"
TREATMENT = "treatment"
CONTROL = "control"
GROUPS = (TREATMENT, CONTROL)
CAMPAIGNS = TableSpec(
    name="campaigns",
    required={CAMPAIGN_KEY: "any", "offer": "any", "start": "timestamp", "end": "timestamp",
              "response_days": "float>=0"},
    optional={"name": "any", "channel": "any", "cost_per_contact": "float>=0", "value_per_conversion": "float>=0"},
    timestamp="start",
)
EXPOSURES = TableSpec(
    name="exposures",
    required={ENTITY_KEY: "int", CAMPAIGN_KEY: "any", TIMESTAMP: "timestamp", GROUP: "any"},
)
CAMPAIGN_TABLES: dict[str, TableSpec] = {t.name: t for t in (CAMPAIGNS, EXPOSURES)}
INGEST_TABLES: dict[str, TableSpec] = {**TABLES, **CAMPAIGN_TABLES}
"""Every table ``persona ingest`` accepts (campaigns before exposures: exposures are checked against them)."""
