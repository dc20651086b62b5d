"""Small randomized campaigns with a planted, known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd


def planted_campaign(n: int = 3000, seed: int = 0, start: str = "2024-06-01", campaign: str = "c1",
                     offer: str = "discount") -> pd.DataFrame:
    """Exposures with outcomes and their true effects.

    Conversion is 0.3 without contact; a contact adds 0.4 where x > 0 and takes 0.2 away where
    x <= 0 (customers it puts off); spend is 50 per conversion.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    treated = rng.random(n) < 0.5
    effect = np.where(x > 0, 0.4, -0.2)
    converted = (rng.random(n) < 0.3 + treated * effect).astype(np.int64)
    return pd.DataFrame({
        "customer_id": np.arange(n) + 1, "campaign_id": campaign, "offer": offer,
        "event_timestamp": pd.Timestamp(start, tz="UTC"), "start": pd.Timestamp(start, tz="UTC"),
        "group": np.where(treated, "treatment", "control"), "x": x, "noise": rng.normal(size=n),
        "converted": converted, "orders": converted, "spend": 50.0 * converted,
        "true_uplift_conversion": effect, "true_uplift_spend": 50.0 * effect,
    })
