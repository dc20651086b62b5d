"""The label-free refresh: personas and value tiers refitted on today's customers, churn and value untouched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from model.actions import load_policy
from tests.conftest import make_training_frame
from training.config import DEFAULT_POLICY_PATH, PersonaParams, TrainConfig, XGBParams
from training.data import feature_columns_of
from training.fit import fit_persona_bundle
from training.refresh import (
    REFRESH_KEY,
    REFRESHED_AT,
    REFRESHED_FROM,
    SUPERVISED_OUTPUTS,
    decide_refresh,
    fit_refresh,
    reference_of,
)

PARAMS = PersonaParams(k_min=3, k_max=3)


@pytest.fixture(scope="module")
def fitted() -> tuple:
    """A champion fitted on generated customers, and the holdout snapshot it was evaluated on."""
    frame = make_training_frame(customers=300, snapshots=2, seed=4)
    times = sorted(frame["event_timestamp"].unique())
    train = frame[frame["event_timestamp"] < times[-1]].reset_index(drop=True)
    holdout = frame[frame["event_timestamp"] == times[-1]].reset_index(drop=True)
    config = TrainConfig(xgb=XGBParams(n_estimators=5), personas=PARAMS, compare_behavior_only=False)
    champion = fit_persona_bundle(train, holdout, feature_columns_of(frame), config,
                                  load_policy(DEFAULT_POLICY_PATH)).predictor
    return champion, holdout


def shifted(rows: pd.DataFrame) -> pd.DataFrame:
    """Today's customers after a shift: half of them stopped buying and spend far more when they do."""
    out = rows.copy()
    half = np.arange(len(out)) % 2 == 0
    for column in [c for c in out.columns if c.startswith(("orders_", "sessions_"))]:
        out.loc[half, column] = 0
    for column in [c for c in out.columns if c.startswith("spend_")]:
        out.loc[~half, column] = out.loc[~half, column] * 8
    if "recency_days" in out:
        out.loc[half, "recency_days"] = out.loc[half, "recency_days"] + 200
    return out


def test_a_refresh_keeps_every_churn_and_value_output_and_records_what_it_refreshed(fitted: tuple) -> None:
    champion, holdout = fitted
    at = pd.Timestamp("2025-06-01", tz="UTC")

    # when personas and value tiers are refreshed on today's (shifted) customers, read with the
    # champion's predictions beside their features (as the monitor's snapshot reader gives them)
    today = shifted(holdout)
    today = pd.concat([today, champion.predict(today)], axis=1)
    result = fit_refresh(champion, today, PARAMS, seed=3, base_version="4", snapshot_at=at)

    # then churn and value outputs are the champion's on every row, and the candidate says what it is
    assert result.outputs_equal
    rows = shifted(holdout)
    before, after = champion.predict(rows), result.predictor.predict(rows)
    for column in SUPERVISED_OUTPUTS:
        np.testing.assert_array_equal(before[column].to_numpy(), after[column].to_numpy())
    assert result.predictor.models is champion.models
    meta = result.predictor.metadata
    assert (meta[REFRESH_KEY], meta[REFRESHED_FROM], meta[REFRESHED_AT]) == ("label_free", "4", at.isoformat())
    # and the value tiers are cut at today's spend predictions, not the champion's holdout
    assert result.predictor.spend_cuts != champion.spend_cuts
    assert result.metrics["spend_cut_high"] == result.predictor.spend_cuts[1]
    # and personas were matched to the champion's: every id is the champion's or a fresh one
    assert result.match is not None
    fresh = set(result.predictor.persona_ids) - set(champion.segment_ids.tolist())
    assert all(i >= len(champion.centers) for i in fresh)
    assert {c["segment"] for c in result.cards} == set(result.predictor.segment_ids.tolist())


def test_after_a_shift_the_refreshed_personas_separate_today_s_customers_better(fitted: tuple) -> None:
    champion, holdout = fitted

    # when the customers have shifted
    result = fit_refresh(champion, shifted(holdout), PARAMS, seed=3, base_version="4")

    # then today's customers separate better into the new personas than into the champion's
    assert result.metrics["persona_silhouette"] > result.metrics["champion_persona_silhouette"] + 0.01
    decision = decide_refresh(result.metrics, result.outputs_equal, "4")
    assert decision.promote, decision.reason
    assert "churn and value unchanged from v4" in decision.reason


def test_a_refresh_on_the_customers_the_champion_was_fitted_on_gains_little(fitted: tuple) -> None:
    champion, holdout = fitted

    result = fit_refresh(champion, holdout, PARAMS, seed=3, base_version="4")

    gain = result.metrics["persona_silhouette"] - result.metrics["champion_persona_silhouette"]
    assert abs(gain) < 0.05, result.metrics


def test_a_changed_supervised_output_is_refused(fitted: tuple) -> None:
    champion, holdout = fitted
    # a refresh that (wrongly) swapped the churn booster for the spend one
    broken = dataclasses.replace(champion, models={**champion.models, "churn": champion.models["orders"]})

    result = fit_refresh(broken, holdout, PARAMS, seed=3, base_version="4")
    assert result.outputs_equal  # the refresh itself keeps whatever the champion has
    decision = decide_refresh(result.metrics, False, "4")
    assert not decision.promote
    assert "changed churn or value outputs" in decision.reason


@pytest.mark.parametrize(("new", "old", "promote"), [(0.5, 0.25, True), (0.5, 0.3125, False), (0.25, 0.5, False)])
def test_the_refresh_gate_promotes_at_exactly_the_minimum_gain(new: float, old: float, promote: bool) -> None:
    metrics = {"persona_silhouette": new, "champion_persona_silhouette": old}

    decision = decide_refresh(metrics, True, "7", min_gain=0.25)

    assert decision.promote is promote
    assert decision.alias == ("champion" if promote else "challenger")
    assert f"gain {new - old:+.3f}, needs +0.250" in decision.reason


def test_a_skew_hold_keeps_a_better_refresh_a_challenger() -> None:
    metrics = {"persona_silhouette": 0.6, "champion_persona_silhouette": 0.2}

    decision = decide_refresh(metrics, True, "7", skew="orders_90d differs offline")

    assert not decision.promote
    assert "held back: orders_90d differs offline" in decision.reason


def test_a_non_finite_silhouette_never_promotes() -> None:
    decision = decide_refresh({"persona_silhouette": float("nan"), "champion_persona_silhouette": 0.1}, True, "7")

    assert not decision.promote


def test_the_reference_is_the_champion_rows_described_by_the_new_personas(fitted: tuple) -> None:
    champion, holdout = fitted
    result = fit_refresh(champion, shifted(holdout), PARAMS, seed=3, base_version="4")
    reference = pd.concat([holdout, champion.predict(holdout)], axis=1)

    out = reference_of(result.predictor, reference)

    assert len(out) == len(reference)
    np.testing.assert_array_equal(out["segment"].to_numpy(), result.predictor.predict(holdout)["segment"].to_numpy())
    np.testing.assert_array_equal(out["churn_probability"].to_numpy(), reference["churn_probability"].to_numpy())


def test_a_custom_target_bundle_cannot_be_refreshed(fitted: tuple) -> None:
    champion, holdout = fitted
    target = dataclasses.replace(champion, kind="target")

    with pytest.raises(ValueError, match="needs a persona bundle"):
        fit_refresh(target, holdout, PARAMS)
