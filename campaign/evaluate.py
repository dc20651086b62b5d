"""``persona campaign evaluate``: what one campaign changed, once its response window has ended.

Outcomes come from the ingested transactions (:mod:`campaign.outcomes`), only for exposures
whose window has ended by the last transaction, and the evaluation refuses a campaign whose
windows are still open (its outcomes would undercount). The same matured outcomes are the
labels of the next ``persona train --uplift``: nothing is copied, the training set is computed
from the same exposures and transactions, point-in-time (the delayed-label loop).

A campaign id names one campaign, or the base id of a plan with several offers (``p1`` for
``p1-discount`` and ``p1-free_delivery``), evaluated together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from campaign.data import read_table
from campaign.effect import CampaignEffect, campaign_effect
from campaign.metrics import qini_curve
from campaign.outcomes import WINDOW_END, campaign_outcomes
from campaign.report import render_campaign_html
from core import catalog
from core.contract import CAMPAIGN_KEY, ENTITY_KEY, GROUP, TIMESTAMP, TREATMENT
from core.errors import PersonaError
from training.data import read_transactions

if TYPE_CHECKING:
    from core.settings import Settings


@dataclass
class EvaluationResult:
    """One campaign's measured effect and its report."""

    campaign: str
    effect: CampaignEffect
    report: Path
    labels: int

    def summary(self) -> str:
        """A few lines for the terminal."""
        e = self.effect
        return "\n".join([
            f"campaign {self.campaign}: {e.treated:,} treated, {e.control:,} control",
            f"conversion {e.conversion_treated.estimate:.1%} vs {e.conversion_control.estimate:.1%}: uplift "
            f"{e.conversion_uplift.estimate:+.1%} ({e.conversion_uplift.low:+.1%} to {e.conversion_uplift.high:+.1%})",
            f"incremental conversions {e.incremental_conversions.estimate:,.1f} · incremental revenue "
            f"{e.incremental_revenue.estimate:,.2f} · cost {e.cost:,.2f} · ROI {e.roi.estimate:+.2f} "
            f"({e.roi.low:+.2f} to {e.roi.high:+.2f})",
            f"{self.labels:,} matured exposures are labels for the next `persona train --uplift`",
            f"report   {self.report}",
        ])


def select_campaigns(campaigns: pd.DataFrame, campaign_id: str) -> pd.DataFrame:
    """The campaign with this id, else the campaigns of a plan with this base id.

    Raises:
        PersonaError: no such campaign.
    """
    ids = campaigns[CAMPAIGN_KEY].astype(str)
    chosen = campaigns[ids == campaign_id]
    if chosen.empty:
        chosen = campaigns[ids.str.startswith(f"{campaign_id}-")]
    if chosen.empty:
        known = ", ".join(sorted(ids.unique())[-8:])
        raise PersonaError(f"unknown campaign {campaign_id!r}; known (latest): {known}")
    return chosen.drop_duplicates(CAMPAIGN_KEY, keep="last")


def planned_scores(settings: Settings, exposures: pd.DataFrame) -> np.ndarray | None:
    """The plan's expected uplift per exposure (saved with the audience), when it was planned here."""
    frames = []
    for campaign in exposures[CAMPAIGN_KEY].astype(str).unique():
        path = catalog.planned_audience(settings, campaign)
        if path.exists():
            frames.append(pd.read_parquet(path, columns=[ENTITY_KEY, CAMPAIGN_KEY, "expected_uplift"]))
    if not frames:
        return None
    scores = pd.concat(frames, ignore_index=True)
    merged = exposures[[ENTITY_KEY, CAMPAIGN_KEY]].merge(scores, on=[ENTITY_KEY, CAMPAIGN_KEY], how="left")
    values = merged["expected_uplift"].to_numpy(dtype=float)
    return None if np.isnan(values).all() else np.nan_to_num(values, nan=-np.inf)


def evaluate_campaign(settings: Settings, campaign_id: str, out: Path | None = None) -> EvaluationResult:
    """Measure one campaign (see the module docstring) and write its HTML report and JSON figures.

    Raises:
        PersonaError: unknown campaign, no exposures, or a response window still open.
    """
    campaigns = select_campaigns(read_table(settings, "campaigns"), campaign_id)
    exposures = read_table(settings, "exposures")
    exposures = exposures[exposures[CAMPAIGN_KEY].isin(campaigns[CAMPAIGN_KEY])].reset_index(drop=True)
    if exposures.empty:
        raise PersonaError(f"campaign {campaign_id!r} has no recorded exposures")
    transactions = read_transactions(settings)
    as_of = pd.to_datetime(transactions[TIMESTAMP], utc=True).max()
    everything = campaign_outcomes(exposures, campaigns, transactions)
    still_open = everything[everything[WINDOW_END] > as_of]
    if len(still_open):
        raise PersonaError(f"campaign {campaign_id!r}: {len(still_open):,} response window(s) end after the last "
                           f"transaction ({as_of}); evaluate after {still_open[WINDOW_END].max()} once its "
                           "transactions are ingested")
    outcomes = campaign_outcomes(exposures, campaigns, transactions, as_of)
    costs = outcomes.get("cost_per_contact", 0.0)
    effect = campaign_effect(outcomes, costs)
    scores = planned_scores(settings, outcomes)
    qini = None
    if scores is not None:
        qini = qini_curve(scores, (outcomes[GROUP] == TREATMENT).to_numpy(), outcomes["converted"].to_numpy())
    notes = [f"campaign(s): {', '.join(campaigns[CAMPAIGN_KEY].astype(str))}",
             f"outcomes: orders in (contact, contact + response days], transactions up to {as_of}",
             "ROI counts incremental revenue, not margin"]
    target = out or catalog.campaign_reports(settings) / f"{campaign_id}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_campaign_html(campaign_id, effect, qini, notes))
    target.with_suffix(".json").write_text(json.dumps({"campaign": campaign_id, **effect.to_dict()}, indent=1))
    return EvaluationResult(campaign_id, effect, target, len(outcomes))


__all__ = ["EvaluationResult", "evaluate_campaign", "planned_scores", "select_campaigns"]
