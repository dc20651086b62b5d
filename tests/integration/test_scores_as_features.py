"""Scores as versioned features: score, then read them through Feast online by id and offline as of a time."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from tests.conftest import copy_home

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_scores_are_read_back_through_feast_online_and_as_of_any_time(
    champion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import load_settings
    from scoring.publish import scores_as_of, scores_online
    from scoring.score import default_as_of, score

    # given a home whose champion scores the newest snapshot, then (later) a snapshot four weeks older
    home = copy_home(champion_home, tmp_path / "home")
    monkeypatch.setenv("PERSONA_HOME", str(home))
    settings = load_settings()
    newest = default_as_of(settings)
    older = newest - pd.Timedelta(days=28)
    new_report = score(settings, tmp_path / "new.parquet", as_of=newest, explain=True)
    old_report = score(settings, tmp_path / "old.parquet", as_of=older)
    new_scores = pd.read_parquet(new_report.path).set_index("customer_id")
    old_scores = pd.read_parquet(old_report.path).set_index("customer_id")
    ids = [int(i) for i in new_scores.index[:5] if i in old_scores.index][:3]
    assert len(ids) == 3

    # when read online by id, and offline as of a day after each scoring
    online = scores_online(settings, ids).set_index("customer_id")
    day = pd.Timedelta(days=1)
    entities = pd.DataFrame({"customer_id": ids * 2,
                             "event_timestamp": [older + day] * len(ids) + [newest + day] * len(ids)})
    offline = scores_as_of(settings, entities)

    # then online holds the newest as-of's scores (the later, older scoring did not overwrite them),
    # offline each time's own, all with the model version that made them
    for i in ids:
        assert online.loc[i, "churn_probability"] == pytest.approx(new_scores.loc[i, "churn_probability"], rel=1e-5)
        assert online.loc[i, "persona"] == new_scores.loc[i, "persona"]
        assert online.loc[i, "persona_id"] == new_scores.loc[i, "segment"]
        assert (online.loc[i, "model"], online.loc[i, "model_version"]) == ("persona", "1")
        # P(alive) of the bundle's BG/NBD is published with the scores, not left empty
        assert 0 < new_scores.loc[i, "p_alive"] <= 1
        assert online.loc[i, "p_alive"] == pytest.approx(new_scores.loc[i, "p_alive"], rel=1e-5)
    then, now = offline.iloc[: len(ids)].set_index("customer_id"), offline.iloc[len(ids):].set_index("customer_id")
    for i in ids:
        assert then.loc[i, "expected_spend"] == pytest.approx(old_scores.loc[i, "expected_spend"], rel=1e-5)
        assert now.loc[i, "expected_spend"] == pytest.approx(new_scores.loc[i, "expected_spend"], rel=1e-5)
        assert now.loc[i, "action"] == new_scores.loc[i, "action"]
        assert now.loc[i, "p_alive"] == pytest.approx(new_scores.loc[i, "p_alive"], rel=1e-5)
    assert any(old_scores.loc[i, "expected_spend"] != new_scores.loc[i, "expected_spend"] for i in ids)
    assert set(offline["model_version"]) == {"1"}
    assert "customer_scores" in new_report.summary()
    # and `persona score --explain` gave every scored customer its reasons, naming the version
    reasons = [json.loads(text) for text in new_scores["explanation"]]
    assert [r["action"]["action"] for r in reasons] == new_scores["action"].tolist()
    assert {r["versions"]["model_version"] for r in reasons} == {"1"}
    assert "explanation" not in old_scores
