"""Plan a campaign on a home (consent, files, recorded exposures, MLflow), then evaluate it after its window."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from campaign.data import matured_outcomes
from campaign.evaluate import evaluate_campaign
from campaign.plan import EXPERIMENT, PlanRequest, plan_campaign
from campaign.uplift import UpliftConfig, fit_uplift
from core import catalog
from core.errors import PersonaError
from core.settings import load_settings
from ingest.run import ingest_files
from tests.unit.campaign.conftest import planted_campaign

if TYPE_CHECKING:
    from pathlib import Path

NOW = pd.Timestamp("2024-10-01T09:00:00Z")


def _home(tmp_path: Path, n: int = 400) -> tuple[object, pd.DataFrame]:
    settings = load_settings()
    ids = np.arange(1, n + 1)
    customers = pd.DataFrame({"customer_id": ids, "signup_date": "2023-01-01",
                              "consent": np.where(ids % 10 == 0, "no", "yes")})
    campaigns = pd.DataFrame({"campaign_id": ["old"], "offer": ["discount"], "start": ["2024-06-01"],
                              "end": ["2024-06-02"], "response_days": [30], "cost_per_contact": [1.0]})
    customers.to_csv(tmp_path / "customers.csv", index=False)
    campaigns.to_csv(tmp_path / "campaigns.csv", index=False)
    ingest_files(settings, {"customers": tmp_path / "customers.csv", "campaigns": tmp_path / "campaigns.csv"})
    features = pd.DataFrame({"customer_id": ids, "x": np.linspace(-1, 1, n), "noise": 0.0})
    return settings, features


def test_a_plan_respects_consent_writes_the_audience_records_exposures_and_logs(tmp_path: Path) -> None:
    # given a home where every tenth customer has no consent, and a model where x > 0 responds
    settings, features = _home(tmp_path)
    model = fit_uplift(planted_campaign(n=3000, seed=1), ["x", "noise"], UpliftConfig(n_estimators=30))
    request = PlanRequest(offers=("discount",), budget=100.0, out=tmp_path / "out" / "aud", campaign_id="p1",
                          value_per_conversion=50.0)

    # when
    result = plan_campaign(settings, request, predictor=model, features=features, now=NOW)

    # then nobody without consent, the budget held, the responders chosen
    audience = pd.read_csv(tmp_path / "out" / "aud.csv")
    assert list(audience.columns) == ["customer_id", "campaign_id", "offer", "group", "expected_uplift",
                                      "expected_value", "reason"]
    assert (audience["customer_id"] % 10 != 0).all()
    assert (audience["group"] == "treatment").sum() == 100
    assert (audience["group"] == "control").sum() == 11  # floor(0.1 * 111)
    assert features.set_index("customer_id").loc[audience["customer_id"], "x"].min() > 0
    assert pd.read_parquet(tmp_path / "out" / "aud.parquet").equals(pd.read_parquet(result.paths["parquet"]))
    # the exposures are recorded like ingested ones, and the plan is an MLflow run
    stored = pd.read_parquet(catalog.raw_table(settings, "exposures"))
    assert sorted(stored["customer_id"]) == sorted(audience["customer_id"])
    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(str(result.run_id))
    assert run.data.metrics["cost"] == 100.0
    assert MlflowClient(tracking_uri=settings.tracking_uri).get_experiment(run.info.experiment_id).name == EXPERIMENT

    # when a second plan comes while p1's window is open: nobody of p1, control included, is planned again
    again = plan_campaign(settings, PlanRequest(offers=("discount",), budget=50.0, out=tmp_path / "again",
                                                value_per_conversion=50.0, min_days_between=0),
                          predictor=model, features=features, now=NOW + pd.Timedelta(days=1))
    assert not set(again.audience["customer_id"]) & set(audience["customer_id"])
    assert again.excluded["in a running campaign"] == len(audience)

    # when the window has passed: treated responders bought, one order came after the window
    treated = audience.loc[audience["group"] == "treatment", "customer_id"].to_numpy()
    orders = pd.DataFrame({"customer_id": [*treated[:60], treated[0], 1],
                           "event_timestamp": [NOW + pd.Timedelta(days=3)] * 60
                           + [NOW + pd.Timedelta(days=31), NOW + pd.Timedelta(days=40)],
                           "amount": 20.0})
    orders.to_csv(tmp_path / "tx.csv", index=False)
    ingest_files(settings, {"transactions": tmp_path / "tx.csv"})
    evaluation = evaluate_campaign(settings, "p1")

    # then the uplift is measured, priced and drawn
    effect = evaluation.effect
    assert effect.conversion_treated.estimate == pytest.approx(0.6)
    assert effect.conversion_control.estimate == 0.0
    assert effect.cost == 100.0
    assert effect.incremental_revenue.estimate == pytest.approx(60 * 20.0)
    # and the matured outcomes are the next uplift model's labels
    labels = matured_outcomes(settings)
    assert set(labels["campaign_id"]) == {"p1", again.campaigns[0]}
    assert labels.loc[labels["campaign_id"] == "p1", "converted"].sum() == 60
    page = evaluation.report.read_text()
    assert "aria-label='Qini curve'" in page
    assert "ROI" in page


def test_a_campaign_still_in_its_window_is_not_evaluated(tmp_path: Path) -> None:
    # given a planned campaign and transactions that end inside its window
    settings, features = _home(tmp_path, n=50)
    model = fit_uplift(planted_campaign(n=2000, seed=1), ["x", "noise"], UpliftConfig(n_estimators=20))
    plan_campaign(settings, PlanRequest(offers=(), budget=5.0, out=tmp_path / "a", campaign_id="p2",
                                        value_per_conversion=50.0), predictor=model, features=features, now=NOW)
    pd.DataFrame({"customer_id": [1], "event_timestamp": [NOW + pd.Timedelta(days=5)], "amount": [1.0]}).to_csv(
        tmp_path / "tx.csv", index=False)
    ingest_files(settings, {"transactions": tmp_path / "tx.csv"})

    # when / then: no label yet (an open window is no non-conversion), and no evaluation
    assert matured_outcomes(settings).empty
    with pytest.raises(PersonaError, match="response window"):
        evaluate_campaign(settings, "p2")
    with pytest.raises(PersonaError, match="unknown campaign 'nope'"):
        evaluate_campaign(settings, "nope")
