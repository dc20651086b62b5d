"""Erasure after the whole local loop: nothing of the customer is left anywhere, and it stays so.

One home runs generate -> ingest -> build -> embed -> apply -> materialize -> train -> serve
(predictions logged by serving's writer) -> monitor. Then ``persona forget`` erases one customer
who was served, sampled into the reference data and wrote reviews. Besides the report's own
scan, the test searches every parquet file, JSON/HTML document and SQLite table under the home
itself (SQLite keys built with Feast's own serializer), checks the champion still loads (its
artifact hash covers the model only), and re-ingests the original files: the customer's rows are
quarantined as ``erased`` with their values blanked.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import app
from core import catalog
from core.settings import load_settings
from features.embedding.cache import normalize_text

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = ("customers", "transactions", "sessions", "reviews")


def _run_loop(settings: Settings, generated: Path) -> dict[str, Path]:
    from features.build import build_offline_sources
    from features.text_build import embed_reviews
    from ingest.run import ingest_files
    from model.bundle import load_predictor
    from model.registry import configure_mlflow
    from monitoring.job import MonitorConfig, MonitorJob
    from serving.prediction_log import PredictionLog
    from serving.predictor import ServingPredictor
    from store.online_reader import OnlineFeatureReader
    from store.repo import apply_repo, get_store, materialize
    from synthetic.generator import GenerateConfig, generate_dataset
    from tests.conftest import BagOfWordsEncoder
    from training.config import PersonaParams, TrainConfig, XGBParams
    from training.train import TrainJob

    config = GenerateConfig(customers=300, days=120, seed=3, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    paths = generate_dataset(config, generated)
    ingest_files(settings, {t: paths[t] for t in TABLES})
    build_offline_sources(settings)
    embed_reviews(settings, encoder=BagOfWordsEncoder())
    apply_repo(settings)
    materialize(settings)
    train = TrainConfig(xgb=XGBParams(n_estimators=20), personas=PersonaParams(k_min=2, k_max=3),
                        horizon_days=28, purge=False)
    result = TrainJob(settings, train).run()
    if not result.decision.promote:  # 300 customers: the first model may not beat its own baselines
        from model.registry import promote

        promote(settings, result.version, reason="test home: serve v1")
    configure_mlflow(settings)
    model = load_predictor("models:/persona@champion")
    reader = OnlineFeatureReader.from_store(get_store(settings), model.feature_columns,
                                            model.metadata.get("feature_service"))
    predictor = ServingPredictor(model=model, reader=reader, version="1")
    log = PredictionLog(catalog.prediction_log(settings), flush_seconds=3600)
    ids = pd.read_parquet(catalog.raw_table(settings, "customers"), columns=["customer_id"])["customer_id"]
    for start in range(0, len(ids), 100):
        log.append(predictor.predict_customers(ids.iloc[start : start + 100].tolist()).log)
    log.close()
    MonitorJob(settings, MonitorConfig(retrain=False)).run()
    return paths


def _pick_customer(settings: Settings) -> tuple[int, set[str]]:
    """A reviewer in the reference sample, preferring one with texts nobody else wrote."""
    reference = next(catalog.mlflow_artifacts(settings).rglob("reference.parquet"))
    sampled = set(pd.read_parquet(reference, columns=["customer_id"])["customer_id"].astype(int))
    reviews = pd.read_parquet(catalog.raw_table(settings, "reviews"), columns=["customer_id", "text"])
    reviews["norm"] = reviews["text"].map(normalize_text)
    writers = reviews.groupby("norm")["customer_id"].nunique()
    reviews["unique"] = reviews["norm"].map(writers) == 1
    ranked = reviews[reviews["customer_id"].isin(sampled)].groupby("customer_id")["unique"].sum()
    customer = int(ranked.sort_values(ascending=False, kind="stable").index[0])
    own = set(reviews.loc[(reviews["customer_id"] == customer) & reviews["unique"], "norm"])
    return customer, own


def _parquet_hits(home: Path, customer: int, texts: set[str]) -> list[str]:
    found = []
    for path in home.rglob("*.parquet"):
        frame = pq.read_table(path).to_pandas()
        if "customer_id" in frame.columns:
            ids = pd.to_numeric(frame["customer_id"].astype("string").str.strip(), errors="coerce")
            if (ids == customer).any():
                found.append(f"{path}: id")
        for column in frame.columns:
            if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column].dtype):
                values = {normalize_text(v) for v in frame[column].dropna() if isinstance(v, str)}
                if values & texts:
                    found.append(f"{path}:{column}: text")
    return found


def _document_hits(home: Path, customer: int, texts: set[str]) -> list[str]:
    found = []
    for path in [*home.rglob("*.json"), *home.rglob("*.html")]:
        content = normalize_text(path.read_text(errors="replace"))
        if f'"customer_id": {customer},' in content or f'"customer_id": {customer}}}' in content:
            found.append(f"{path}: id")
        found += [f"{path}: text" for t in texts if len(t) >= 12 and t in content]
    return found


def _sqlite_hits(settings: Settings, customer: int) -> list[str]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = serialize_entity_key(EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=customer)]),
                               entity_key_serialization_version=3)
    conn = sqlite3.connect(catalog.online_store_db(settings))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [t for t in tables if conn.execute(f'SELECT count(*) FROM "{t}" WHERE entity_key = ?',
                                                   (key,)).fetchone()[0]]
    finally:
        conn.close()


def test_forget_after_the_whole_loop_leaves_nothing(persona_home: Path, tmp_path: Path) -> None:
    from ingest.run import ingest_files
    from model.bundle import load_predictor

    # given a home that ran the whole loop, and a served, sampled reviewer
    settings = load_settings()
    paths = _run_loop(settings, tmp_path / "gen")
    customer, texts = _pick_customer(settings)
    assert _parquet_hits(persona_home, customer, texts), "the customer should be somewhere before"
    assert _sqlite_hits(settings, customer)
    customers_before = len(pd.read_parquet(catalog.raw_table(settings, "customers")))

    # when the customer is forgotten through the command line
    result = CliRunner().invoke(app, ["forget", "--customer-id", str(customer)])

    # then the command succeeds and its report proves every store clean
    assert result.exit_code == 0, result.output
    assert "scan: clean" in result.output
    (report_path,) = catalog.erasure_reports(settings).glob("erasure-*.json")
    report = json.loads(report_path.read_text())
    assert report["clean"]
    by_store = {s["store"]: s for s in report["stores"]}
    assert set(by_store) >= {"raw", "quarantine", "offline", "online", "embedding_cache", "sentiment_cache",
                             "similarity_cache", "prediction_log", "mlflow_reference", "evidently",
                             "reports", "audiences"}
    assert all(s["hits_after"] == 0 for s in report["stores"])
    for name in ("raw", "offline", "online", "prediction_log", "mlflow_reference"):
        assert by_store[name]["removed"] > 0, name
    assert by_store["embedding_cache"]["removed"] == report["erased_texts"] == len(texts)
    assert f"{customer}," not in report_path.read_text()
    # and an independent search of every file and SQLite table finds nothing either
    assert _parquet_hits(persona_home, customer, texts) == []
    assert _document_hits(persona_home, customer, texts) == []
    assert _sqlite_hits(settings, customer) == []
    assert len(pd.read_parquet(catalog.raw_table(settings, "customers"))) == customers_before - 1
    # and the champion still loads: its artifact hash covers the model, not the reference sample
    assert load_predictor("models:/persona@champion").feature_columns

    # when the original files are ingested again
    reports = ingest_files(settings, {t: paths[t] for t in TABLES})

    # then the customer's rows are quarantined as erased, counted, and blanked
    assert all(r.reasons.get("erased", 0) > 0 for r in reports if r.table in ("customers", "reviews"))
    assert all(r.new_rows == 0 for r in reports)
    assert _parquet_hits(persona_home, customer, texts) == []
    quarantined = pd.read_parquet(catalog.quarantine_table(settings, "reviews"))
    erased = quarantined[quarantined["reason"] == "erased"]
    assert len(erased)
    assert erased["customer_id"].isna().all()
    assert erased["text"].isna().all()

    # and forgetting many customers from a file is clean too
    many = pd.read_parquet(catalog.raw_table(settings, "customers"), columns=["customer_id"]).head(25)
    many.to_csv(tmp_path / "ids.csv", index=False)
    result = CliRunner().invoke(app, ["forget", "--file", str(tmp_path / "ids.csv")])
    assert result.exit_code == 0, result.output
    assert "forgot 25 customer(s)" in result.output
    assert np.isin(many["customer_id"], pd.read_parquet(catalog.raw_table(settings, "customers"))["customer_id"]
                   ).sum() == 0
