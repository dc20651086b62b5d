"""Evaluating a campaign recovers a planted effect within its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from campaign.effect import campaign_effect
from tests.unit.campaign.conftest import planted_campaign


def test_a_planted_effect_is_recovered_within_its_interval() -> None:
    # given a campaign whose true average effect is known (half the customers +0.4, half -0.2)
    outcomes = planted_campaign(n=4000, seed=9)
    true_uplift = outcomes.loc[outcomes["group"] == "treatment", "true_uplift_conversion"].mean()

    # when
    effect = campaign_effect(outcomes, cost_per_contact=2.0)

    # then
    assert effect.conversion_uplift.covers(true_uplift)
    assert effect.spend_uplift.covers(50.0 * true_uplift)
    assert effect.conversion_uplift.high - effect.conversion_uplift.low < 0.06
    assert effect.incremental_conversions.estimate == pytest.approx(effect.conversion_uplift.estimate * effect.treated)
    assert effect.cost == pytest.approx(2.0 * effect.treated)
    assert effect.roi.estimate == pytest.approx(effect.incremental_revenue.estimate / effect.cost - 1.0)


def test_intervals_cover_the_truth_about_as_often_as_their_level_says() -> None:
    # given 200 campaigns with a known effect of +0.05
    hits = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        treated = rng.random(600) < 0.5
        converted = rng.random(600) < 0.2 + 0.05 * treated
        frame = pd.DataFrame({"group": np.where(treated, "treatment", "control"), "converted": converted,
                              "spend": 10.0 * converted})

        # when
        hits += campaign_effect(frame, level=0.9).conversion_uplift.covers(0.05)

    # then about 90% (binomial sd ~ 4 campaigns)
    assert 165 <= hits <= 195


def test_no_effect_gives_an_interval_around_zero_and_a_negative_roi() -> None:
    # given
    rng = np.random.default_rng(1)
    treated = rng.random(5000) < 0.5
    converted = rng.random(5000) < 0.3
    frame = pd.DataFrame({"group": np.where(treated, "treatment", "control"), "converted": converted,
                          "spend": 20.0 * converted})

    # when
    effect = campaign_effect(frame, cost_per_contact=1.0)

    # then
    assert effect.conversion_uplift.covers(0.0)
    assert effect.roi.covers(-1.0)
