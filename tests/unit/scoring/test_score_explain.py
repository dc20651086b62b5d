"""``persona score --explain``: one JSON explanation per scored row, in row order."""

from __future__ import annotations

import json

import pandas as pd

from model.runner import probe_batch
from scoring.score import explanations


def test_explanations_follow_the_scored_rows_across_chunks(persona_bundle) -> None:
    # given scored rows (more than one chunk)
    batch = probe_batch(persona_bundle, rows=25, seed=11)
    features = pd.DataFrame({c: batch.column(c) for c in persona_bundle.feature_columns})
    predictions = persona_bundle.predict(features)

    # when explained in chunks of 10
    column = explanations(persona_bundle, features, predictions, "persona", "2", chunk=10)

    # then each row's JSON names its own persona and action, and the version
    parsed = [json.loads(text) for text in column]
    assert len(parsed) == 25
    assert [p["persona"]["name"] for p in parsed] == predictions["persona"].tolist()
    assert [p["action"]["action"] for p in parsed] == predictions["action"].tolist()
    assert {p["versions"]["model_version"] for p in parsed} == {"2"}
