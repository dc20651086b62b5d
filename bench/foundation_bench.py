"""Issue 2 figures: generate, ingest, build features, materialize 1M rows, point-in-time training set."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from bench.common import row, scratch_home, timed


def _materialize_rows(n: int) -> float:
    """Seconds to materialize ``n`` behavior rows (one per customer) into the online store."""
    from core.settings import load_settings
    from features.build import empty_text_frame, write_parquet_atomic
    from features.transforms.behavior import BEHAVIOR_FEATURES
    from store.repo import apply_repo, materialize

    with scratch_home("materialize"):
        settings = load_settings()
        rng = np.random.default_rng(0)
        t = pd.Timestamp("2025-06-01", tz="UTC")
        frame = pd.DataFrame({"customer_id": np.arange(n, dtype="int64"), "event_timestamp": t,
                              "created_timestamp": t})
        for name, kind in BEHAVIOR_FEATURES.items():
            frame[name] = rng.integers(0, 50, n) if kind == "int" else rng.normal(size=n).astype("float32")
        write_parquet_atomic(frame, settings.offline_dir / "customer_behavior.parquet")
        profile = pd.DataFrame({"customer_id": [0], "event_timestamp": [t], "created_timestamp": [t],
                                "region": ["x"]})
        write_parquet_atomic(profile, settings.offline_dir / "customer_profile.parquet")
        write_parquet_atomic(empty_text_frame(), settings.offline_dir / "customer_text.parquet")
        apply_repo(settings)
        with timed() as t_mat:
            materialize(settings)
        return t_mat[0]


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for the foundation issue (``quick`` shrinks sizes for a smoke run)."""
    from core.settings import load_settings
    from features.build import build_offline_sources, entity_snapshots
    from features.dataset import build_training_set
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset

    customers = 5_000 if quick else 100_000
    materialize_rows = 50_000 if quick else 1_000_000
    rows: list[dict] = []
    with scratch_home("foundation") as base:
        config = GenerateConfig(customers=customers, days=365, seed=11,
                                start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        with timed() as t_gen:
            paths = generate_dataset(config, base / "generated")
        rows.append(row(2, "data", f"generate {customers:,} customers x 365 days", t_gen[0], "s", "< 120",
                        t_gen[0] < 120))

        settings = load_settings()
        files = {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")}
        with timed() as t_ing:
            reports = ingest_files(settings, files)
        read = sum(r.rows_read for r in reports)
        rows.append(row(2, "data", f"ingest {read:,} rows (4 tables)", t_ing[0], "s"))
        rows.append(row(2, "data", "ingest throughput", read / t_ing[0], "rows/s"))

        with timed() as t_build:
            built = build_offline_sources(settings)
        rows.append(row(2, "features", f"build behavior snapshots ({built['customer_behavior'][1]:,} rows)",
                        t_build[0], "s"))

        apply_repo(settings)
        entities = entity_snapshots(settings)
        latest = sorted(entities["event_timestamp"].unique())[-4:]
        sample = entities[entities["event_timestamp"].isin(latest)]
        with timed() as t_pit:
            training = build_training_set(settings, sample, "churn_model_v1")
        rows.append(row(2, "features", f"training set {len(training):,} rows ({customers:,} customers x 4 snapshots)",
                        t_pit[0], "s", "< 60", t_pit[0] < 60))

    seconds = _materialize_rows(materialize_rows)
    rate = materialize_rows / seconds
    rows.append(row(2, "features", f"materialize {materialize_rows:,} rows into SQLite", seconds, "s"))
    rows.append(row(2, "features", "materialize throughput (SQLite)", rate, "rows/s", ">= 30,000", rate >= 30_000))
    return rows
