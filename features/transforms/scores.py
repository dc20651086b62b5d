"""Scoring output as rows of the ``customer_scores`` source (:mod:`store.scores_source`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from store.scores_source import CREATED, ENTITY_KEY, TIMESTAMP, scores_schema


def scores_frame(
    scored: pd.DataFrame, as_of: pd.Timestamp, created: pd.Timestamp, model: str, version: str
) -> pa.Table:
    """Source rows from scoring output (``customer_id``, prediction columns, ``segment``).

    Args:
        scored: one row per customer; ``p_alive`` is taken when present.
        as_of: the scoring time (the rows' event time).
        created: when they were written (newest wins for equal event times).
        model: the registered model.
        version: its version.
    """
    n = len(scored)
    columns = {
        ENTITY_KEY: scored[ENTITY_KEY].astype("int64").to_numpy(),
        TIMESTAMP: np.full(n, pd.Timestamp(as_of).tz_convert("UTC")),
        CREATED: np.full(n, pd.Timestamp(created).tz_convert("UTC")),
        "churn_probability": scored["churn_probability"].astype(float).to_numpy(),
        "expected_orders": scored["expected_orders"].astype(float).to_numpy(),
        "expected_spend": scored["expected_spend"].astype(float).to_numpy(),
        "p_alive": scored["p_alive"].astype(float).to_numpy() if "p_alive" in scored else np.full(n, np.nan),
        "persona_id": scored["segment"].astype("int64").to_numpy(),
        "persona": scored["persona"].astype(str).to_numpy(),
        "action": scored["action"].astype(str).to_numpy(),
        "model": np.full(n, model, dtype=object),
        "model_version": np.full(n, str(version), dtype=object),
    }
    return pa.Table.from_pandas(pd.DataFrame(columns), schema=scores_schema(), preserve_index=False)
