"""Shared helpers for the serving unit tests."""

from __future__ import annotations

import datetime as dt

import numpy as np

from serving.prediction_log import LogBatch

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def log_batch(
    request_id: str,
    ids: list[int],
    version: str = "1",
    served_at: dt.datetime = T0,
    columns: tuple[str, ...] = ("orders_90d",),
) -> LogBatch:
    n = len(ids)
    return LogBatch(
        request_id=request_id,
        served_at=served_at,
        endpoint="predict",
        model_version=version,
        customer_ids=ids,
        features={},
        predictions={"churn_probability": np.linspace(0.1, 0.2, n), "persona": np.array(["p"] * n, object)},
        reasons=[None] * n,
        numeric_columns=columns,
        numeric=np.arange(n * len(columns), dtype=float).reshape(n, -1),
        string_columns=("region",),
        strings=np.array([["north"]] * n, dtype=object),
        feature_order=(*columns, "region"),
    )
