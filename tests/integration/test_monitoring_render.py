"""The drift report, the monitoring summary and the persona cards render with content in headless Chromium.

Evidently reports are a JavaScript app: the raw file holds the data in a script, and only a
browser turns it into tables and plots. The check strips scripts from the DOM after JavaScript
ran and looks for metric and persona names and drawn plots.

Needs Debian's ``chromium`` (``make browser``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import run_drift
from monitoring.policy import DriftPolicy
from monitoring.render import render_summary_html
from monitoring.shares import persona_shift
from tests.conftest import render_in_chromium

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration



def rendered_text(page: Path, profile: Path) -> str:
    """The page's DOM after JavaScript ran, without script elements."""
    return render_in_chromium(page.as_uri(), profile)


def frames(n: int = 1500) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)

    def one(slow: float) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": np.arange(n),
                             "recency_days": rng.exponential(20 * (1 + 3 * slow), n),
                             "region": rng.choice(["north", "south"], n),
                             "churn_probability": rng.beta(2 + 3 * slow, 5, n),
                             "persona": rng.choice(["loyal frequent buyers", "at-risk occasional buyers"], n,
                                                   p=[0.6 - slow / 3, 0.4 + slow / 3])})

    return one(0.0), one(0.8)


def test_drift_report_and_summary_render_with_content(tmp_path: Path) -> None:
    # given an Evidently drift report and the summary page of a drifted window
    reference, current = frames()
    run = run_drift(reference, current, ["recency_days", "region"], DriftPolicy(),
                    {"churn_probability": 0.15})
    report = tmp_path / "drift_report.html"
    run.snapshot.save_html(str(report))
    shift = persona_shift(reference, current)
    doc = {"at": "2026-03-01T12:00:00+00:00", "status": "retrain", "retrain": True,
           "reasons": ["recency drifted"],
           "champion": {"model": "persona", "version": "3"}, "window": {"rows": len(current)},
           "reference": {"rows": len(reference)}, "files": {"drift_report_html": "drift_report.html"},
           "drift": {"drifted_share": run.summary.drifted_share,
                     "columns": json.loads(run.summary.to_frame().to_json(orient="records"))},
           "personas": shift.to_dict(), "quality": None}
    summary = tmp_path / "index.html"
    summary.write_text(render_summary_html(doc))
    assert "Drift in column" not in re.sub(r"<script\b[^>]*>.*?</script>", "", report.read_text(), flags=re.S)

    # when Chromium renders them
    report_dom = rendered_text(report, tmp_path / "profile-report")
    summary_dom = rendered_text(summary, tmp_path / "profile-summary")

    # then the report's widgets were drawn by its JavaScript: metric names, columns, plots
    for text in ("Drift in column 'recency_days'", "Drift in column 'churn_probability'",
                 "Drift detection method", "Column 'region' missing values", "Unique Value Count: persona"):
        assert text in report_dom, text
    assert report_dom.count("<svg") > 5
    # led by the dataset drift summary, before the per-column panels
    assert -1 < report_dom.find("Count of Drifted Columns: share") < report_dom.find("Drift in column")
    # and the summary shows the decision, the drift table and the persona shares
    for text in ("Persona monitoring", "retrain", "recency_days", "at-risk occasional buyers", "moved"):
        assert text in summary_dom, text


def test_persona_cards_render_with_content(tmp_path: Path) -> None:
    from tests.conftest import make_training_frame
    from training.cards import write_cards
    from training.personas import persona_cards, trait_scores

    # given persona cards as training writes them
    frame = make_training_frame(customers=120, snapshots=1, seed=3)
    segments = (frame["recency_days"] > frame["recency_days"].median()).to_numpy(int)
    frame["churn_probability"] = np.where(segments == 1, 0.7, 0.2)
    frame["expected_spend"] = 100.0
    names = {0: "loyal frequent buyers", 1: "dormant bargain hunters"}
    cards = persona_cards(frame, segments, names, {0: ["fast delivery"], 1: ["late parcel"]},
                          trait_scores(frame, segments))
    html_path, _ = write_cards(cards, {"model version": "3"}, tmp_path)

    # when
    dom = rendered_text(html_path, tmp_path / "profile-cards")

    # then
    for text in ("Persona cards", "loyal frequent buyers", "dormant bargain hunters", "churn rate",
                 "late parcel"):
        assert text in dom, text
    assert "<img" in dom
