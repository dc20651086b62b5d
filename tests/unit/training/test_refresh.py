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
    assemble,
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
    assert decision.personas
    assert not decision.calibration
    assert "churn and value boosters unchanged from v4" in decision.reason


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


def miscalibrated(champion, rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``rows`` with churn labels drawn at a rate the champion underestimates (its probability x 1.8)."""
    p = champion.predict(rows)["churn_probability"].to_numpy()
    y = (np.random.default_rng(seed).random(len(p)) < np.clip(p * 1.8, 0, 1)).astype(int)
    return rows.assign(churned=y)


def test_a_champion_that_underestimates_churn_on_matured_rows_is_recalibrated(fitted: tuple) -> None:
    champion, holdout = fitted
    matured = miscalibrated(champion, pd.concat([holdout] * 4, ignore_index=True)
                            .assign(customer_id=lambda f: np.arange(len(f))))

    # when the refresh also sees rows whose labels matured after the champion's training window
    result = fit_refresh(champion, holdout, PARAMS, seed=3, base_version="4", matured=matured)

    # then the map lowers the held-out Brier score, and the decision takes it
    assert result.calibration is not None
    m = result.metrics
    assert m["calibration_brier_after"] < m["calibration_brier_before"] - 0.001
    assert np.all(np.diff(result.calibration["y"]) > 0)  # strictly increasing: the ranking is kept
    assert m["calibration_roc_auc_after"] == pytest.approx(m["calibration_roc_auc_before"], abs=1e-12)
    decision = decide_refresh(m, result.outputs_equal, "4", min_gain=1.0)  # personas not taken
    assert decision.promote, decision.reason
    assert decision.calibration
    assert not decision.personas
    assert "recalibrated" in decision.reason

    # when assembled: the champion's personas and tiers, the new map, the same boosters
    bundle = assemble(champion, result, decision)
    np.testing.assert_array_equal(bundle.centers, champion.centers)
    assert bundle.spend_cuts == champion.spend_cuts
    served = bundle.predict(holdout)["churn_probability"].to_numpy()
    raw = champion.predict(holdout)["churn_probability"].to_numpy()
    np.testing.assert_allclose(served, np.interp(raw, result.calibration["x"], result.calibration["y"]))
    assert served.mean() > raw.mean()
    for column in ("expected_orders", "expected_spend"):
        np.testing.assert_array_equal(bundle.predict(holdout)[column], champion.predict(holdout)[column])


def test_the_fast_runner_and_a_saved_bundle_serve_the_calibrated_churn(fitted: tuple, tmp_path) -> None:
    from model.bundle import PersonaPredictor
    from model.calibration import CALIBRATION_KEY
    from model.runner import FastPersonaRunner, probe_batch

    champion, _ = fitted
    calibrated = dataclasses.replace(champion, metadata={**champion.metadata,
                                                         CALIBRATION_KEY: {"x": [0.0, 1.0], "y": [0.5, 1.0]}})
    batch = probe_batch(calibrated, rows=40, seed=2)
    frame = pd.DataFrame({c: batch.column(c) for c in calibrated.feature_columns})

    fast = FastPersonaRunner(calibrated).predict(batch)["churn_probability"]
    slow = calibrated.predict(frame)["churn_probability"].to_numpy()
    loaded = PersonaPredictor.load(calibrated.save(tmp_path / "bundle")).predict(frame)["churn_probability"]

    raw = champion.predict(frame)["churn_probability"].to_numpy()
    np.testing.assert_allclose(slow, 0.5 + 0.5 * raw)
    np.testing.assert_allclose(fast, slow, rtol=1e-5)
    np.testing.assert_allclose(loaded.to_numpy(), slow)


def test_too_few_matured_rows_keep_the_calibration(fitted: tuple) -> None:
    champion, holdout = fitted

    result = fit_refresh(champion, holdout, PARAMS, seed=3, base_version="4",
                         matured=miscalibrated(champion, holdout.head(199)))

    assert result.calibration is None
    assert result.calibration_note.startswith("199 rows with matured labels")
    assert "calibration_brier_after" not in result.metrics


@pytest.mark.parametrize(("after", "auc_after", "taken"), [
    (0.125, 0.75, True),     # gain exactly the minimum, AUC unchanged
    (0.1875, 0.75, False),   # gain below the minimum
    (0.125, 0.625, True),    # AUC loss exactly the maximum
    (0.125, 0.5, False),     # AUC loss above it
])
def test_the_calibration_is_taken_at_exactly_its_minimum_gain_and_maximum_auc_loss(
        after: float, auc_after: float, taken: bool) -> None:
    from training.refresh_calibration import calibration_verdict

    metrics = {"calibration_brier_before": 0.25, "calibration_brier_after": after,
               "calibration_roc_auc_before": 0.75, "calibration_roc_auc_after": auc_after,
               "calibration_eval_rows": 400.0}

    accepted, reason = calibration_verdict(metrics, min_brier_gain=0.125, max_auc_loss=0.125)

    assert accepted is taken
    assert reason.endswith("recalibrated" if taken else "calibration kept")
