"""Uplift monitoring: drift of the predictions, personas' uplift moving, realized against predicted uplift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.uplift import persona_uplift_shift, psi, realized_vs_predicted, uplift_drift


def test_a_shifted_uplift_distribution_is_flagged_and_a_stable_one_is_not() -> None:
    # given reference predictions, a fresh draw of the same distribution, and one where the offer stopped working
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"uplift_conversion_discount": rng.normal(0.05, 0.02, 4000)})
    stable = pd.DataFrame({"uplift_conversion_discount": rng.normal(0.05, 0.02, 4000)})
    shifted = pd.DataFrame({"uplift_conversion_discount": rng.normal(0.02, 0.02, 4000)})

    # when
    calm = uplift_drift(reference, stable, ["uplift_conversion_discount"]).iloc[0]
    moved = uplift_drift(reference, shifted, ["uplift_conversion_discount"]).iloc[0]

    # then
    assert calm["psi"] < 0.02
    assert not calm["drifted"]
    assert moved["psi"] > 0.2
    assert moved["drifted"]
    assert moved["current_mean"] < moved["reference_mean"]
    assert psi(np.zeros(0), np.ones(3)) != psi(np.zeros(0), np.ones(3))  # nothing to compare: NaN


def test_the_persona_whose_uplift_fell_comes_first() -> None:
    # given two personas; the discount stops moving the bargain hunters
    reference = pd.DataFrame({"persona": ["bargain", "bargain", "loyal", "loyal"],
                              "uplift_conversion_discount": [0.2, 0.2, 0.01, 0.03]})
    current = reference.assign(uplift_conversion_discount=[0.02, 0.04, 0.02, 0.02])

    # when
    shift = persona_uplift_shift(reference, current, ["uplift_conversion_discount"])

    # then
    first = shift.iloc[0]
    assert (first["persona"], first["column"]) == ("bargain", "uplift_conversion_discount")
    assert first["change"] == -0.17


def test_realized_uplift_follows_a_well_ranked_prediction_and_exposes_a_wrong_one() -> None:
    # given a randomized campaign whose true effect is 0.4 where x > 0 and -0.2 elsewhere
    rng = np.random.default_rng(1)
    n = 8000
    x = rng.normal(size=n)
    effect = np.where(x > 0, 0.4, -0.2)
    treated = rng.random(n) < 0.5
    outcomes = pd.DataFrame({"group": np.where(treated, "treatment", "control"),
                             "converted": (rng.random(n) < 0.3 + treated * effect).astype(int),
                             "right": effect, "inverted": -effect})

    # when binned by a correct and by an inverted prediction
    right = realized_vs_predicted(outcomes, "right", bins=2)
    wrong = realized_vs_predicted(outcomes, "inverted", bins=2)

    # then the correct one's intervals hold what it predicted, the inverted one's do not
    assert right["covers"].all()
    assert right["realized"].is_monotonic_increasing
    assert not wrong["covers"].any()
    assert (right["treated"] + right["control"]).sum() == n
