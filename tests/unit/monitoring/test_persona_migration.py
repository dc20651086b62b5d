"""Persona migration across a promotion: who moved is read from matched names, not from KMeans numbering."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.shares import persona_shift
from training.persona_match import centroids_in, match_personas


def test_only_the_customers_of_a_split_persona_move_across_a_promotion() -> None:
    # given: champion v1 with three personas; v2 refit on the same customers numbers its
    # clusters differently and splits "steady browsers" in two
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    rows = np.concatenate([np.asarray(p) + rng.normal(0, 0.5, (100, 2))
                           for p in [(10, 0), (0, 0), (0, 8.5), (0, 11.5)]])
    v1_names = {0: "loyal fans", 1: "at-risk bargain hunters", 2: "steady browsers"}
    v1_labels = np.argmin(np.linalg.norm(rows[:, None, :] - centers[None], axis=2), axis=1)
    v2_labels = np.repeat([0, 1, 2, 3], 100)  # KMeans' own numbering: 0 is v1's persona 1
    fresh = {0: "loyal fans", 1: "at-risk bargain hunters", 2: "steady browsers", 3: "lapsed browsers"}

    # when: v2's clusters are matched to v1's personas and the monitor compares the two sides
    match = match_personas(centers, [0, 1, 2], v1_names, centroids_in(rows, v2_labels, 4), v1_labels,
                           v2_labels, fresh)
    ids = np.asarray(match.ids)[v2_labels]
    customers = np.arange(len(rows))
    before = pd.DataFrame({"customer_id": customers, "persona": [v1_names[i] for i in v1_labels]})
    after = pd.DataFrame({"customer_id": customers, "persona": [match.names[i] for i in ids]})
    shift = persona_shift(before, after)

    # then: the only movers are the split part of "steady browsers"
    assert shift is not None
    moved = shift.transitions[shift.transitions["from_persona"] != shift.transitions["to_persona"]]
    assert moved[["from_persona", "customers"]].values.tolist() == [["steady browsers", 100]]
    assert shift.moved_share == 100 / 400
