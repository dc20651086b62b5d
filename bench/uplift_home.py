"""An uplift champion for the serving benchmark, so ``/predict`` is measured as it is served with one.

The serving home has no campaigns; three randomized offers over its customers' latest features
(recent buyers answer a discount, everyone a little the rest) give the X-learner something to
learn, at the default model size (:class:`campaign.uplift.UpliftConfig`). Its quality does not
matter here, only that every ``/predict`` answer carries each offer's uplift and the next best
action, as with a real uplift champion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from core.settings import Settings

OFFERS = (("discount", 1.0), ("free_delivery", 0.5), ("apology_voucher", 1.5))


def campaigns_frame(features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Two matured randomized waves of the three offers over ``features``' customers, with outcomes."""
    rng = np.random.default_rng(seed)
    recent = features["orders_90d"].fillna(0).to_numpy() > 0
    parts = []
    for k, start in enumerate(("2025-03-01", "2025-05-01")):
        offer = rng.integers(0, len(OFFERS), len(features))
        treated = rng.random(len(features)) < 0.5
        effect = np.select([offer == 0, offer == 1], [np.where(recent, 0.25, -0.05), 0.08], 0.04)
        converted = (rng.random(len(features)) < 0.2 + treated * effect).astype(np.int64)
        parts.append(features.assign(
            campaign_id=[f"w{k}-{OFFERS[o][0]}" for o in offer],
            offer=[OFFERS[o][0] for o in offer],
            cost_per_contact=[OFFERS[o][1] for o in offer],
            start=pd.Timestamp(start, tz="UTC"),
            group=np.where(treated, "treatment", "control"),
            converted=converted, orders=converted, spend=40.0 * converted,
        ))
    return pd.concat(parts, ignore_index=True)


def register_uplift_champion(settings: Settings) -> str:
    """Train an uplift model on :func:`campaigns_frame` and make it the uplift champion; its version."""
    from campaign.plan import latest_features
    from campaign.train import UpliftJob
    from core.runtime import using
    from model.registry import configure_mlflow, move_alias

    with using(settings):
        features = latest_features(settings, "churn_model_v1")
        result = UpliftJob(settings).run(frame=campaigns_frame(features), churn=None)
    if result.decision.alias != "champion":
        move_alias(configure_mlflow(settings), result.model_name, "champion", result.version, "serving benchmark")
    return str(result.version)


__all__ = ["campaigns_frame", "register_uplift_champion"]
