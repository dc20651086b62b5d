"""Audiences: the best offer that pays, the budget never exceeded, a random control group of the asked share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from campaign.audience import best_offers, fill_budget, treated_cost

COSTS = {"discount": 1.0, "voucher": 2.5}


def _uplift(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n) + 1,
        "uplift_conversion_discount": rng.normal(0.02, 0.05, n),
        "uplift_spend_discount": rng.normal(2.0, 3.0, n),
        "uplift_conversion_voucher": rng.normal(0.05, 0.05, n),
        "uplift_spend_voucher": rng.normal(3.0, 4.0, n),
    })


def test_each_customer_gets_the_offer_with_the_highest_net_value_or_none() -> None:
    # given: customer 1 gains 5 from discount (cost 1) and 4 from voucher (cost 2.5); 2 gains little
    uplift = pd.DataFrame({"customer_id": [1, 2], "uplift_conversion_discount": [0.1, 0.0],
                           "uplift_spend_discount": [5.0, 0.5], "uplift_conversion_voucher": [0.2, 0.0],
                           "uplift_spend_voucher": [4.0, 2.4]})

    # when
    choices = best_offers(uplift, COSTS)

    # then
    assert choices["offer"].tolist() == ["discount", None]
    assert choices["expected_value"].tolist() == pytest.approx([4.0, -0.1])
    assert choices["reason"][1].startswith("no offer pays")


def test_a_value_per_conversion_replaces_incremental_spend() -> None:
    # given
    uplift = pd.DataFrame({"customer_id": [1], "uplift_conversion_discount": [0.1], "uplift_spend_discount": [5.0],
                           "uplift_conversion_voucher": [0.2], "uplift_spend_voucher": [0.0]})

    # when each conversion of the voucher is worth 100
    choices = best_offers(uplift, COSTS, {"voucher": 100.0})

    # then
    assert choices["offer"].tolist() == ["voucher"]
    assert choices["expected_value"].tolist() == pytest.approx([17.5])


def test_a_plan_with_no_profitable_offer_contacts_no_one() -> None:
    # given every predicted effect below its cost
    uplift = _uplift(500).assign(uplift_spend_discount=0.9, uplift_spend_voucher=-1.0)

    # when
    audience = fill_budget(best_offers(uplift, COSTS), COSTS, budget=10_000, control_share=0.1, seed=1)

    # then
    assert audience.empty


@pytest.mark.parametrize("budget", [0.0, 1.0, 7.3, 250.0, 1e9])
def test_the_budget_is_never_exceeded(budget: float) -> None:
    # given
    choices = best_offers(_uplift(2000), COSTS)

    # when
    audience = fill_budget(choices, COSTS, budget, control_share=0.2, seed=3)

    # then it is spent in priority order and never exceeded
    assert treated_cost(audience, COSTS) <= budget
    assert audience["expected_value"].is_monotonic_decreasing
    if budget < 1e9:  # the next customer in line would not have fitted
        nxt = choices[choices["offer"].notna()].iloc[len(audience):]
        assert len(nxt) == 0 or treated_cost(audience, COSTS) + COSTS[nxt["offer"].iloc[0]] > budget


def test_the_control_group_is_random_and_of_the_requested_share() -> None:
    # given a large audience
    choices = best_offers(_uplift(20_000, seed=5), COSTS)

    # when
    audience = fill_budget(choices, COSTS, budget=1e9, control_share=0.1, seed=7)

    # then exactly floor(share * n) per offer ...
    for offer, rows in audience.groupby("offer"):
        assert (rows["group"] == "control").sum() == int(np.floor(0.1 * len(rows))), offer
    # ... drawn at random: control and treated rank alike (Mann-Whitney, fixed seed)
    rank = np.arange(len(audience))
    control = (audience["group"] == "control").to_numpy()
    assert stats.mannwhitneyu(rank[control], rank[~control]).pvalue > 0.01
    # and the same seed draws the same group, another seed another one
    again = fill_budget(choices, COSTS, budget=1e9, control_share=0.1, seed=7)
    other = fill_budget(choices, COSTS, budget=1e9, control_share=0.1, seed=8)
    assert again["group"].equals(audience["group"])
    assert not other["group"].equals(audience["group"])


def test_control_customers_are_not_charged_and_say_why_they_were_held_out() -> None:
    # given
    choices = best_offers(_uplift(100), COSTS)

    # when
    audience = fill_budget(choices, COSTS, budget=1e9, control_share=0.5, seed=1)

    # then
    control = audience[audience["group"] == "control"]
    assert len(control) > 0
    assert set(control["reason"]) == {"held out at random (control group)"}
    assert treated_cost(audience, COSTS) == pytest.approx(
        sum(COSTS[o] for o in audience.loc[audience["group"] == "treatment", "offer"]))


def test_a_control_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="control share"):
        fill_budget(best_offers(_uplift(10), COSTS), COSTS, 10.0, control_share=1.0, seed=1)
