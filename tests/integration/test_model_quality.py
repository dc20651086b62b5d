"""Model quality that means something: on generated data the churn model beats its baselines.

``auc > 0.5`` passes for a model that learned almost nothing. Here the generator's ground truth
(its true churn probabilities) is attached to the holdout, so the test can say how far the
model is from the best possible ranking (the oracle) and that it beats the logistic-regression
and RFM baselines trained on the same rows by a margin, not by noise.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMERS = 3_000
# The benchmark measures an oracle gap of 0.029 at 100k customers (target <= 0.03). A 3k-customer
# run has ~40x fewer training rows and a holdout of ~2.6k rows (AUC standard error ~0.008), so
# the allowance here is that target plus two standard errors.
MAX_ORACLE_GAP = 0.05
MIN_LEAD_OVER_LOGISTIC = 0.01
MIN_LEAD_OVER_RFM = 0.03


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Train once on generated data with its ground truth (the benchmark's path, at 3k customers)."""
    from core import catalog
    from core.settings import load_settings
    from features.build import build_offline_sources
    from ingest.run import ingest_files
    from store.repo import apply_repo
    from synthetic.generator import GenerateConfig, generate_dataset
    from training.config import TrainConfig
    from training.train import TrainJob

    base: Path = tmp_path_factory.mktemp("quality")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_HOME", str(base / "home"))
        patch.delenv("PERSONA_PROFILE", raising=False)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        config = GenerateConfig(customers=CUSTOMERS, days=365, seed=11, start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        paths = generate_dataset(config, base / "generated")
        settings = load_settings()
        ingest_files(settings, {name: paths[name] for name in ("customers", "transactions", "sessions", "reviews")})
        truth = catalog.ground_truth(settings)
        truth.write_bytes(paths["ground_truth"].read_bytes())
        build_offline_sources(settings)
        apply_repo(settings)
        return TrainJob(settings, TrainConfig(ground_truth_path=truth)).run().metrics


def test_the_churn_model_beats_its_logistic_and_rfm_baselines(metrics: dict[str, float]) -> None:
    # given one training run on generated data; the baselines saw the same rows and holdout
    model, logistic, rfm = (metrics["churn_roc_auc"], metrics["baseline_logreg_roc_auc"],
                            metrics["baseline_rfm_roc_auc"])

    # then the model leads each baseline by more than the holdout's noise
    assert model - logistic >= MIN_LEAD_OVER_LOGISTIC, (model, logistic)
    assert model - rfm >= MIN_LEAD_OVER_RFM, (model, rfm)


def test_the_churn_model_stays_within_the_oracle_gap(metrics: dict[str, float]) -> None:
    # given the generator's true churn probabilities on every holdout row
    assert metrics["ground_truth_rows"] == metrics["holdout_rows"]

    # then the model ranks customers almost as well as the truth, and its probabilities follow it
    assert 0 <= metrics["oracle_gap_roc_auc"] <= MAX_ORACLE_GAP, metrics["oracle_gap_roc_auc"]
    assert metrics["churn_prob_corr_truth"] >= 0.8, metrics["churn_prob_corr_truth"]
