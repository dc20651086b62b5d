"""Issue 4 figures: training time and quality vs the generator's ground truth, batch scoring time.

One home of 100k customers (``quick``: 5k) with review embeddings: ``persona train``'s default
feature service (profile + behavior + text) for the time target, the quality against the
generator's oracle, and the text lift over a behavior-only XGBoost on the same holdout (a large
holdout keeps the lift above the noise of a few thousand rows); then batch scoring.

Run: ``python -m bench.training_bench [--quick]``.
"""

from __future__ import annotations

import datetime as dt
import sys

from bench.common import row, scratch_home, timed

ISSUE = 4
AREA = "training"


def _prepare(base, customers: int, embed: bool):
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset

    config = GenerateConfig(
        customers=customers, days=365, seed=11, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    paths = generate_dataset(config, base / "generated")
    settings = load_settings()
    ingest_files(
        settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")}
    )
    (settings.raw_dir.parent / "ground_truth.parquet").write_bytes(paths["ground_truth"].read_bytes())
    build_offline_sources(settings)
    if embed:
        from features.text_build import embed_reviews

        embed_reviews(settings)
    apply_repo(settings)
    return settings


def _quality_rows(metrics: dict, label: str) -> list[dict]:
    m = metrics
    rows = [
        row(ISSUE, AREA, f"churn ROC AUC, XGBoost ({label})", m["churn_roc_auc"], ""),
        row(ISSUE, AREA, f"churn ROC AUC, logistic baseline ({label})", m["baseline_logreg_roc_auc"], ""),
        row(ISSUE, AREA, f"churn ROC AUC, RFM heuristic ({label})", m["baseline_rfm_roc_auc"], ""),
    ]
    if "oracle_churn_roc_auc" in m:
        rows += [
            row(
                ISSUE,
                AREA,
                f"churn ROC AUC, oracle = true probabilities ({label})",
                m["oracle_churn_roc_auc"],
                "",
            ),
            row(
                ISSUE,
                AREA,
                f"oracle AUC - model AUC ({label})",
                m["oracle_gap_roc_auc"],
                "",
                "<= 0.03",
                m["oracle_gap_roc_auc"] <= 0.03,
            ),
            row(
                ISSUE, AREA, f"corr(expected_spend, true expected spend) ({label})", m["spend_corr_truth"], ""
            ),
        ]
    rows += [
        row(ISSUE, AREA, f"churn calibration error, ECE ({label})", m["churn_ece"], ""),
        row(ISSUE, AREA, f"churn Brier score ({label})", m["churn_brier"], ""),
    ]
    return rows


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for issue 4 (``quick`` shrinks sizes for a smoke run)."""
    from core import catalog
    from scoring.score import score
    from training.config import TrainConfig
    from training.train import TrainJob

    customers = 5_000 if quick else 100_000
    rows: list[dict] = []
    with scratch_home("training") as base:
        with timed() as t_prep:
            settings = _prepare(base, customers, embed=True)
        # the oracle rows below need the generator's ground truth, written by _prepare
        config = TrainConfig(feature_service="churn_model_v2", ground_truth_path=catalog.ground_truth(settings))
        with timed() as t_train:
            result = TrainJob(settings, config).run()
        snapshots = config.train_snapshots + config.holdout_snapshots
        m = result.metrics
        label = f"{customers // 1000}k, behavior + text"
        rows.append(
            row(ISSUE, AREA, f"prepare {customers:,} customers (generate, ingest, build, embed reviews)",
                t_prep[0], "s")
        )
        rows.append(
            row(
                ISSUE,
                AREA,
                f"train {customers:,} customers x {snapshots} snapshots "
                f"({int(m['train_rows']):,} + {int(m['holdout_rows']):,} rows, behavior + text)",
                t_train[0],
                "s",
                "< 180",
                t_train[0] < 180,
            )
        )
        rows += _quality_rows(m, label)
        rows.append(
            row(ISSUE, AREA, f"churn ROC AUC, behavior-only XGBoost ({label})", m["behavior_only_churn_roc_auc"], "")
        )
        rows.append(
            row(
                ISSUE,
                AREA,
                f"text lift: ROC AUC with text - behavior-only ({label})",
                m["text_lift_roc_auc"],
                "",
                ">= 0.005 (beyond holdout noise)",
                m["text_lift_roc_auc"] >= 0.005,
            )
        )
        with timed() as t_score:
            report = score(settings, base / "scores.parquet")
        rows.append(
            row(
                ISSUE,
                AREA,
                f"score {report.rows:,} customers incl. feature retrieval",
                t_score[0],
                "s",
                "< 20",
                t_score[0] < 20,
            )
        )
    return rows


if __name__ == "__main__":  # pragma: no cover
    for r in run(quick="--quick" in sys.argv):
        print(r)
