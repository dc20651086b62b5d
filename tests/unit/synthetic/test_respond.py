"""A campaign planned on generated data gets the response the generated customers would give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthetic.config import GenerateConfig
from synthetic.generator import generate_dataset
from synthetic.respond import World


def test_the_world_is_drawn_again_exactly_and_treated_windows_follow_the_effect_model(tmp_path) -> None:
    # given a generated dataset with two randomized waves before a shifted period
    config = GenerateConfig(customers=400, days=200, shift_days=40, seed=3, start=pd.Timestamp("2025-01-01"),
                            campaign_waves=2)
    paths = generate_dataset(config, tmp_path / "gen")
    truth = pd.read_parquet(paths["campaign_truth"])
    campaigns = pd.read_parquet(paths["campaigns"])
    world = World.of(config, pd.read_parquet(paths["transactions"]))

    # when the true effects are computed again at the last wave's start
    last = campaigns[campaigns["start"] == campaigns["start"].max()]
    again = world.truth_at(last["start"].iloc[0])

    # then they are the generator's own (same traits, same put-off customers), and the waves end before the shift
    wave = truth[truth["campaign_id"].isin(last["campaign_id"])]
    merged = wave.merge(again, on=["customer_id", "offer"], suffixes=("", "_again"))
    assert len(merged) == len(wave) > 0
    np.testing.assert_allclose(merged["true_uplift_conversion_again"], merged["true_uplift_conversion"])
    assert (pd.to_datetime(campaigns["start"], utc=True) + pd.Timedelta(days=30)
            < pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=200)).all()

    # when the customers a contact moves most are treated at the start of the shift
    at = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=201)
    effects = world.truth_at(at)
    best = effects[effects["offer"] == "discount"].nlargest(60, "true_uplift_conversion")
    tx = pd.read_parquet(paths["transactions"])
    treated = best[["customer_id", "offer"]].assign(event_timestamp=at)
    after = world.respond(tx, treated, seed=1)

    # then they buy more inside the window than without the contact, and nobody else changes
    def orders(frame: pd.DataFrame, ids) -> int:
        ts = pd.to_datetime(frame["event_timestamp"], utc=True)
        inside = (ts > at) & (ts <= at + pd.Timedelta(days=30)) & frame["customer_id"].isin(ids)
        return int(inside.sum())

    ids = set(best["customer_id"])
    assert orders(after, ids) - orders(tx, ids) > 0.5 * best["true_uplift_conversion"].sum()
    others = ~tx["customer_id"].isin(ids)
    assert len(after[~after["customer_id"].isin(ids)]) == int(others.sum())
    assert after["order_id"].is_unique
