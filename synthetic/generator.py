"""Synthetic customers with a planted churn signal whose truth is known exactly.

The model (all times in days since ``config.start``; every rate is deterministic given the traits):

* Customer ``i`` signs up on day ``s0_i`` (half of them before the history starts) and has hidden
  traits: satisfaction, price sensitivity, discount seeking, return propensity, review
  propensity, spend level, and for some (more in region ``rural``) a delivery-problem onset day
  ``o_i``.
* Orders follow an inhomogeneous Poisson process with rate
  ``lambda_i(s) = base_i * exp(-k_i * (s - s0_i) - delta * max(s - o_i, 0)) * g_i(s)`` for
  ``s >= s0_i``: the decay ``k_i`` grows with discount seeking, returns and low satisfaction, the
  delivery problem adds ``delta`` from its onset on, and ``g_i(s)`` is 1, or ``shift_factor_i``
  (a price rise; ~0.6 on average, lower for price-sensitive customers) from the first shifted day.
* Sessions are Poisson with rate ``sessions_per_order * lambda_i(s) + browse_i``.
* Some orders get a review a few days later; its topic and polarity depend on the traits, its
  rating on its polarity, except that most delivery reviews' stars rate the product (so a
  delivery complaint shows in the text, rarely in the stars). Deliveries start failing
  ``delivery_complaint_lead_days`` before the onset: from then on the customer reviews more
  often, mostly with delivery complaints, and from the onset on the customer is gone within
  weeks. So what customers write announces churn that their behaviour shows only later.

So for a snapshot ``t`` (a midnight) and horizon ``H`` days, the orders in ``(t, t + H]`` are
Poisson with mean ``L = integral_t^{t+H} lambda_i``, a sum of exponential pieces in closed form:
``P(churned) = exp(-L)``, ``E[orders] = L``, ``E[spend] = integral lambda_i(s) E[amount_i(s)] ds``.
Order counts are exact per whole UTC day (the hour of an order is drawn from a daily profile
inside its day), so every day-aligned window, such as the snapshot windows, follows the model.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core.errors import PersonaError
from core.timegrid import snapshot_timestamps
from synthetic.review_text import CATEGORIES, TOPICS, compose_reviews

FORMATS = ("parquet", "csv")
SNAPSHOT_EVERY_DAYS = 7
_NS_PER_DAY = 86_400 * 10**9
_BLOCK = 500_000

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central", "rural")
ACQUISITION_CHANNELS: tuple[str, ...] = ("organic", "paid_search", "social", "referral", "affiliate",
                                         "email")
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "marketplace")
SESSION_CHANNELS: tuple[str, ...] = ("web", "app")
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
    """

    customers: int
    days: int
    seed: int
    start: dt.datetime
    shift_days: int = 0
    fmt: str = "parquet"
    horizon_days: int = 90

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise PersonaError(f"unknown format {self.fmt!r}; use one of {', '.join(FORMATS)}")
        for name, minimum in (("customers", 1), ("days", 1), ("shift_days", 0), ("horizon_days", 1)):
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


def _expit(x: np.ndarray) -> np.ndarray:
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
    discount_seeking = _expit(-1.5 + 3.0 * (price_sensitivity - 0.5) + channel_discount
                              + rng.normal(0.0, 0.6, n))
    apparel = np.isin(favorite, [CATEGORIES.index("fashion"), CATEGORIES.index("sports")])
    return_propensity = _expit(-2.5 + 0.7 * apparel + rng.normal(0.0, 0.6, n))
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


