"""Personas: k by silhouette, names from distinguishing traits, review terms, cards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from model.preprocess import nearest_center
from training.cards import render_cards_html, render_cards_json
from training.personas import fit_personas, name_segments, persona_cards, segment_terms, trait_scores


def _blobs(centers: list[list[float]], sizes: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(c, 0.3, size=(n, len(c))) for c, n in zip(centers, sizes, strict=True)])


def test_silhouette_picks_the_true_number_of_blobs() -> None:
    # given four well separated blobs of different sizes
    matrix = _blobs([[0, 0], [6, 0], [0, 6], [6, 6]], [200, 150, 100, 50])
    # when
    fit = fit_personas(matrix, k_min=2, k_max=6, seed=1, silhouette_sample=500)
    # then
    assert fit.k == 4
    assert max(fit.silhouettes, key=fit.silhouettes.get) == 4
    sizes = np.bincount(nearest_center(matrix, fit.centers))
    assert sizes.tolist() == [200, 150, 100, 50]  # segment 0 is the largest


def test_a_retrain_keeps_the_champions_k_unless_another_is_clearly_better() -> None:
    # given four blobs where two pairs nearly touch: k=2 and k=4 score close silhouettes
    matrix = _blobs([[0, 0], [1.6, 0], [8, 0], [9.6, 0]], [100, 100, 100, 100])
    free = fit_personas(matrix, k_min=2, k_max=4, seed=1, silhouette_sample=400)
    other = 2 if free.k == 4 else 4
    gap = free.silhouettes[free.k] - free.silhouettes[other]

    # when the champion had the other k, and the margin covers / does not cover the gap
    kept = fit_personas(matrix, 2, 4, 1, 400, prefer_k=other, prefer_margin=gap + 0.01)
    left = fit_personas(matrix, 2, 4, 1, 400, prefer_k=other, prefer_margin=gap / 2)

    # then
    assert 0 < gap < 0.3
    assert kept.k == other
    assert left.k == free.k


def test_names_come_from_churn_and_the_strongest_trait() -> None:
    # given segment 0 spends a lot and rarely churns; segment 1 buys on discount and churns often
    traits = pd.DataFrame(
        {
            "spend_365d": [1.5, -0.4, 0.0],
            "discount_share_365d": [-0.2, 1.2, 0.0],
            "recency_days": [-0.5, 0.3, 0.0],
        },
        index=[0, 1, 2],
    )
    churn = pd.Series({0: 0.10, 1: 0.45, 2: 0.25})
    # when
    names = name_segments(traits, churn, traits["recency_days"])
    # then
    assert names[0] == "loyal high spenders"
    assert names[1] == "at-risk bargain hunters"
    assert names[2] == "steady regulars"


def test_lapsed_qualifier_and_unique_names() -> None:
    # given two segments with the same profile, both churning a lot and long gone
    traits = pd.DataFrame(
        {"spend_365d": [-1.0, -1.0, 1.0], "orders_365d": [-0.6, -0.8, 1.0], "recency_days": [1.5, 1.4, -1.0]},
        index=[0, 1, 2],
    )
    churn = pd.Series({0: 0.9, 1: 0.9, 2: 0.1})
    # when
    names = name_segments(traits, churn, traits["recency_days"])
    # then
    assert names[0] == "lapsed light buyers"
    assert names[1].startswith("lapsed ")
    assert names[1] != names[0]
    assert len(set(names.values())) == 3


def test_segment_terms_are_distinctive_per_segment() -> None:
    # given one segment complaining about delivery and one praising quality
    reviews = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3, 4],
            "text": [
                "late delivery again",
                "delivery was late and the parcel damaged",
                "parcel late",
                "wonderful quality fabric",
                "quality is wonderful",
            ],
        }
    )
    segment_of = pd.Series({1: 0, 2: 0, 3: 1, 4: 1})
    # when
    terms = segment_terms(reviews, segment_of, top_n=2)
    # then
    assert set(terms[0]) <= {"late", "delivery", "parcel", "damaged"}
    assert "late" in terms[0]
    assert set(terms[1]) == {"quality", "wonderful"}


def test_cards_hold_size_stats_churn_value_terms_and_render() -> None:
    # given
    frame = pd.DataFrame(
        {
            "spend_365d": [10.0, 12.0, 500.0, 700.0],
            "churned": [1, 1, 0, 0],
            "expected_spend": [1.0, 2.0, 50.0, 70.0],
            "action": ["win_back"] * 2 + ["upsell"] * 2,
        }
    )
    segments = np.array([0, 0, 1, 1])
    names = {0: "at-risk light buyers", 1: "loyal high spenders"}
    traits = trait_scores(frame, segments)
    # when
    cards = persona_cards(frame, segments, names, {1: ["quality"]}, traits)
    page = render_cards_html(cards, {"as_of": "2025-01-01"})
    doc = json.loads(render_cards_json(cards, {"as_of": "2025-01-01"}))
    # then
    assert [c["size"] for c in cards] == [2, 2]
    assert cards[0]["churn_rate"] == 1.0
    assert cards[1]["expected_spend"] == 60.0
    assert cards[1]["terms"] == ["quality"]
    assert cards[1]["actions"] == {"upsell": 2}
    assert cards[1]["distinguishing"][0]["feature"] == "spend_365d"
    assert "loyal high spenders" in page
    assert "data:image/png;base64," in page
    assert doc["personas"][0]["name"] == "at-risk light buyers"


def test_cards_show_each_personas_mean_uplift_per_offer() -> None:
    from training.personas import cards_with_uplift

    # given two personas: a discount moves the first and puts the second off
    cards = [{"segment": 0, "name": "bargain hunters", "size": 2, "share": 0.5},
             {"segment": 1, "name": "loyal", "size": 2, "share": 0.5}]
    uplift = pd.DataFrame({"uplift_conversion_discount": [0.3, 0.1, -0.1, -0.05],
                           "uplift_spend_discount": [12.0, 4.0, -3.0, -1.0]}, index=[7, 3, 9, 1])
    segments = np.array([0, 0, 1, 1])

    # when
    shown = cards_with_uplift(cards, segments, uplift, ("discount",))
    page = render_cards_html(shown, {"as_of": "2025-01-01"})

    # then
    assert shown[0]["uplift"] == {"discount": {"conversion": 0.2, "spend": 8.0}}
    assert shown[1]["uplift"] == {"discount": {"conversion": -0.075, "spend": -2.0}}
    assert "uplift of a discount contact" in page
    assert "-7.5% conversion" in page
    assert "uplift" not in cards[0]  # the cards passed in are left as they were
