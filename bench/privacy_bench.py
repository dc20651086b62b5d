"""``persona forget`` on a 100k-customer home (issue 17): its time for 1 and for 10,000 customers, and its scan.

The home is built as a user builds one: generated data ingested, the offline sources built, the
Feast repo applied and the online store materialized (no embeddings and no trained model: the
review-text caches, the prediction log and MLflow's reference samples are empty, so their
stores are scanned but hold nothing to erase). The same :func:`privacy.forget.forget` the CLI
calls erases first one customer, then 10,000 others; each erasure scans every store afterwards,
and a store whose scan finds a forgotten id or text left counts against the target of 0.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from bench.common import row, scratch_home, timed

ISSUE = 17


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for issue 17 (``quick``: a 5k-customer home, 500 customers at once)."""
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from privacy.forget import forget
    from store.repo import apply_repo, materialize
    from synthetic.generator import GenerateConfig, generate_dataset

    customers = 5_000 if quick else 100_000
    many = 500 if quick else 10_000
    rows: list[dict] = []
    with scratch_home("privacy") as base:
        config = GenerateConfig(customers=customers, days=365, seed=17, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        paths = generate_dataset(config, base / "generated")
        settings = load_settings()
        ingest_files(settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")})
        build_offline_sources(settings)
        apply_repo(settings)
        materialize(settings)
        others = np.random.default_rng(17).choice(np.arange(2, customers + 1), many, replace=False)
        found = 0
        for ids in ([1], [int(i) for i in others]):
            with timed() as took:
                report = forget(settings, ids)
            found += sum(1 for store in report.stores if store.hits_after)
            removed = sum(store.removed for store in report.stores)
            rows.append(row(ISSUE, "privacy", f"persona forget {len(ids):,} customer(s), {customers:,}-customer "
                            f"home without embeddings ({removed:,} rows removed, {len(report.stores)} stores "
                            "scanned)", took[0], "s"))
        rows.append(row(ISSUE, "privacy", "stores where the erasure scan found a forgotten customer (both runs)",
                        found, "stores", "0", found == 0, load_sensitive=False))
    return rows
