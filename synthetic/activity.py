"""Sessions and reviews: activity around the orders, shaped by the same traits.

Sessions track the order rate plus steady browsing. Reviews follow some orders a few days later;
their topic and tone depend on the traits, and failing deliveries make customers write more,
mostly complaints, before their orders fade (the text announces churn before behaviour shows it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from synthetic.config import NS_PER_DAY
from synthetic.orders import event_timestamps, order_days
from synthetic.review_text import CATEGORIES, TOPICS, compose_reviews
from synthetic.traits import ORDER_CHANNELS, SESSION_CHANNELS, expit

if TYPE_CHECKING:
    from synthetic.config import GenerateConfig, ModelParams
    from synthetic.traits import Traits


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
    buy_rows, buy_day = order_days(traits, config, params.sessions_per_order, rng)
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
    timestamps = event_timestamps(config, np.floor(day), rng)
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
    p_negative[:, TOPICS.index("price")] = expit(-1.0 + 2.5 * price - 6.0 * discount + 1.0 * shifted)
    p_negative[:, TOPICS.index("quality")] = expit(-1.0 - 1.4 * sat)
    p_negative[:, TOPICS.index("support")] = expit(-0.6 - 1.0 * sat + 1.5 * problem)
    p_negative[:, TOPICS.index("sizing")] = np.where(returned, 0.85, expit(-1.0 - 0.8 * sat))
    p_negative[:, TOPICS.index("packaging")] = expit(-1.2 - 0.8 * sat)
    p_negative[:, TOPICS.index("returns")] = np.where(returned, expit(-0.3 - 1.0 * sat), 0.3)
    p_negative[:, TOPICS.index("website")] = expit(-1.0 - 0.8 * sat)
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
    problem = (order_ns - start_ns) // NS_PER_DAY >= traits.delivery_onset[rows] - lead
    # Unhappy customers write more: returns raise the chance, a failed delivery most of all.
    p_write = np.clip(traits.review_propensity[rows] * np.where(returned, 1.5, 1.0)
                      + np.where(problem, params.delivery_problem_review_boost, 0.0), 0.0, 0.95)
    writes = np.flatnonzero(rng.random(len(rows)) < p_write)
    delay_s = np.round(rng.gamma(1.5, params.review_delay_days_mean / 1.5, len(writes)) * 86_400)
    order_ns = order_ns[writes]
    ts_ns = order_ns + delay_s.astype(np.int64) * 10**9
    end_ns = pd.Timestamp(config.start).value + config.total_days * NS_PER_DAY
    keep = ts_ns < end_ns
    writes, ts_ns = writes[keep], ts_ns[keep]
    day = (ts_ns - pd.Timestamp(config.start).value) / NS_PER_DAY
    category = pd.Categorical(transactions["category"].to_numpy()[writes], categories=CATEGORIES).codes
    topic, negative = _topic_and_polarity(
        traits, rows[writes], category, returned[writes], transactions["discount"].to_numpy()[writes],
        problem[writes], day >= config.shift_start_day, params, rng,
    )
    # Stars mostly rate the product, not the parcel: a delivery review's text carries the complaint
    # while its stars usually follow how the customer likes the product (as a quality review would).
    delivery = (topic == TOPICS.index("delivery")) & (rng.random(len(writes)) < params.delivery_stars_rate_product)
    product_unhappy = rng.random(len(writes)) < expit(-1.0 - 1.4 * traits.satisfaction[rows[writes]])
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


__all__ = ["draw_reviews", "draw_sessions"]
