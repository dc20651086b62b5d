"""What a campaign changed: treatment vs control, with confidence intervals (pure).

The control group was drawn at random from the same ranked audience, so the difference of
means is an unbiased estimate of the average effect of the contact on the treated. Intervals
are normal-approximation (Wald for a difference of proportions, Welch for a difference of
means) at ``level`` (default 95%): the audiences are hundreds to millions of customers, and
the report says how many each side had. Incremental conversions and revenue scale the per
customer effect to the treated count; ROI is (incremental revenue - cost) / cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from core.contract import CONTROL, GROUP, TREATMENT

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval."""

    estimate: float
    low: float
    high: float

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class CampaignEffect:
    """The measured effect of one campaign (or of several evaluated together)."""

    treated: int
    control: int
    conversion_treated: Interval
    conversion_control: Interval
    conversion_uplift: Interval
    spend_treated: Interval
    spend_control: Interval
    spend_uplift: Interval
    incremental_conversions: Interval
    incremental_revenue: Interval
    cost: float
    roi: Interval
    level: float

    def to_dict(self) -> dict:
        """Plain data for JSON and MLflow."""
        return asdict(self)


def _mean_interval(values: np.ndarray, z: float) -> Interval:
    n = len(values)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(values.mean())
    se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Interval(mean, mean - z * se, mean + z * se)


def _difference(a: np.ndarray, b: np.ndarray, z: float) -> Interval:
    if len(a) < 2 or len(b) < 2:
        return Interval(float("nan"), float("nan"), float("nan"))
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return Interval(diff, diff - z * se, diff + z * se)


def _scaled(interval: Interval, factor: float, shift: float = 0.0) -> Interval:
    return Interval(interval.estimate * factor + shift, interval.low * factor + shift, interval.high * factor + shift)


def campaign_effect(outcomes: pd.DataFrame, cost_per_contact: float | pd.Series = 0.0,
                    level: float = 0.95) -> CampaignEffect:
    """Treatment vs control conversion and spend, incremental conversions and revenue, ROI.

    Args:
        outcomes: one row per exposure with ``group``, ``converted`` and ``spend``
            (:func:`campaign.outcomes.campaign_outcomes`).
        cost_per_contact: per treated contact (a number, or a column aligned with ``outcomes``).
        level: confidence level of every interval.
    """
    z = NormalDist().inv_cdf(0.5 + level / 2)
    treated = (outcomes[GROUP] == TREATMENT).to_numpy()
    control = (outcomes[GROUP] == CONTROL).to_numpy()
    conv = outcomes["converted"].to_numpy(dtype=float)
    spend = outcomes["spend"].to_numpy(dtype=float)
    n_t = int(treated.sum())
    costs = np.broadcast_to(np.asarray(cost_per_contact, dtype=float), (len(outcomes),))
    cost = float(np.nan_to_num(costs[treated]).sum())
    conversion_uplift = _difference(conv[treated], conv[control], z)
    spend_uplift = _difference(spend[treated], spend[control], z)
    revenue = _scaled(spend_uplift, n_t)
    roi = (_scaled(revenue, 1.0 / cost, -1.0) if cost > 0 else Interval(float("nan"), float("nan"), float("nan")))
    return CampaignEffect(
        treated=n_t, control=int(control.sum()),
        conversion_treated=_mean_interval(conv[treated], z), conversion_control=_mean_interval(conv[control], z),
        conversion_uplift=conversion_uplift,
        spend_treated=_mean_interval(spend[treated], z), spend_control=_mean_interval(spend[control], z),
        spend_uplift=spend_uplift,
        incremental_conversions=_scaled(conversion_uplift, n_t), incremental_revenue=revenue,
        cost=cost, roi=roi, level=level,
    )


__all__ = ["CampaignEffect", "Interval", "campaign_effect"]
