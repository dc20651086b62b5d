"""The uplift training set: matured exposures, their outcomes and features as of the contact.

Every exposure whose response window has ended becomes a row: the campaign's offer, the group,
the outcomes (:mod:`campaign.outcomes`) and the features of the feature service at the latest
snapshot at or before the contact (Feast's point-in-time join,
:func:`features.dataset.build_training_set`), so nothing the campaign caused leaks into its own
features. The latest campaign start is held out: a randomized campaign the model never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from campaign.outcomes import campaign_outcomes
from core import catalog
from core.contract import ENTITY_KEY, TIMESTAMP
from core.errors import PersonaError
from training.data import read_transactions

if TYPE_CHECKING:
    from core.settings import Settings

NOT_FEATURES = ("campaign_id", "group", "offer", "consent", "response_days", "cost_per_contact", "value_per_conversion",
                "window_end", "converted", "orders", "spend", "start", "created_timestamp", "_row_id",
                ENTITY_KEY, TIMESTAMP)


def read_table(settings: Settings, table: str) -> pd.DataFrame:
    """An ingested campaign table.

    Raises:
        PersonaError: nothing ingested yet.
    """
    path = catalog.raw_table(settings, table)
    if not path.exists():
        raise PersonaError(f"no {table} ingested yet; run `persona ingest --campaigns FILE --exposures FILE` first")
    return pd.read_parquet(path)


def matured_outcomes(settings: Settings, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Exposures whose window ended by ``as_of`` (default: the last transaction) with outcomes and start."""
    campaigns = read_table(settings, "campaigns")
    exposures = read_table(settings, "exposures")
    transactions = read_transactions(settings)
    if as_of is None:
        as_of = pd.to_datetime(transactions[TIMESTAMP], utc=True).max()
    out = campaign_outcomes(exposures, campaigns, transactions, as_of)
    starts = campaigns.drop_duplicates("campaign_id", keep="last").set_index("campaign_id")["start"]
    out["start"] = out["campaign_id"].map(starts)
    return out


@dataclass
class UpliftSplit:
    """Rows to learn from and the held-out campaign(s) (the latest start)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    holdout_campaigns: list[str]


def split_latest(frame: pd.DataFrame) -> UpliftSplit:
    """Hold out every campaign that started last; learn from the earlier ones.

    Raises:
        PersonaError: fewer than two campaign starts (nothing to hold out, or nothing to learn from).
    """
    starts = pd.to_datetime(frame["start"], utc=True)
    if starts.nunique() < 2:
        raise PersonaError(f"uplift training needs matured campaigns of at least two start dates (found "
                           f"{starts.nunique()}); the latest is held out to evaluate on")
    latest = starts == starts.max()
    features = [c for c in frame.columns if c not in NOT_FEATURES and not c.startswith("true_")]
    holdout = frame[latest.to_numpy()].reset_index(drop=True)
    return UpliftSplit(frame[~latest.to_numpy()].reset_index(drop=True), holdout, features,
                       sorted(holdout["campaign_id"].astype(str).unique()))


def build(settings: Settings, feature_service: str, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Matured exposures with outcomes and point-in-time features (see the module docstring)."""
    from features.dataset import build_training_set

    rows = matured_outcomes(settings, as_of)
    if rows.empty:
        raise PersonaError("no campaign has a matured response window yet; wait for the window to end or "
                           "ingest later transactions")
    return build_training_set(settings, rows, feature_service)


__all__ = ["NOT_FEATURES", "UpliftSplit", "build", "matured_outcomes", "read_table", "split_latest"]
