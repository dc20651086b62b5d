"""A small labelled feature frame for training tests (no Feast needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

BEHAVIOR = (
    "recency_days",
    "tenure_days",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "avg_order_value_365d",
    "order_trend",
    "mean_days_between_orders",
    "return_share_365d",
    "discount_share_365d",
    "sessions_30d",
    "sessions_90d",
    "review_count_365d",
    "mean_rating_365d",
)


def make_training_frame(
    customers: int = 300,
    snapshots: int = 4,
    seed: int = 0,
    start: str = "2024-01-07",
    every_days: int = 7,
    interaction: float = 0.0,
) -> pd.DataFrame:
    """Customers x snapshots with profile, behavior and text features and churn/value labels.

    Churn falls with activity (latent rate) and rises with negative review sentiment, so both
    behavior and text carry signal. ``interaction`` adds that much log-odds of churn for bargain
    hunters who are unhappy (a rule a tree finds and a linear baseline cannot), so a test can
    give the boosted model a real edge over the run's logistic baseline.
    """
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 1.0, customers)  # orders per month
    mood = rng.normal(0, 1, customers)  # review sentiment
    bargain = rng.beta(2, 5, customers)
    regions = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, customers)]
    channels = np.array(["organic", "paid_search", "social"])[rng.integers(0, 3, customers)]
    ages = rng.integers(18, 80, customers)
    rows = []
    for s in range(snapshots):
        t = pd.Timestamp(start, tz="UTC") + pd.Timedelta(days=every_days * s)
        drift = rate * rng.lognormal(0, 0.2, customers)
        orders_365 = rng.poisson(drift * 12)
        spend_365 = orders_365 * rng.gamma(5, 10, customers)
        logit = 1.0 - 1.3 * np.log1p(drift) - 0.8 * mood
        logit = logit + interaction * ((bargain > 0.3) & (mood < 0)) - interaction / 4
        churn_p = 1 / (1 + np.exp(-logit))
        churned = (rng.random(customers) < churn_p).astype(int)
        future_orders = np.where(churned == 1, 0, rng.poisson(drift * 3) + 1)
        frame = pd.DataFrame(
            {
                "customer_id": np.arange(1, customers + 1, dtype="int64"),
                "event_timestamp": t,
                "region": regions,
                "acquisition_channel": channels,
                "age": ages,
                "recency_days": rng.exponential(30 / (drift + 0.1)),
                "tenure_days": rng.uniform(30, 900, customers) + every_days * s,
                "orders_30d": rng.poisson(drift),
                "orders_90d": rng.poisson(drift * 3),
                "orders_365d": orders_365,
                "spend_30d": rng.gamma(1 + drift, 20),
                "spend_90d": rng.gamma(1 + 3 * drift, 20),
                "spend_365d": spend_365,
                "avg_order_value_365d": np.where(
                    orders_365 > 0, spend_365 / np.maximum(orders_365, 1), np.nan
                ),
                "order_trend": rng.normal(0, 1, customers),
                "mean_days_between_orders": 30 / (drift + 0.05),
                "return_share_365d": rng.beta(1, 9, customers),
                "discount_share_365d": bargain,
                "sessions_30d": rng.poisson(drift * 2),
                "sessions_90d": rng.poisson(drift * 6),
                "review_count_365d": rng.poisson(1.5, customers),
                "mean_rating_365d": np.clip(3 + mood + rng.normal(0, 0.3, customers), 1, 5),
                "sentiment_mean_365d": np.tanh(mood + rng.normal(0, 0.3, customers)),
                "churned": churned,
                "future_orders": future_orders,
                "future_spend": future_orders * rng.gamma(5, 10, customers),
            }
        )
        for k in range(8):
            frame[f"text_pca_{k}"] = (mood if k == 0 else rng.normal(0, 1, customers)) * 0.5
        no_reviews = frame["review_count_365d"] == 0
        text_cols = [f"text_pca_{k}" for k in range(8)] + ["sentiment_mean_365d", "mean_rating_365d"]
        frame.loc[no_reviews, text_cols] = np.nan
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)
