"""Persona cards read in plain language: money with a currency, named actions, no tag dump, no sigma."""

from __future__ import annotations

import re

import pytest

from core.errors import PersonaError
from model.actions import load_policy, parse_policy
from training.cards import money, render_cards_html
from training.config import DEFAULT_POLICY_PATH

META = {"feature_service": "churn_model_v2", "data.split": "time", "data.train_start": "2025-01-02 00:00:00+00:00",
        "data.train_end": "2025-03-20 00:00:00+00:00", "data.holdout_start": "2025-03-27 00:00:00+00:00",
        "data.holdout_end": "2025-03-27 00:00:00+00:00", "k": 2, "silhouette": 0.214}


def card(**extra: object) -> dict:
    return {"segment": 1, "name": "lapsed bargain hunters", "size": 1200, "share": 0.4, "churn_rate": 0.42,
            "predicted_churn": 0.38, "future_spend": 12.5, "expected_spend": 1234.5,
            "stats": {"recency_days": 95.0, "spend_365d": 310.25, "discount_share_365d": 0.61},
            "distinguishing": [{"feature": "recency_days", "z": 1.42}, {"feature": "orders_365d", "z": -0.6}],
            "actions": {"win_back": 900, "none": 300}, "terms": ["late parcel"], **extra}


def text_of(page: str) -> str:
    """What a reader sees: the page without the inline chart, style and tags."""
    page = re.sub(r"<(style|img)\b[^>]*>(.*?</style>)?", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).replace("&#x27;", "'")


def test_a_card_reads_in_plain_words_with_the_currency_and_the_policys_action_names() -> None:
    # given a card as training writes it, the home's currency and the shipped action policy
    policy = load_policy(DEFAULT_POLICY_PATH)
    # when it is rendered
    text = text_of(render_cards_html([card(uplift={"discount": {"conversion": 0.05, "spend": -2.0}})], META,
                                     currency="€", action_label=policy.label))
    # then money carries the currency, shares read as percentages
    for shown in ("€1,234.50", "€12.50", "spend in the last year €310.25", "-€2.00 spend",
                  "orders bought on discount 61.0%", "churn rate (observed) 42.0%"):
        assert shown in text, shown
    # actions are named as a marketer says them, with their customers
    assert "recommended: win back with an offer (900 customers), no action (300 customers)" in text
    # what sets the persona apart is said in words, not standard deviations
    assert "days since the last order well above average, orders in the last year below average" in text
    # and the header is a sentence about the run, not a dump of its tags
    assert "learned from customer activity between 2025-01-02 and 2025-03-27 · 2 personas" in text
    for jargon in ("σ", "sigma", "win_back", "feature_service", "churn_model_v2", "silhouette", "data.",
                   "recency_days", "_365d"):
        assert jargon not in text, jargon


def test_a_currency_code_follows_the_figure_and_signs_lead() -> None:
    assert money(1234.5, "EUR") == "1,234.50 EUR"
    assert money(-2.0, "$", signed=True) == "-$2.00"
    assert money(3.0, "£", signed=True) == "+£3.00"
    assert money(None) == "–"


def test_an_action_without_a_label_reads_as_its_name_spelled_out() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.label("win_back") == "win back with an offer"
    bare = policy.model_copy(update={"labels": {}})
    assert bare.label("retention_offer") == "retention offer"


def test_a_label_for_an_unknown_action_is_refused_naming_it() -> None:
    import yaml

    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["labels"]["call_them"] = "phone the customer"
    with pytest.raises(PersonaError, match="labels.call_them"):
        parse_policy(data, "actions.yaml")
