"""Build the offline feature sources from ingested data (the edge around the pure transforms).

Reads the raw store (``catalog.raw_table``), computes snapshots on the shared grid and writes
the profile and behavior offline sources (``catalog.offline_source``) atomically.
An empty ``customer_text.parquet`` with the right schema is written when ``persona embed`` has
not run yet, so the text view can be applied (and training works without text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from core import catalog
from core.errors import PersonaError
from core.progress import silent
from core.timegrid import snapshot_timestamps
from engine.runner import open_engine
from features.partitioned import behavior_on_engine
from features.transforms.behavior import build_entity_snapshots, compute_behavior_features
from store.offline import source_exists, write_parquet_atomic, write_source  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from core.progress import ProgressEvent
    from core.settings import Settings
    from engine.runner import Engine

ENTITY_KEY = "customer_id"
_EVENT_TABLES = ("transactions", "sessions", "reviews")


def read_raw(settings: Settings, table: str, columns: list[str] | None = None) -> pd.DataFrame | None:
    """An ingested table, or None when it was never ingested."""
    path = catalog.raw_table(settings, table)
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=columns)


def data_span(settings: Settings) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Earliest and latest event timestamp over the ingested event tables.

    Raises:
        PersonaError: when no transactions were ingested.
    """
    if not catalog.raw_table(settings, "transactions").exists():
        raise PersonaError("no transactions ingested yet; run `persona ingest --transactions FILE` first")
    firsts, lasts = [], []
    for table in _EVENT_TABLES:
        frame = read_raw(settings, table, columns=["event_timestamp"])
        if frame is not None and len(frame):
            firsts.append(frame["event_timestamp"].min())
            lasts.append(frame["event_timestamp"].max())
    if not firsts:
        raise PersonaError("the ingested transactions table is empty; ingest a file with rows")
    return min(firsts), max(lasts)


def snapshot_grid(settings: Settings, every_days: int | None = None) -> pd.DatetimeIndex:
    """The snapshot timestamps every feature view uses for this home's data."""
    first, last = data_span(settings)
    return snapshot_timestamps(first, last, every_days or settings.snapshot_every_days)


def entity_snapshots(settings: Settings, every_days: int | None = None) -> pd.DataFrame:
    """(customer_id, event_timestamp) for every customer known at every snapshot."""
    transactions = read_raw(settings, "transactions", columns=[ENTITY_KEY, "event_timestamp"])
    customers = read_raw(settings, "customers")
    return build_entity_snapshots(customers, transactions, snapshot_grid(settings, every_days))


def build_profile_frame(customers: pd.DataFrame, created: pd.Timestamp, source: str = "customers") -> pd.DataFrame:
    """Profile source rows: one per customer at signup_date, attribute columns kept as they are.

    ``profile_source`` says where the row came from (``customers`` or ``first_transaction``
    when no customers table was ingested), so the view always has at least one feature.
    """
    internal = [c for c in customers.columns if c.startswith("_")]
    frame = customers.drop(columns=internal).rename(columns={"signup_date": "event_timestamp"})
    frame["profile_source"] = source
    frame = frame.sort_values([ENTITY_KEY, "event_timestamp"]).drop_duplicates(ENTITY_KEY, keep="last")
    frame["created_timestamp"] = created
    return frame.reset_index(drop=True)


def empty_text_frame() -> pa.Table:
    """A zero-row customer_text source with the schema ``persona embed`` writes."""
    from features.text_build import text_schema

    return pa.Table.from_pylist([], schema=text_schema())


