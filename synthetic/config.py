"""What to generate (:class:`GenerateConfig`) and the generative model's constants (:class:`ModelParams`).

The model itself is described in :mod:`synthetic.generator`; these are its knobs, so a data set's
``generator.json`` can record every one of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import PersonaError

FORMATS = ("parquet", "csv")
SNAPSHOT_EVERY_DAYS = 7
NS_PER_DAY = 86_400 * 10**9
NEVER = 1e7
"""A day (since start) that never comes: the onset of customers without a delivery problem."""


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate.

    Attributes:
        customers: number of customers (>= 1).
        days: days of regular history (>= 1).
        seed: random seed; the same config gives the same files.
        start: first day of history; converted to UTC and truncated to midnight.
        shift_days: days of a shifted period appended after the history (price rise, delivery
            complaints); 0 for none.
        fmt: ``parquet`` or ``csv``.
        horizon_days: churn horizon H of the ground truth (>= 1).
        campaign_waves: past randomized campaign waves to generate (:mod:`synthetic.campaigns`);
            0 for none (the tables stay as without campaigns).
    """

    customers: int
    days: int
    seed: int
    start: dt.datetime
    shift_days: int = 0
    fmt: str = "parquet"
    horizon_days: int = 90
    campaign_waves: int = 0

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise PersonaError(f"unknown format {self.fmt!r}; use one of {', '.join(FORMATS)}")
        for name, minimum in (("customers", 1), ("days", 1), ("shift_days", 0), ("horizon_days", 1),
                              ("campaign_waves", 0)):
            if getattr(self, name) < minimum:
                raise PersonaError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        ts = pd.Timestamp(self.start)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        object.__setattr__(self, "start", ts.normalize().to_pydatetime())

    @property
    def total_days(self) -> int:
        """Days of history plus shifted days."""
        return self.days + self.shift_days

    @property
    def shift_start_day(self) -> float:
        """First shifted day (days since start), or infinity without a shift."""
        return float(self.days) if self.shift_days > 0 else float("inf")


@dataclass(frozen=True)
class ModelParams:
    """The generative model's constants (written to ``generator.json``). Rates are per year."""

    existing_share: float = 0.5  # customers signed up before the history starts
    max_prior_years: float = 2.0  # how long before the start they may have signed up
    base_orders_per_year_mean: float = 40.0  # order rate on the signup day
    base_orders_shape: float = 2.0  # gamma shape of the base rate across customers
    decay_per_year: float = 1.0  # k for an average customer
    decay_discount: float = 1.5  # log k per unit of discount seeking
    decay_returns: float = 3.0  # log k per unit of return propensity
    decay_satisfaction: float = -0.2  # log k per sd of satisfaction
    decay_noise_sd: float = 0.2  # idiosyncratic spread of log k
    delivery_problem_rate: float = 0.3  # customers who ever hit a delivery problem, outside 'rural'
    delivery_problem_rate_rural: float = 0.6
    delivery_onset_decay_per_year: float = 40.0  # extra decay from the onset on: gone within weeks
    delivery_complaint_lead_days: float = 60.0  # deliveries fail (and get reviewed) this long before
    shift_factor_max: float = 0.85  # order-rate factor after the price rise, minus...
    shift_factor_price: float = 0.5  # ...this times price sensitivity (Beta(2, 2)): mean 0.6
    shift_price_rise: float = 1.12  # list prices in the shifted period
    favorite_category_share: float = 0.55
    sessions_per_order: float = 5.0
    browse_sessions_per_year_mean: float = 6.0
    review_propensity_mean: float = 0.15
    review_delay_days_mean: float = 4.0
    delivery_problem_review_boost: float = 0.7  # added review chance once deliveries fail
    delivery_stars_rate_product: float = 0.8  # share of delivery reviews whose stars rate the product
    shift_delivery_complaint_boost: float = 3.0  # extra delivery-topic weight in the shifted period
    discount_levels: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    discount_level_weights: tuple[float, ...] = (0.1, 0.25, 0.15, 0.2, 0.1, 0.1, 0.06, 0.04)
    category_weights: tuple[float, ...] = (0.14, 0.2, 0.16, 0.12, 0.1, 0.08, 0.12, 0.08)
    category_price_factor: tuple[float, ...] = (3.0, 1.2, 1.5, 0.7, 1.3, 0.5, 0.4, 0.8)
    category_return_factor: tuple[float, ...] = (0.8, 2.0, 0.7, 0.5, 1.2, 0.2, 0.1, 0.6)

    @property
    def mean_discount_level(self) -> float:
        """Expected discount share of an order that has a discount."""
        weights = np.asarray(self.discount_level_weights) / np.sum(self.discount_level_weights)
        return float(np.dot(self.discount_levels, weights))



__all__ = ["FORMATS", "NEVER", "NS_PER_DAY", "SNAPSHOT_EVERY_DAYS", "GenerateConfig", "ModelParams"]
