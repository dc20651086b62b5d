"""Rules that span rows and tables for campaigns and exposures, checked before column validation.

Column rules (:mod:`ingest.validate`) see one value at a time; a campaign record also has to
agree with itself and with the other tables, or the uplift models learn from a broken
experiment. Each function returns, per row, the reason to quarantine it (``None`` where the row
is fine); :func:`ingest.run.ingest_files` hands these to :func:`ingest.validate.validate` as
rows already found damaged, so counting and quarantine work as for every other table.

Reasons:

* campaigns: ``end_before_start`` (the window is empty).
* exposures: ``bad_group`` (not ``treatment`` or ``control``), ``treatment_without_campaign``
  (a contact with no campaign id), ``unknown_campaign`` (no such campaign ingested),
  ``in_both_groups`` (the same customer in treatment and control of one campaign, in this file
  or against stored rows: every such row of the file is quarantined, the experiment cannot
  say which group the customer was in), ``no_consent`` (a treatment contact to a customer with
  no recorded consent, see :mod:`ingest.consent`; control rows contact nobody and need none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import CAMPAIGN_KEY, CONTROL, ENTITY_KEY, GROUP, GROUPS, TREATMENT
from ingest.parse import PARSERS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

END_BEFORE_START = "end_before_start"
BAD_GROUP = "bad_group"
TREATMENT_WITHOUT_CAMPAIGN = "treatment_without_campaign"
UNKNOWN_CAMPAIGN = "unknown_campaign"
IN_BOTH_GROUPS = "in_both_groups"
NO_CONSENT = "no_consent"


def _first(reasons: np.ndarray, failed: np.ndarray, code: str) -> np.ndarray:
    """Record ``code`` where ``failed`` and no earlier rule has spoken."""
    return np.where((reasons == None) & failed, code, reasons)  # noqa: E711 - elementwise


def _text(series: pd.Series) -> pd.Series:
    """Trimmed text with empty values as NA (how the contract's ``any`` columns are stored)."""
    return PARSERS["any"](series).values.astype("string")


def campaign_reasons(frame: pd.DataFrame) -> np.ndarray:
    """Per campaign row, a reason (see the module docstring) or None."""
    reasons = np.full(len(frame), None, dtype=object)
    if {"start", "end"} <= set(frame.columns):
        start = PARSERS["timestamp"](frame["start"]).values
        end = PARSERS["timestamp"](frame["end"]).values
        before = (end < start).fillna(False).to_numpy(dtype=bool)
        reasons = _first(reasons, before, END_BEFORE_START)
    return reasons


def exposure_reasons(
    frame: pd.DataFrame,
    known_campaigns: Iterable[str],
    consented: Callable[[np.ndarray], np.ndarray],
    stored: pd.DataFrame | None = None,
) -> np.ndarray:
    """Per exposure row, a reason (see the module docstring) or None.

    Args:
        frame: exposure rows as read (text from CSV, typed from parquet).
        known_campaigns: campaign ids already ingested.
        consented: customer ids -> bool mask of recorded consent (:func:`ingest.consent.contactable`).
        stored: exposures already ingested (customer_id, campaign_id, group), for the both-groups rule.
    """
    reasons = np.full(len(frame), None, dtype=object)
    if not {ENTITY_KEY, CAMPAIGN_KEY, GROUP} <= set(frame.columns):
        return reasons  # validation names the missing column
    group = _text(frame[GROUP])
    campaign = _text(frame[CAMPAIGN_KEY])
    parsed = PARSERS["int"](frame[ENTITY_KEY])
    valid_id = ~(parsed.null | parsed.invalid)
    ids = parsed.values.fillna(-1).to_numpy(dtype=np.int64)
    is_treatment = (group == TREATMENT).fillna(False).to_numpy(dtype=bool)

    reasons = _first(reasons, ~group.isin(GROUPS).fillna(False).to_numpy(dtype=bool), BAD_GROUP)
    no_campaign = campaign.isna().to_numpy(dtype=bool)
    reasons = _first(reasons, is_treatment & no_campaign, TREATMENT_WITHOUT_CAMPAIGN)
    known = campaign.isin(list(known_campaigns)).fillna(False).to_numpy(dtype=bool)
    reasons = _first(reasons, ~no_campaign & ~known, UNKNOWN_CAMPAIGN)

    pairs = pd.DataFrame({ENTITY_KEY: ids, CAMPAIGN_KEY: campaign.fillna(""), GROUP: group.fillna("")})
    usable = valid_id & ~no_campaign & group.isin(GROUPS).fillna(False).to_numpy(dtype=bool)
    seen = pairs[usable]
    if stored is not None and len(stored):
        seen = pd.concat([seen, stored[[ENTITY_KEY, CAMPAIGN_KEY, GROUP]].astype(
            {ENTITY_KEY: np.int64, CAMPAIGN_KEY: str, GROUP: str})], ignore_index=True)
    groups_per_pair = seen.groupby([ENTITY_KEY, CAMPAIGN_KEY])[GROUP].nunique()
    mixed = set(groups_per_pair[groups_per_pair > 1].index)
    both = np.array([(i, c) in mixed for i, c in zip(pairs[ENTITY_KEY], pairs[CAMPAIGN_KEY], strict=True)],
                    dtype=bool) & usable
    reasons = _first(reasons, both, IN_BOTH_GROUPS)

    contacted = is_treatment & valid_id
    agreed = np.zeros(len(frame), dtype=bool)
    if contacted.any():
        agreed[contacted] = consented(ids[contacted])
    reasons = _first(reasons, contacted & ~agreed, NO_CONSENT)
    return reasons


__all__ = [
    "BAD_GROUP",
    "CONTROL",
    "END_BEFORE_START",
    "IN_BOTH_GROUPS",
    "NO_CONSENT",
    "TREATMENT_WITHOUT_CAMPAIGN",
    "UNKNOWN_CAMPAIGN",
    "campaign_reasons",
    "exposure_reasons",
]
