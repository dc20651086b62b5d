"""Who gets which offer: pure decisions from predicted uplift, costs, a budget and a control share.

Per customer the offer with the highest expected incremental value minus its cost per contact
wins; when none clears ``min_expected_value`` (default 0: the offer must at least pay for
itself) the customer is not contacted. Incremental value is the predicted incremental spend,
or, when the campaign sets a value per conversion, the predicted incremental conversions times
that value. Customers are then taken in order of that net value until the budget (money spent
on contacts) would be exceeded.

The control group is drawn per offer, exactly ``floor(share * n)`` of the ``n`` customers
chosen for an offer, at random with a fixed seed: control customers look exactly like the
treated ones (same ranking, same offer), so treated minus control is the effect of the contact.
Only treated customers are contacted, so only they cost money; the budget is checked against
them, exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import CONTROL, ENTITY_KEY, TREATMENT
from model.uplift import net_values, uplift_column

if TYPE_CHECKING:
    from collections.abc import Mapping

AUDIENCE_COLUMNS = ("customer_id", "campaign_id", "offer", "group", "expected_uplift", "expected_value", "reason")


def best_offers(
    uplift: pd.DataFrame,
    costs: Mapping[str, float],
    value_per_conversion: Mapping[str, float | None] | None = None,
    min_expected_value: float = 0.0,
) -> pd.DataFrame:
    """Per customer, the offer with the highest expected net value, or none when nothing pays.

    Args:
        uplift: ``customer_id`` and ``uplift_<outcome>_<offer>`` columns (:class:`model.uplift.UpliftPredictor`).
        costs: cost per contact of each offer considered (the offers to choose from).
        value_per_conversion: per offer, the value of one conversion (``None``: use incremental spend).
        min_expected_value: the net value an offer must exceed to be worth a contact.

    Returns:
        ``customer_id, offer`` (None when nothing pays), ``expected_uplift`` (conversion),
        ``expected_value`` (net of cost), ``reason``; ordered by ``expected_value`` descending.
    """
    offers = list(costs)
    net = net_values(uplift, offers, costs, value_per_conversion)
    best = np.argmax(net, axis=1)
    rows = np.arange(len(uplift))
    best_net = net[rows, best] if len(uplift) else np.zeros(0)
    conversion = np.column_stack([uplift[uplift_column("conversion", o)].to_numpy(dtype=float) for o in offers])
    pays = best_net > min_expected_value
    chosen = np.asarray(offers, dtype=object)[best]
    out = pd.DataFrame({
        ENTITY_KEY: uplift[ENTITY_KEY].to_numpy(),
        "offer": np.where(pays, chosen, None),
        "expected_uplift": conversion[rows, best] if len(uplift) else np.zeros(0),
        "expected_value": best_net,
        "reason": [f"{o}: {u:+.1%} conversion, net value {v:.2f}" if p else
                   f"no offer pays (best {o}: net value {v:.2f} <= {min_expected_value:g})"
                   for o, u, v, p in zip(chosen, conversion[rows, best] if len(uplift) else [], best_net, pays,
                                         strict=True)],
    })
    return out.sort_values("expected_value", ascending=False, kind="stable").reset_index(drop=True)


def fill_budget(
    choices: pd.DataFrame,
    costs: Mapping[str, float],
    budget: float,
    control_share: float,
    seed: int,
) -> pd.DataFrame:
    """Take customers in order until the treated contacts' cost would exceed ``budget``; hold out a control group.

    Args:
        choices: :func:`best_offers` output (customers with no offer are skipped), in priority order.
        costs: cost per contact of each offer.
        budget: money for contacts (treated customers only).
        control_share: share of each offer's chosen customers held out, in [0, 1).
        seed: the control draw's seed (same seed, same groups).

    Returns:
        The chosen customers with ``group`` (treatment or control), in priority order.
    """
    if not 0 <= control_share < 1:
        raise ValueError(f"control share must be in [0, 1), got {control_share}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    candidates = choices[choices["offer"].notna()].reset_index(drop=True)
    counts: dict[str, int] = {}
    spent = 0.0
    taken = 0
    for offer in candidates["offer"]:
        n = counts.get(offer, 0)
        newly_held = int(np.floor(control_share * (n + 1))) - int(np.floor(control_share * n))
        extra = float(costs[offer]) * (1 - newly_held)
        if spent + extra > budget + 1e-9:
            break
        spent += extra
        counts[offer] = n + 1
        taken += 1
    chosen = candidates.iloc[:taken].copy()
    group = np.full(taken, TREATMENT, dtype=object)
    rng = np.random.default_rng(seed)
    for offer, n in counts.items():
        rows = np.flatnonzero(chosen["offer"].to_numpy() == offer)
        held = rng.choice(rows, size=int(np.floor(control_share * n)), replace=False)
        group[held] = CONTROL
    chosen["group"] = group
    chosen.loc[chosen["group"] == CONTROL, "reason"] = "held out at random (control group)"
    return chosen.reset_index(drop=True)


def treated_cost(audience: pd.DataFrame, costs: Mapping[str, float]) -> float:
    """Money the audience's treated contacts cost."""
    treated = audience[audience["group"] == TREATMENT]
    return float(treated["offer"].map(lambda o: float(costs[o])).sum())


__all__ = ["AUDIENCE_COLUMNS", "best_offers", "fill_budget", "treated_cost"]
