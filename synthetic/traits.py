"""Each customer's hidden and observable traits, drawn once; every later draw follows from them.

Hidden traits (satisfaction, price sensitivity, discount seeking, return propensity, review
propensity, spend level, a delivery-problem onset) drive the order process; observable ones
(signup date, region, acquisition channel, age) are what the customers table shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from synthetic.config import NEVER, NS_PER_DAY
from synthetic.review_text import CATEGORIES

if TYPE_CHECKING:
    from synthetic.config import GenerateConfig, ModelParams


REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central", "rural")
ACQUISITION_CHANNELS: tuple[str, ...] = ("organic", "paid_search", "social", "referral", "affiliate",
                                         "email")
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "marketplace")
SESSION_CHANNELS: tuple[str, ...] = ("web", "app")


@dataclass(frozen=True)
class Traits:
    """Per-customer traits, hidden and observable, as aligned numpy arrays (one entry per customer).

    Times are days since the start; rates are per day.
    """

    customer_id: np.ndarray
    signup_day: np.ndarray
    region: np.ndarray
    acquisition_channel: np.ndarray
    age: np.ndarray
    favorite_category: np.ndarray
    order_channel: np.ndarray
    satisfaction: np.ndarray
    price_sensitivity: np.ndarray
    discount_seeking: np.ndarray
    return_propensity: np.ndarray
    delivery_problem: np.ndarray
    delivery_onset: np.ndarray
    onset_decay: np.ndarray
    review_propensity: np.ndarray
    base_rate: np.ndarray
    decay: np.ndarray
    shift_factor: np.ndarray
    unit_price: np.ndarray
    extra_items: np.ndarray
    browse_rate: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_id)


def expit(x: np.ndarray) -> np.ndarray:
    """The logistic function: how a trait score becomes a share or a probability."""
    return 1.0 / (1.0 + np.exp(-x))


def draw_traits(config: GenerateConfig, params: ModelParams, rng: np.random.Generator) -> Traits:
    """Draw every customer's traits.

    Args:
        config: sizes and period.
        params: model constants.
        rng: source of randomness.

    Returns:
        Traits sorted by signup day, with customer ids 1..n in that order.
    """
    n = config.customers
    existing = rng.random(n) < params.existing_share
    prior_days = max(int(params.max_prior_years * 365), 1)
    signup_day = np.where(existing, -rng.integers(1, prior_days + 1, n),
                          rng.integers(0, config.total_days, n))
    region = rng.choice(len(REGIONS), n, p=[0.2, 0.2, 0.18, 0.17, 0.15, 0.10])
    acquisition = rng.choice(len(ACQUISITION_CHANNELS), n, p=[0.3, 0.2, 0.18, 0.12, 0.1, 0.1])
    age = np.clip(18 + rng.gamma(4.0, 6.0, n), 18, 90).astype(np.int64)
    cat_p = np.asarray(params.category_weights) / np.sum(params.category_weights)
    favorite = rng.choice(len(CATEGORIES), n, p=cat_p)
    order_channel = rng.choice(len(ORDER_CHANNELS), n, p=[0.5, 0.35, 0.15])

    satisfaction = rng.normal(0.0, 1.0, n)
    price_sensitivity = rng.beta(2.0, 2.0, n)
    channel_discount = np.array([-0.3, 0.1, 0.3, 0.0, 0.9, 0.4])[acquisition]
    discount_seeking = expit(-1.5 + 3.0 * (price_sensitivity - 0.5) + channel_discount
                              + rng.normal(0.0, 0.6, n))
    apparel = np.isin(favorite, [CATEGORIES.index("fashion"), CATEGORIES.index("sports")])
    return_propensity = expit(-2.5 + 0.7 * apparel + rng.normal(0.0, 0.6, n))
    problem_rate = np.where(region == REGIONS.index("rural"), params.delivery_problem_rate_rural,
                            params.delivery_problem_rate)
    delivery_problem = rng.random(n) < problem_rate
    onset = np.maximum(signup_day, np.floor(rng.uniform(-90.0, config.total_days + 90.0, n)))
    delivery_onset = np.where(delivery_problem, onset, NEVER)
    review_propensity = rng.beta(1.2, 1.2 / params.review_propensity_mean - 1.2, n)

    shape = params.base_orders_shape
    base_rate = rng.gamma(shape, params.base_orders_per_year_mean / shape, n) / 365.0
    log_decay = (np.log(params.decay_per_year)
                 + params.decay_discount * (discount_seeking - 0.22)
                 + params.decay_returns * (return_propensity - 0.1)
                 + params.decay_satisfaction * satisfaction
                 + rng.normal(0.0, params.decay_noise_sd, n))
    decay = np.exp(log_decay) / 365.0
    shift_factor = params.shift_factor_max - params.shift_factor_price * price_sensitivity
    unit_price = (np.exp(rng.normal(np.log(25.0), 0.45, n)) * (1 + 0.006 * (age - 40))
                  * (1.0 - 0.3 * discount_seeking))
    extra_items = rng.gamma(1.5, 0.4, n)
    browse_rate = rng.gamma(1.0, params.browse_sessions_per_year_mean, n) / 365.0

    order = np.argsort(signup_day, kind="stable")
    arrays = dict(
        signup_day=signup_day, region=region, acquisition_channel=acquisition, age=age,
        favorite_category=favorite, order_channel=order_channel, satisfaction=satisfaction,
        price_sensitivity=price_sensitivity, discount_seeking=discount_seeking,
        return_propensity=return_propensity, delivery_problem=delivery_problem,
        delivery_onset=delivery_onset,
        onset_decay=np.full(n, params.delivery_onset_decay_per_year / 365.0),
        review_propensity=review_propensity, base_rate=base_rate, decay=decay,
        shift_factor=shift_factor, unit_price=unit_price, extra_items=extra_items,
        browse_rate=browse_rate,
    )
    return Traits(customer_id=np.arange(1, n + 1, dtype=np.int64),
                  **{name: values[order] for name, values in arrays.items()})


def customers_frame(traits: Traits, config: GenerateConfig) -> pd.DataFrame:
    """The observable customer table: customer_id, signup_date, region, acquisition_channel, age."""
    start_ns = pd.Timestamp(config.start).value
    signup_ns = start_ns + traits.signup_day.astype(np.int64) * NS_PER_DAY
    return pd.DataFrame({
        "customer_id": traits.customer_id,
        "signup_date": pd.DatetimeIndex(signup_ns.astype("datetime64[ns]")).tz_localize("UTC"),
        "region": np.asarray(REGIONS, dtype=object)[traits.region],
        "acquisition_channel": np.asarray(ACQUISITION_CHANNELS, dtype=object)[traits.acquisition_channel],
        "age": traits.age,
    })



__all__ = [
    "ACQUISITION_CHANNELS",
    "ORDER_CHANNELS",
    "REGIONS",
    "SESSION_CHANNELS",
    "Traits",
    "customers_frame",
    "draw_traits",
    "expit",
]