def _segments(traits: Traits, rows: np.ndarray | slice, shift_start_day: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The order rate as three exponential pieces: start, end, rate just after start, decay per piece.

    The breakpoints are signup, the delivery onset and the shift start (a missing one lies at
    :data:`NEVER`); inside a piece ``lambda(s) = level * exp(-kappa * (s - start))``.
    """
    s0 = traits.signup_day[rows].astype(np.float64)
    onset = traits.delivery_onset[rows]
    shift = np.full_like(s0, min(shift_start_day, NEVER))
    first_break = np.maximum(np.minimum(onset, shift), s0)
    second_break = np.maximum(np.maximum(onset, shift), s0)
    starts = np.stack([s0, first_break, second_break], axis=-1)
    ends = np.stack([first_break, second_break, np.full_like(s0, np.inf)], axis=-1)
    decay = traits.decay[rows][:, None]
    onset_decay = traits.onset_decay[rows][:, None]
    after_onset = starts >= onset[:, None]
    log_level = (np.log(traits.base_rate[rows])[:, None] - decay * (starts - s0[:, None])
                 - onset_decay * np.maximum(starts - onset[:, None], 0.0))
    factor = np.where(starts >= shift[:, None], traits.shift_factor[rows][:, None], 1.0)
    levels = np.exp(log_level) * factor
    kappa = decay + onset_decay * after_onset
    return starts, ends, levels, kappa


def _piece_mass(levels: np.ndarray, kappa: np.ndarray, length: np.ndarray) -> np.ndarray:
    """integral_0^length level * exp(-kappa * x) dx."""
    return levels * -np.expm1(-kappa * length) / kappa


def cumulative_orders(traits: Traits, day: np.ndarray, shift_start_day: float,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """Expected orders from signup up to ``day``: ``G_i(day) = integral_{s0_i}^{day} lambda_i``.

    Args:
        traits: customer traits.
        day: days since start, aligned with ``rows`` (or with all customers when ``rows`` is None).
        shift_start_day: first shifted day, or infinity.
        rows: customer indices the ``day`` values belong to.

    Returns:
        Expected order counts, same shape as ``day``.
    """
    idx = slice(None) if rows is None else rows
    starts, ends, levels, kappa = _segments(traits, idx, shift_start_day)
    length = np.clip(np.asarray(day, dtype=np.float64)[:, None] - starts, 0.0, ends - starts)
    return _piece_mass(levels, kappa, length).sum(axis=1)


def _invert_cumulative(traits: Traits, rows: np.ndarray, target: np.ndarray,
                       shift_start_day: float) -> np.ndarray:
    """The day at which ``G_i`` reaches ``target`` (per row)."""
    starts, ends, levels, kappa = _segments(traits, rows, shift_start_day)
    mass = _piece_mass(levels, kappa, ends - starts)
    before = np.cumsum(mass, axis=1) - mass
    piece = np.clip((target[:, None] > before + mass).sum(axis=1), 0, 2)
    pick = np.arange(len(rows)), piece
    rest = np.clip(target - before[pick], 0.0, None)
    share = np.clip(rest * kappa[pick] / np.maximum(levels[pick], 1e-300), 0.0, 1.0 - 1e-15)
    return starts[pick] - np.log1p(-share) / kappa[pick]


def expected_order_value(traits: Traits, params: ModelParams) -> np.ndarray:
    """E[amount] of one order before the shift (after it, times ``params.shift_price_rise``)."""
    cat_p = np.asarray(params.category_weights) / np.sum(params.category_weights)
    price_factor = np.asarray(params.category_price_factor)
    fav = params.favorite_category_share
    mean_factor = (1 - fav) * float(cat_p @ price_factor) + fav * price_factor[traits.favorite_category]
    mean_discount = traits.discount_seeking * params.mean_discount_level
    return (1.0 + traits.extra_items) * traits.unit_price * mean_factor * (1.0 - mean_discount)


def snapshot_grid(config: GenerateConfig) -> pd.DatetimeIndex:
    """The shared snapshot grid over the generated period (anchor: midnight after its last day)."""
    start = pd.Timestamp(config.start)
    last_day = start + pd.Timedelta(days=config.total_days - 1)
    return snapshot_timestamps(start, last_day, SNAPSHOT_EVERY_DAYS)


def compute_ground_truth(traits: Traits, config: GenerateConfig, params: ModelParams) -> pd.DataFrame:
    """Exact churn probability, expected orders and spend per customer and snapshot.

    Args:
        traits: customer traits.
        config: period, shift and horizon.
        params: model constants.

    Returns:
        One row per (customer signed up by the snapshot, snapshot): customer_id, event_timestamp,
        true_churn_probability, true_expected_orders, true_expected_spend, horizon_days.
    """
    snapshots = snapshot_grid(config)
    start = pd.Timestamp(config.start)
    value = expected_order_value(traits, params)
    b = config.shift_start_day
    frames = []
    for snapshot in snapshots:  # one vectorized pass per snapshot keeps memory flat
        t0 = (snapshot - start) / pd.Timedelta(days=1)
        t1 = t0 + config.horizon_days
        rows = np.flatnonzero(traits.signup_day <= t0)
        at = np.full(len(rows), 1.0)
        orders = (cumulative_orders(traits, t1 * at, b, rows) - cumulative_orders(traits, t0 * at, b, rows))
        regular = (cumulative_orders(traits, min(t1, b) * at, b, rows)
                   - cumulative_orders(traits, min(t0, b) * at, b, rows))
        frames.append(pd.DataFrame({
            "customer_id": traits.customer_id[rows],
            "event_timestamp": pd.DatetimeIndex([snapshot] * len(rows)),
            "true_churn_probability": np.exp(-orders),
            "true_expected_orders": orders,
            "true_expected_spend": value[rows] * (regular + params.shift_price_rise * (orders - regular)),
            "horizon_days": np.full(len(rows), config.horizon_days, dtype=np.int64),
        }))
    if not frames:
        return pd.DataFrame({"customer_id": pd.Series(dtype=np.int64),
                             "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                             **{c: pd.Series(dtype=np.float64) for c in
                                ("true_churn_probability", "true_expected_orders", "true_expected_spend")},
                             "horizon_days": pd.Series(dtype=np.int64)})
    return pd.concat(frames, ignore_index=True)


_HOUR_WEIGHTS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 5, 5.5,
                          6.5, 7.5, 8, 7, 5, 2.5])


def _timestamps(config: GenerateConfig, day: np.ndarray, rng: np.random.Generator) -> pd.DatetimeIndex:
    """UTC timestamps inside each given whole day, hour drawn from a daily activity profile."""
    hour = rng.choice(24, len(day), p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    second = hour * 3600 + rng.integers(0, 3600, len(day))
    start_ns = pd.Timestamp(config.start).value
    ns = start_ns + day.astype(np.int64) * _NS_PER_DAY + second.astype(np.int64) * 10**9
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def _order_days(traits: Traits, config: GenerateConfig, rate_multiplier: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Customer row and (fractional) day of each event of ``rate_multiplier * lambda``."""
    b = config.shift_start_day
    first = np.maximum(traits.signup_day, 0).astype(np.float64)
    lo = cumulative_orders(traits, first, b)
    hi = cumulative_orders(traits, np.full(len(traits), float(config.total_days)), b)
    counts = rng.poisson(rate_multiplier * (hi - lo))
    rows = np.repeat(np.arange(len(traits)), counts)
    target = lo[rows] + rng.random(len(rows)) * (hi - lo)[rows]
    day = np.empty(len(rows))
    for lo_row in range(0, len(rows), _BLOCK):  # blocks bound the memory of the (rows, 3) pieces
        block = slice(lo_row, lo_row + _BLOCK)
        day[block] = _invert_cumulative(traits, rows[block], target[block], b)
    return rows, np.clip(day, first[rows], config.total_days - 1e-9)


def draw_transactions(traits: Traits, config: GenerateConfig, params: ModelParams,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Orders of every customer over the generated period.

    Args:
        traits: customer traits.
        config: period and shift.
        params: model constants.
        rng: source of randomness.

    Returns:
        Transactions sorted by time: order_id, customer_id, event_timestamp, amount, quantity,
        category, channel, discount, returned.
    """
    rows, day = _order_days(traits, config, 1.0, rng)
    n = len(rows)
    cat_p = np.asarray(params.category_weights) / np.sum(params.category_weights)
    category = np.where(rng.random(n) < params.favorite_category_share, traits.favorite_category[rows],
                        rng.choice(len(CATEGORIES), n, p=cat_p))
    channel = np.where(rng.random(n) < 0.75, traits.order_channel[rows], rng.choice(len(ORDER_CHANNELS), n))
    quantity = 1 + rng.poisson(traits.extra_items[rows])
    unit_mean = traits.unit_price[rows] * np.asarray(params.category_price_factor)[category]
    unit = rng.gamma(4.0, unit_mean / 4.0)
    levels = np.asarray(params.discount_levels)
    level_p = np.asarray(params.discount_level_weights) / np.sum(params.discount_level_weights)
    discount = np.where(rng.random(n) < traits.discount_seeking[rows], rng.choice(levels, n, p=level_p), 0.0)
    shifted = day >= config.shift_start_day
    amount = quantity * unit * (1.0 - discount) * np.where(shifted, params.shift_price_rise, 1.0)
    return_p = np.clip(traits.return_propensity[rows] * np.asarray(params.category_return_factor)[category],
                       0.0, 0.9)
    returned = rng.random(n) < return_p
    timestamps = _timestamps(config, np.floor(day), rng)
    order = np.lexsort((traits.customer_id[rows], timestamps.asi8))
    frame = pd.DataFrame({
        "order_id": np.arange(1, n + 1, dtype=np.int64) + 1_000_000,
        "customer_id": traits.customer_id[rows][order],
        "event_timestamp": timestamps[order],
        "amount": np.round(amount, 2)[order],
        "quantity": quantity[order].astype(np.int64),
        "category": np.asarray(CATEGORIES, dtype=object)[category][order],
        "channel": np.asarray(ORDER_CHANNELS, dtype=object)[channel][order],
        "discount": discount[order],
        "returned": returned[order],
    })
    return frame


def draw_sessions(traits: Traits, config: GenerateConfig, params: ModelParams,
                  rng: np.random.Generator) -> pd.DataFrame:
    """Site and app sessions: a multiple of the order rate plus steady browsing.

    Args:
        traits: customer traits.
        config: period and shift.
        params: model constants.
        rng: source of randomness.

    Returns:
        Sessions sorted by time: customer_id, event_timestamp, page_views, duration_s, channel.
    """
    buy_rows, buy_day = _order_days(traits, config, params.sessions_per_order, rng)
    first = np.maximum(traits.signup_day, 0).astype(np.float64)
    browse_counts = rng.poisson(traits.browse_rate * (config.total_days - first))
    browse_rows = np.repeat(np.arange(len(traits)), browse_counts)
    browse_day = first[browse_rows] + rng.random(len(browse_rows)) * (config.total_days - first[browse_rows])
    rows = np.concatenate([buy_rows, browse_rows])
    day = np.concatenate([buy_day, browse_day])
    intent = np.concatenate([np.ones(len(buy_rows)), np.zeros(len(browse_rows))])
    n = len(rows)
    page_views = 1 + rng.poisson(2.0 + 4.0 * intent)
    duration = np.round(page_views * rng.gamma(2.0, 22.0, n), 1)
    app_first = traits.order_channel[rows] == ORDER_CHANNELS.index("app")
    channel = np.where(rng.random(n) < np.where(app_first, 0.8, 0.25), 1, 0)
    timestamps = _timestamps(config, np.floor(day), rng)
    order = np.lexsort((traits.customer_id[rows], timestamps.asi8))
    return pd.DataFrame({
        "customer_id": traits.customer_id[rows][order],
        "event_timestamp": timestamps[order],
        "page_views": page_views[order].astype(np.int64),
        "duration_s": duration[order],
        "channel": np.asarray(SESSION_CHANNELS, dtype=object)[channel][order],
    })


def _topic_and_polarity(traits: Traits, rows: np.ndarray, category: np.ndarray, returned: np.ndarray,
                        discount: np.ndarray, problem: np.ndarray, shifted: np.ndarray, params: ModelParams,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Topic index and complaint flag of each review (``problem``: ordered after the delivery onset)."""
    n = len(rows)
    problem = problem.astype(np.float64)
    price = traits.price_sensitivity[rows]
    sat = traits.satisfaction[rows]
    apparel = np.isin(category, [CATEGORIES.index("fashion"), CATEGORIES.index("sports")])
    weights = np.empty((n, len(TOPICS)))
    weights[:, TOPICS.index("delivery")] = (0.8 + 12.0 * problem
                                             + params.shift_delivery_complaint_boost * shifted)
    weights[:, TOPICS.index("price")] = 0.3 + 2.0 * price + 1.5 * price * shifted
    weights[:, TOPICS.index("quality")] = 1.5 + 0.5 * np.abs(sat)
    weights[:, TOPICS.index("support")] = 0.4 + 0.4 * problem
    weights[:, TOPICS.index("sizing")] = 0.1 + 1.2 * apparel + 0.8 * (returned & apparel)
    weights[:, TOPICS.index("packaging")] = 0.4
    weights[:, TOPICS.index("returns")] = 0.15 + 2.5 * returned
    weights[:, TOPICS.index("website")] = 0.4
    cumulative = np.cumsum(weights, axis=1)
    draw = rng.random(n) * cumulative[:, -1]
    topic = np.minimum((cumulative < draw[:, None]).sum(axis=1), len(TOPICS) - 1)

    p_negative = np.empty((n, len(TOPICS)))
    p_negative[:, TOPICS.index("delivery")] = np.where(problem > 0, 0.95, np.where(shifted, 0.65, 0.15))
    p_negative[:, TOPICS.index("price")] = _expit(-1.0 + 2.5 * price - 6.0 * discount + 1.0 * shifted)
    p_negative[:, TOPICS.index("quality")] = _expit(-1.0 - 1.4 * sat)
    p_negative[:, TOPICS.index("support")] = _expit(-0.6 - 1.0 * sat + 1.5 * problem)
    p_negative[:, TOPICS.index("sizing")] = np.where(returned, 0.85, _expit(-1.0 - 0.8 * sat))
    p_negative[:, TOPICS.index("packaging")] = _expit(-1.2 - 0.8 * sat)
    p_negative[:, TOPICS.index("returns")] = np.where(returned, _expit(-0.3 - 1.0 * sat), 0.3)
    p_negative[:, TOPICS.index("website")] = _expit(-1.0 - 0.8 * sat)
    negative = rng.random(n) < p_negative[np.arange(n), topic]
    return topic, negative


def draw_reviews(traits: Traits, transactions: pd.DataFrame, config: GenerateConfig, params: ModelParams,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Reviews written a few days after some orders; topic and tone follow the customer's traits.

    Args:
        traits: customer traits.
        transactions: the orders (from :func:`draw_transactions`).
        config: period and shift.
        params: model constants.
        rng: source of randomness.

    Returns:
        Reviews sorted by time: customer_id, event_timestamp, text, rating, order_id.
    """
    rows = transactions["customer_id"].to_numpy() - 1  # ids are 1..n in trait order
    returned = transactions["returned"].to_numpy()
    start_ns = pd.Timestamp(config.start).value
    order_ns = pd.DatetimeIndex(transactions["event_timestamp"]).asi8
    # Deliveries start failing `lead` days before the customer starts fading (at the onset).
    lead = params.delivery_complaint_lead_days
    problem = (order_ns - start_ns) // _NS_PER_DAY >= traits.delivery_onset[rows] - lead
    # Unhappy customers write more: returns raise the chance, a failed delivery most of all.
    p_write = np.clip(traits.review_propensity[rows] * np.where(returned, 1.5, 1.0)
                      + np.where(problem, params.delivery_problem_review_boost, 0.0), 0.0, 0.95)
    writes = np.flatnonzero(rng.random(len(rows)) < p_write)
    delay_s = np.round(rng.gamma(1.5, params.review_delay_days_mean / 1.5, len(writes)) * 86_400)
    order_ns = order_ns[writes]
    ts_ns = order_ns + delay_s.astype(np.int64) * 10**9
    end_ns = pd.Timestamp(config.start).value + config.total_days * _NS_PER_DAY
    keep = ts_ns < end_ns
    writes, ts_ns = writes[keep], ts_ns[keep]
    day = (ts_ns - pd.Timestamp(config.start).value) / _NS_PER_DAY
    category = pd.Categorical(transactions["category"].to_numpy()[writes], categories=CATEGORIES).codes
    topic, negative = _topic_and_polarity(
        traits, rows[writes], category, returned[writes], transactions["discount"].to_numpy()[writes],
        problem[writes], day >= config.shift_start_day, params, rng,
    )
    # Stars mostly rate the product, not the parcel: a delivery review's text carries the complaint
    # while its stars usually follow how the customer likes the product (as a quality review would).
    delivery = (topic == TOPICS.index("delivery")) & (rng.random(len(writes)) < params.delivery_stars_rate_product)
    product_unhappy = rng.random(len(writes)) < _expit(-1.0 - 1.4 * traits.satisfaction[rows[writes]])
    stars_negative = np.where(delivery, product_unhappy, negative)
    u = rng.random(len(writes))
    rating = np.where(stars_negative, np.select([u < 0.55, u < 0.9], [1, 2], 3),
                      np.select([u < 0.6, u < 0.93], [5, 4], 3)).astype(np.int64)
    texts = compose_reviews(topic, negative, category, rng)
    order = np.lexsort((rows[writes], ts_ns))
    return pd.DataFrame({
        "customer_id": traits.customer_id[rows[writes]][order],
        "event_timestamp": pd.DatetimeIndex(ts_ns[order].astype("datetime64[ns]")).tz_localize("UTC"),
        "text": np.asarray(texts, dtype=object)[order],
        "rating": rating[order],
        "order_id": transactions["order_id"].to_numpy()[writes][order],
    })


def customers_frame(traits: Traits, config: GenerateConfig) -> pd.DataFrame:
    """The observable customer table: customer_id, signup_date, region, acquisition_channel, age."""
    start_ns = pd.Timestamp(config.start).value
    signup_ns = start_ns + traits.signup_day.astype(np.int64) * _NS_PER_DAY
    return pd.DataFrame({
        "customer_id": traits.customer_id,
        "signup_date": pd.DatetimeIndex(signup_ns.astype("datetime64[ns]")).tz_localize("UTC"),
        "region": np.asarray(REGIONS, dtype=object)[traits.region],
        "acquisition_channel": np.asarray(ACQUISITION_CHANNELS, dtype=object)[traits.acquisition_channel],
        "age": traits.age,
    })


def _describe(config: GenerateConfig, params: ModelParams, counts: dict[str, int]) -> dict[str, object]:
    start = pd.Timestamp(config.start)
    shift_start = start + pd.Timedelta(days=config.days)
    return {
        "generator": "synthetic.generator",
        "config": {
            "customers": config.customers, "days": config.days, "seed": config.seed,
            "start": start.isoformat(), "shift_days": config.shift_days, "format": config.fmt,
            "horizon_days": config.horizon_days,
        },
        "period": {
            "start": start.isoformat(),
            "end_exclusive": (start + pd.Timedelta(days=config.total_days)).isoformat(),
            "shift_start": shift_start.isoformat() if config.shift_days else None,
        },
        "rows": counts,
        "order_rate": "lambda_i(s) = base_i * exp(-k_i * (s - signup_i) - delta * max(s - onset_i, 0)) "
                      "* g_i(s) for s >= signup_i (days); delta = delivery_onset_decay_per_year / 365; "
                      "g_i = 1 before the shift, shift_factor_i = shift_factor_max - shift_factor_price "
                      "* price_sensitivity_i from its first day on",
        "decay": "log k_i = log(decay_per_year / 365) + decay_discount * discount_seeking "
                 "+ decay_returns * return_propensity + decay_satisfaction * satisfaction + noise "
                 "(traits centred)",
        "ground_truth": {
            "file": f"ground_truth.{config.fmt}",
            "snapshots": f"every {SNAPSHOT_EVERY_DAYS} days back from the midnight after the last day "
                         "(core.timegrid.snapshot_timestamps); customers signed up by t",
            "true_churn_probability": "P(no order in (t, t + horizon_days]) = exp(-L), "
                                      "L = integral of lambda_i over the window",
            "true_expected_orders": "L",
            "true_expected_spend": "integral of lambda_i(s) * E[amount_i(s)] (up to cent rounding)",
            "beyond_the_period": "windows that reach past the generated period assume its last regime "
                                 "continues; score labels only on complete windows",
        },
        "planted_signal": [
            "order rates fade with tenure, faster for discount seekers (discount share), frequent "
            "returners (returned share) and unsatisfied customers (review tone, ratings)",
            f"a delivery problem ({params.delivery_problem_rate_rural:.0%} of customers in region 'rural', "
            f"{params.delivery_problem_rate:.0%} elsewhere) adds decay from its onset on; deliveries fail "
            f"{params.delivery_complaint_lead_days:g} days before the onset and those orders are reviewed "
            "far more often, mostly as delivery complaints, so text announces churn that behaviour "
            "shows only later; most delivery reviews' stars rate the product "
            f"({params.delivery_stars_rate_product:.0%}), so the complaint is in the words, not the stars",
            "price-sensitive customers write about prices and react most to the shift's price rise",
            "sessions track the order rate (sessions_per_order) plus steady browsing",
        ],
        "shift": ("none" if not config.shift_days else
                  f"from {shift_start.date()} for {config.shift_days} days: list prices x"
                  f"{params.shift_price_rise}, order rates x shift_factor_i (mean ~0.6, lower for "
                  "price-sensitive customers), every customer complains about delivery and price more "
                  "often (text drift without extra churn beyond the price effect)"),
        "params": asdict(params),
    }


def _readme(description: dict[str, object]) -> str:
    lines = [
        "# Synthetic Persona dataset",
        "",
        "Generated by `persona generate` (module `synthetic.generator`). Same parameters and seed, same data.",
        "",
        "Tables: customers, transactions, sessions, reviews (data-contract columns) and ground_truth",
        "(exact churn probability, expected orders and spend per customer and snapshot).",
        "",
        f"- Order rate: {description['order_rate']}",
        f"- Decay: {description['decay']}",
        "- Pieces: the rate is exponential between signup, the delivery onset and the shift start, so",
        "  every window integral has a closed form.",
        f"- Shift: {description['shift']}",
        "",
        "Planted signal:",
        *[f"- {item}" for item in description["planted_signal"]],  # type: ignore[union-attr]
        "",
        "Ground truth: `true_churn_probability` = P(no order in (t, t + horizon]) = exp(-L), where L is the",
        "integral of the order rate over the window; `true_expected_orders` = L. Windows that reach past",
        "the generated period assume its last regime continues, so score realized labels only on complete",
        "windows. All parameters are in `generator.json`.",
        "",
    ]
    return "\n".join(lines)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def generate_dataset(config: GenerateConfig, out_dir: Path,
                     params: ModelParams | None = None) -> dict[str, Path]:
    """Generate and write the synthetic dataset.

    Args:
        config: sizes, period, seed and file format.
        out_dir: directory to write into (created if missing).
        params: model constants; the documented defaults when None.

    Returns:
        Name -> written file for customers, transactions, sessions, reviews, ground_truth,
        generator (``generator.json``) and readme.

    Raises:
        PersonaError: if ``out_dir`` cannot be written.
    """
    params = params or ModelParams()
    seeds = np.random.SeedSequence(config.seed).spawn(4)
    rngs = [np.random.default_rng(s) for s in seeds]
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PersonaError(f"cannot create output directory {out_dir}: {exc.strerror}; "
                           "pick another --out") from None

    tables: dict[str, pd.DataFrame] = {}
    progress = Progress(TextColumn("[bold]generate: {task.description:<14}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                        console=Console(stderr=True))
    with progress:
        task = progress.add_task("customers", total=6)
        traits = draw_traits(config, params, rngs[0])
        tables["customers"] = customers_frame(traits, config)
        progress.update(task, advance=1, description="transactions")
        tables["transactions"] = draw_transactions(traits, config, params, rngs[1])
        progress.update(task, advance=1, description="sessions")
        tables["sessions"] = draw_sessions(traits, config, params, rngs[2])
        progress.update(task, advance=1, description="reviews")
        tables["reviews"] = draw_reviews(traits, tables["transactions"], config, params, rngs[3])
        progress.update(task, advance=1, description="ground truth")
        tables["ground_truth"] = compute_ground_truth(traits, config, params)
        progress.update(task, advance=1, description="writing files")
        paths: dict[str, Path] = {}
        try:
            for name, frame in tables.items():
                paths[name] = out_dir / f"{name}.{config.fmt}"
                _write(frame, paths[name], config.fmt)
            description = _describe(config, params, {name: len(frame) for name, frame in tables.items()})
            paths["generator"] = out_dir / "generator.json"
            paths["generator"].write_text(json.dumps(description, indent=2) + "\n")
            paths["readme"] = out_dir / "README.md"
            paths["readme"].write_text(_readme(description))
        except OSError as exc:
            raise PersonaError(f"cannot write into {out_dir}: {exc.strerror}; pick another --out") from None
        progress.update(task, advance=1, description="done")
    return paths
