"""Uplift metrics on small hand-checked arrays."""

from __future__ import annotations

import numpy as np
import pytest

from campaign.metrics import expected_gain, expected_qini, qini_coefficient, qini_curve, uplift_at_k

# four treated, four control; treated customers 0 and 1 converted, control customer 7 converted
TREATED = np.array([1, 1, 1, 1, 0, 0, 0, 0])
OUTCOME = np.array([1, 1, 0, 0, 0, 0, 0, 1])


def test_the_qini_curve_counts_treated_outcomes_minus_rescaled_control_outcomes() -> None:
    # given a score ranking customers in index order
    score = -np.arange(8.0)

    # when
    n, q = qini_curve(score, TREATED, OUTCOME)

    # then the first two treated converted; control adds nothing until customer 7 (scaled 4/4)
    assert n.tolist() == list(range(9))
    assert q.tolist() == [0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0]


def test_a_ranking_that_finds_the_responders_first_beats_one_that_finds_them_last() -> None:
    # given
    good, bad = -np.arange(8.0), np.arange(8.0)

    # when / then
    assert qini_coefficient(good, TREATED, OUTCOME) > 0 > qini_coefficient(bad, TREATED, OUTCOME)


def test_a_constant_score_is_a_random_ranking_on_average() -> None:
    # given a large randomized experiment with no effect
    rng = np.random.default_rng(0)
    treated, outcome = rng.random(20_000) < 0.5, rng.random(20_000) < 0.3

    # when
    q = qini_coefficient(np.zeros(20_000), treated, outcome)

    # then
    assert abs(q) < 0.01


def test_uplift_at_k_compares_treated_and_control_among_the_top_share() -> None:
    # given: top half = customers 0..3, all treated -> undefined; top 3/4 = 0..5
    score = -np.arange(8.0)

    # when / then
    assert np.isnan(uplift_at_k(score, TREATED, OUTCOME, 0.5))
    assert uplift_at_k(score, TREATED, OUTCOME, 0.75) == pytest.approx(0.5 - 0.0)
    assert uplift_at_k(score, TREATED, OUTCOME, 1.0) == pytest.approx(0.5 - 0.25)
    with pytest.raises(ValueError, match="share"):
        uplift_at_k(score, TREATED, OUTCOME, 0.0)


def test_expected_gain_and_qini_use_the_true_effects_of_those_picked() -> None:
    # given
    effect = np.array([0.3, -0.2, 0.1, 0.0])

    # when / then
    assert expected_gain(effect, effect, 2) == pytest.approx(0.4)
    assert expected_gain(-effect, effect, 1) == pytest.approx(-0.2)
    assert expected_qini(effect, effect) > 0 > expected_qini(-effect, effect)
    assert expected_qini(effect, effect) == pytest.approx(np.mean([0.3, 0.4, 0.4, 0.2] - 0.2 * np.arange(1, 5) / 4) / 4)
