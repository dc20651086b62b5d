"""Persona training shows each persona's mean uplift per offer once an uplift champion exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from campaign.train import UpliftJob
from campaign.uplift import UpliftConfig
from core.runtime import using
from core.settings import load_settings
from tests.unit.campaign.conftest import planted_campaign
from training.train import uplift_cards

if TYPE_CHECKING:
    from pathlib import Path


def test_cards_gain_the_uplift_champions_mean_per_persona_and_stay_as_they_were_without_one(
    persona_home: Path,
) -> None:
    # given two personas split on x (a contact moves x > 0 and puts the others off), no uplift model yet
    settings = load_settings()
    rows = pd.DataFrame({"x": [1.0, 2.0, -1.0, -2.0], "noise": 0.0})
    segments = np.array([0, 0, 1, 1])
    cards = [{"segment": 0, "name": "responders"}, {"segment": 1, "name": "put off"}]
    with using(settings):
        before = uplift_cards(settings, cards, rows, segments)

        # when an uplift champion is registered
        frame = pd.concat([planted_campaign(n=1200, seed=1),
                           planted_campaign(n=1200, seed=2, start="2024-09-01", campaign="c2")], ignore_index=True)
        UpliftJob(settings, config=UpliftConfig(n_estimators=20)).run(frame=frame)
        after = uplift_cards(settings, cards, rows, segments)

    # then the cards show it, responders above those a contact puts off
    assert before == cards
    assert after[0]["uplift"]["discount"]["conversion"] > 0.1 > -0.05 > after[1]["uplift"]["discount"]["conversion"]
