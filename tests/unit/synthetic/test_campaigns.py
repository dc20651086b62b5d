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


def test_a_contact_reaches_recent_buyers_and_the_put_off_are_regulars(generated: dict[str, pd.DataFrame]) -> None:
    # given each exposed customer's days since their last order before the contact, and orders before it
    exposures, tx = generated["exposures"], generated["transactions"]
    joined = exposures[["customer_id", "campaign_id", "event_timestamp"]].merge(
        tx[["customer_id", "event_timestamp"]].rename(columns={"event_timestamp": "order_at"}), on="customer_id")
    joined = joined[joined["order_at"] < joined["event_timestamp"].dt.normalize()]
    history = joined.groupby(["customer_id", "campaign_id"]).agg(last=("order_at", "max"), orders=("order_at", "size"))
    rows = exposures.merge(history.reset_index(), on=["customer_id", "campaign_id"], how="left")
    rows["recency"] = (rows["event_timestamp"].dt.normalize() - rows["last"]).dt.days
    wave = rows["campaign_id"].str.split("-").str[0]
    truth = generated["campaign_truth"].assign(wave=lambda t: t["campaign_id"].str.split("-").str[0])
    discount = truth[truth["offer"] == "discount"][["customer_id", "wave", "true_uplift_conversion"]]
    rows = rows.assign(wave=wave).merge(discount, on=["customer_id", "wave"])

    # then a discount moves recent buyers more than the lapsed (reach follows the days since the last order)
    recent = rows.loc[rows["recency"] <= 30, "true_uplift_conversion"].mean()
    lapsed = rows.loc[rows["recency"] > 240, "true_uplift_conversion"].mean()
    assert recent > 1.5 * max(lapsed, 1e-3), (recent, lapsed)
    # and the customers a contact puts off buy more often than the rest (regulars: visible in their frequency)
    put_off = rows["true_uplift_conversion"] < -0.01
    assert rows.loc[put_off, "orders"].median() > 2 * rows.loc[~put_off, "orders"].fillna(0).median()


def test_the_contact_history_counts_only_orders_before_the_contact_day() -> None:
    # given one customer with orders 10 days before, on, and after the contact day (day 100)
    from synthetic.campaigns import contact_history
    from synthetic.config import ModelParams
    from synthetic.traits import draw_traits

    config = GenerateConfig(customers=1, days=200, seed=1, start=pd.Timestamp("2025-01-01", tz="UTC"))
    traits = draw_traits(config, ModelParams(), np.random.default_rng(0))
    day0 = pd.Timestamp("2025-01-01", tz="UTC")
    orders = pd.DataFrame({"customer_id": [1, 1, 1],
                           "event_timestamp": [day0 + pd.Timedelta(days=d, hours=9) for d in (90, 100, 130)]})

    # when
    history = contact_history(traits, orders, config, ModelParams(), 100)

    # then the order of the contact day and later ones never count
    assert history.recency_days[0] == pytest.approx(10 - 9 / 24)