def empty_sources_without_transactions(settings: Settings) -> list[str]:
    """Empty profile, behavior and text sources for a home that ingested no transactions.

    A labels file with the user's own feature views needs no transactions (issue: custom
    features stand alone): Persona's views are still registered, with no rows, so the user's
    services can be applied, trained and served. Nothing is written when transactions were
    ingested (``persona features build`` makes the real sources) or a source already exists.

    Returns:
        The sources written (empty when none).
    """
    from features.transforms.behavior import BEHAVIOR_FEATURES

    if catalog.raw_table(settings, "transactions").exists():
        return []
    kinds = {"int": pa.int64(), "float": pa.float32()}
    key = [pa.field(ENTITY_KEY, pa.int64()), pa.field("event_timestamp", pa.timestamp("ns", tz="UTC"))]
    created = [pa.field("created_timestamp", pa.timestamp("ns", tz="UTC"))]
    empty = {
        catalog.PROFILE_SOURCE: pa.schema([*key, pa.field("profile_source", pa.string()), *created]),
        catalog.BEHAVIOR_SOURCE: pa.schema(
            [*key, *(pa.field(name, kinds[kind]) for name, kind in BEHAVIOR_FEATURES.items()), *created]
        ),
    }
    written = []
    for name, schema in empty.items():
        if not source_exists(settings, name):
            write_source(settings, name, pa.Table.from_pylist([], schema=schema))
            written.append(name)
    if not source_exists(settings, catalog.TEXT_SOURCE):
        write_source(settings, catalog.TEXT_SOURCE, empty_text_frame())
        written.append(catalog.TEXT_SOURCE)
    return written


def build_offline_sources(
    settings: Settings,
    every_days: int | None = None,
    on_progress: ProgressEvent = silent,
    engine: Engine | None = None,
) -> dict[str, tuple[str, int]]:
    """Compute profile and behavior snapshots from the ingested tables.

    Args:
        settings: locates the raw store and the offline store.
        every_days: days between snapshots (default: the settings' cadence).
        on_progress: told each step; while behavior features are computed, rows (local engine) or
            customer partitions (Ray) done of the total.
        engine: where behavior snapshots are computed (default: the one ``settings.engine`` names,
            opened for this call); both give the same rows.

    Returns:
        source name -> (where it was written, rows).
    """
    if engine is not None:
        return _build(settings, every_days, on_progress, engine)
    with open_engine(settings) as opened:  # connect first: an unreachable cluster fails before any work
        return _build(settings, every_days, on_progress, opened)


def _build(
    settings: Settings, every_days: int | None, on_progress: ProgressEvent, engine: Engine
) -> dict[str, tuple[str, int]]:
    created = pd.Timestamp.now(tz="UTC")
    out: dict[str, tuple[str, int]] = {}
    on_progress(0, None, "reading ingested tables")
    transactions = read_raw(settings, "transactions")
    if transactions is None:
        raise PersonaError("no transactions ingested yet; run `persona ingest --transactions FILE` first")
    sessions = read_raw(settings, "sessions")
    reviews = read_raw(settings, "reviews", columns=[ENTITY_KEY, "event_timestamp", "rating"])
    customers = read_raw(settings, "customers")

    on_progress(0, None, "computing snapshot grid")
    grid = snapshot_grid(settings, every_days)
    if len(grid) == 0:
        raise PersonaError("the data spans less than one snapshot interval; ingest more history "
                           "or lower PERSONA_SNAPSHOT_EVERY_DAYS")

    if engine.name == "local":
        entities = build_entity_snapshots(customers, transactions, grid)
        step = "behavior features (customer snapshots)"
        on_progress(0, len(entities), step)
        behavior = compute_behavior_features(
            entities, transactions, sessions=sessions, reviews=reviews, customers=customers,
            on_progress=lambda done, total=None, note="": on_progress(done, total, step),
        )
    else:
        step = f"behavior features (customer partitions on {engine.name})"
        on_progress(0, None, step)
        behavior = behavior_on_engine(
            engine, customers, transactions, sessions, reviews, grid,
            on_progress=lambda done, total=None, note="": on_progress(done, total, step),
        )
    behavior["created_timestamp"] = created
    on_progress(0, None, "writing customer behavior snapshots")
    out[catalog.BEHAVIOR_SOURCE] = (write_source(settings, catalog.BEHAVIOR_SOURCE, behavior), len(behavior))

    on_progress(0, None, "writing customer profiles")
    source = "customers"
    if customers is None:
        first_seen = transactions.groupby(ENTITY_KEY, as_index=False)["event_timestamp"].min()
        customers = first_seen.rename(columns={"event_timestamp": "signup_date"})
        source = "first_transaction"
    profile = build_profile_frame(customers, created, source)
    out[catalog.PROFILE_SOURCE] = (write_source(settings, catalog.PROFILE_SOURCE, profile), len(profile))

    if not source_exists(settings, catalog.TEXT_SOURCE):
        out[catalog.TEXT_SOURCE] = (write_source(settings, catalog.TEXT_SOURCE, empty_text_frame()), 0)
    return out
