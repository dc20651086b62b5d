"""The order process and its exact ground truth.

Orders are an inhomogeneous Poisson process whose rate is exponential between three breakpoints
(signup, the delivery onset, the shift start), so the expected number of orders in any window,
``G_i(t1) - G_i(t0)``, has a closed form: :func:`cumulative_orders` gives it, the ground truth
uses it (``P(churned) = exp(-L)``), and drawing orders inverts it (:func:`invert_cumulative`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.timegrid import snapshot_timestamps
from synthetic.config import NEVER, NS_PER_DAY, SNAPSHOT_EVERY_DAYS
from synthetic.review_text import CATEGORIES
from synthetic.traits import ORDER_CHANNELS

if TYPE_CHECKING:
    from synthetic.config import GenerateConfig, ModelParams
    from synthetic.traits import Traits

_BLOCK = 500_000


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


def invert_cumulative(traits: Traits, rows: np.ndarray, target: np.ndarray,
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


def event_timestamps(config: GenerateConfig, day: np.ndarray, rng: np.random.Generator) -> pd.DatetimeIndex:
    """UTC timestamps inside each given whole day, hour drawn from a daily activity profile."""
    hour = rng.choice(24, len(day), p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    second = hour * 3600 + rng.integers(0, 3600, len(day))
    start_ns = pd.Timestamp(config.start).value
    ns = start_ns + day.astype(np.int64) * NS_PER_DAY + second.astype(np.int64) * 10**9
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def order_days(traits: Traits, config: GenerateConfig, rate_multiplier: float,
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
        day[block] = invert_cumulative(traits, rows[block], target[block], b)
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
    rows, day = order_days(traits, config, 1.0, rng)
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
    timestamps = event_timestamps(config, np.floor(day), rng)
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



__all__ = [
    "compute_ground_truth",
    "cumulative_orders",
    "draw_transactions",
    "event_timestamps",
    "expected_order_value",
    "invert_cumulative",
    "order_days",
    "snapshot_grid",
]
