"""Consent: whom campaigns and audiences may contact (read by ingest, privacy and campaigns).

Audiences and campaigns call :func:`contactable` before contacting anyone. It reads the
``consent`` attribute of the customers table (ingested like any attribute column; the customers
table is an upsert, so a later file updates consent). "No contact without it": a customer with
no recorded consent (no ``consent`` column, no row, or an empty value) is not contactable.
Values true/false, yes/no, 1/0, y/n, t/f are understood (case and spaces ignored); anything else
counts as no consent. Erased customers are gone from the customers table, so they are never
contactable either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from core import catalog
from core.contract import ENTITY_KEY

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.settings import Settings

CONSENT = "consent"
_YES = frozenset({"true", "yes", "1", "y", "t", "1.0"})


def consent_flags(values: pd.Series) -> np.ndarray:
    """Per value, whether it records consent (see the module docstring); missing means no."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).to_numpy(dtype=bool)
    text = values.astype("string").str.strip().str.lower()
    return text.isin(_YES).fillna(False).to_numpy(dtype=bool)


def contactable(settings: Settings, ids: Iterable[int]) -> np.ndarray:
    """Per id (in the order given), whether the customer consented to be contacted.

    Args:
        settings: locates the customers table (:func:`core.catalog.raw_table`).
        ids: customer ids, e.g. an audience before it is exported.

    Returns:
        A bool mask aligned with ``ids``: False without a recorded consent (the default).
    """
    wanted = np.fromiter((int(i) for i in ids), dtype=np.int64)
    path = catalog.raw_table(settings, "customers")
    if not len(wanted) or not path.exists() or CONSENT not in pq.read_schema(path).names:
        return np.zeros(len(wanted), dtype=bool)
    table = pd.read_parquet(path, columns=[ENTITY_KEY, CONSENT]).drop_duplicates(ENTITY_KEY, keep="last")
    agreed = pd.Series(consent_flags(table[CONSENT]), index=table[ENTITY_KEY].to_numpy(dtype=np.int64))
    return agreed.reindex(wanted, fill_value=False).to_numpy(dtype=bool)


__all__ = ["CONSENT", "consent_flags", "contactable"]
