"""Generated campaigns are randomized experiments whose realized effects match the written truth."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from campaign.outcomes import campaign_outcomes
from synthetic.generator import GenerateConfig, generate_dataset

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    config = GenerateConfig(customers=3000, days=365, seed=11, start=pd.Timestamp("2025-01-01"), campaign_waves=3)
    out: Path = tmp_path_factory.mktemp("campaigns")
    paths = generate_dataset(config, out)
    return {name: pd.read_parquet(paths[name]) for name in
            ("customers", "transactions", "campaigns", "exposures", "campaign_truth")}


def test_only_consenting_customers_are_exposed_once_per_wave_in_balanced_groups(
    generated: dict[str, pd.DataFrame],
) -> None:
    # given
    exposures, customers = generated["exposures"], generated["customers"]

    # then
    consenting = set(customers.loc[customers["consent"] == "yes", "customer_id"])
    assert set(exposures["customer_id"]) <= consenting
    wave = exposures["campaign_id"].str.split("-").str[0]
    assert not exposures.assign(wave=wave).duplicated(["customer_id", "wave"]).any()
    share = (exposures["group"] == "treatment").mean()
    assert abs(share - 0.5) < 3 * np.sqrt(0.25 / len(exposures))


def test_every_response_window_ends_inside_the_history(generated: dict[str, pd.DataFrame]) -> None:
    # given
    campaigns, transactions = generated["campaigns"], generated["transactions"]

    # then
    ends = campaigns["end"] + pd.to_timedelta(campaigns["response_days"], unit="D")
    assert ends.max() <= transactions["event_timestamp"].max().normalize() + pd.Timedelta(days=1)
    assert transactions["event_timestamp"].is_monotonic_increasing
    assert transactions["order_id"].is_unique


def test_realized_treatment_minus_control_matches_the_true_uplift_per_offer(
    generated: dict[str, pd.DataFrame],
) -> None:
    # given outcomes computed from the generated transactions
    out = campaign_outcomes(generated["exposures"], generated["campaigns"], generated["transactions"])
    truth = out.merge(generated["campaign_truth"], on=["customer_id", "campaign_id", "offer"])

    # then the randomized difference estimates the mean true effect (within 3 standard errors),
    # per offer and among the customers a contact puts off
    groups = [*truth.groupby("offer"), ("put off", truth[truth["true_uplift_conversion"] < -0.05])]
    for offer, rows in groups:
        treated, control = rows[rows["group"] == "treatment"], rows[rows["group"] == "control"]
        for outcome, true in (("converted", "true_uplift_conversion"), ("spend", "true_uplift_spend")):
            diff = treated[outcome].mean() - control[outcome].mean()
            se = np.sqrt(treated[outcome].var() / len(treated) + control[outcome].var() / len(control))
            assert abs(diff - rows[true].mean()) < 3 * se, (offer, outcome, diff, rows[true].mean(), se)


def test_some_customers_are_put_off_by_a_contact(generated: dict[str, pd.DataFrame]) -> None:
    # given
    truth = generated["campaign_truth"]

    # then effects differ in sign across customers for every offer
    for _, rows in truth.groupby("offer"):
        assert (rows["true_uplift_conversion"] < -0.01).mean() > 0.03
        assert (rows["true_uplift_conversion"] > 0.01).mean() > 0.2
