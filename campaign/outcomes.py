"""What each exposure led to: conversion, orders and spend inside its response window.

Outcomes are never ingested: they are computed from transactions, so a late-arriving order file
updates them and nobody can report a conversion that the order log does not show. The window of
an exposure at time ``t`` is ``(t, t + response_days]`` (the same half-open convention as the
churn labels' ``(t, t + H]``): an order at the very moment of the contact was not caused by it,
an order at the window's last instant counts, an order after it never does.

Point-in-time: an exposure whose window has not ended by ``as_of`` has no outcome yet (it is
left out, not counted as "did not convert"), so a model trained today never learns from
windows that are still open; such rows become labels once they mature (the delayed-label loop).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.contract import CAMPAIGN_KEY, ENTITY_KEY, TIMESTAMP
from core.errors import PersonaError

OUTCOMES = ("converted", "orders", "spend")
WINDOW_END = "window_end"


def response_windows(exposures: pd.DataFrame, campaigns: pd.DataFrame) -> pd.DataFrame:
    """Exposures with their campaign's offer, costs and window end (``event_timestamp + response_days``).

    Raises:
        PersonaError: an exposure names a campaign ``campaigns`` lacks (ingest quarantines those).
    """
    keep = [c for c in ("offer", "response_days", "cost_per_contact", "value_per_conversion") if c in campaigns]
    info = campaigns.drop_duplicates(CAMPAIGN_KEY, keep="last").set_index(CAMPAIGN_KEY)[keep]
    missing = sorted(set(exposures[CAMPAIGN_KEY]) - set(info.index))
    if missing:
        raise PersonaError(f"exposures name unknown campaign(s) {', '.join(map(str, missing[:5]))}; "
                         "ingest the campaigns table first")
    out = exposures.join(info, on=CAMPAIGN_KEY)
    start = pd.to_datetime(out[TIMESTAMP], utc=True)
    out[WINDOW_END] = start + pd.to_timedelta(out["response_days"].astype(float), unit="D")
    return out


def campaign_outcomes(
    exposures: pd.DataFrame,
    campaigns: pd.DataFrame,
    transactions: pd.DataFrame,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per exposure whose response window ended by ``as_of``: converted (0/1), orders and spend.

    Pure: frames in, a frame out.

    Args:
        exposures: customer_id, campaign_id, event_timestamp, group.
        campaigns: campaign_id, offer, response_days (and optional costs).
        transactions: customer_id, event_timestamp, amount.
        as_of: what is known by then (default: every window counts, the caller's data is final).

    Returns:
        The matured exposures with their campaign's columns, ``window_end``, ``converted``,
        ``orders`` and ``spend``.
    """
    rows = response_windows(exposures, campaigns).reset_index(drop=True)
    if as_of is not None:
        cutoff = pd.Timestamp(as_of)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
        rows = rows[rows[WINDOW_END] <= cutoff].reset_index(drop=True)
        transactions = transactions[pd.to_datetime(transactions[TIMESTAMP], utc=True) <= cutoff]
    rows["_row"] = np.arange(len(rows))
    tx = transactions[[ENTITY_KEY, TIMESTAMP, "amount"]].rename(columns={TIMESTAMP: "_tx_time"})
    tx["_tx_time"] = pd.to_datetime(tx["_tx_time"], utc=True)
    joined = rows[["_row", ENTITY_KEY, TIMESTAMP, WINDOW_END]].merge(tx, on=ENTITY_KEY, how="inner")
    inside = joined[(joined["_tx_time"] > pd.to_datetime(joined[TIMESTAMP], utc=True))
                    & (joined["_tx_time"] <= joined[WINDOW_END])]
    per_row = inside.groupby("_row").agg(orders=("amount", "size"), spend=("amount", "sum"))
    rows["orders"] = per_row["orders"].reindex(rows["_row"]).fillna(0).to_numpy(dtype=np.int64)
    rows["spend"] = per_row["spend"].reindex(rows["_row"]).fillna(0.0).to_numpy(dtype=np.float64)
    rows["converted"] = (rows["orders"] > 0).astype(np.int64)
    return rows.drop(columns="_row")


__all__ = ["OUTCOMES", "WINDOW_END", "campaign_outcomes", "response_windows"]
