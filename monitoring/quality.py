"""Model quality once labels have matured: churn metrics of past predictions vs at training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training import metrics as M
from training.labels import make_labels

if TYPE_CHECKING:
    from collections.abc import Mapping

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class QualityCheck:
    """Churn metrics on matured predictions next to the champion's metrics at training.

    Attributes:
        rows: labelled prediction rows.
        current: ``roc_auc, pr_auc, log_loss, brier, ece`` on those rows (empty without rows).
        reference: the same metrics from the champion's training run (its holdout).
        churn_rate: observed churn rate of those rows.
        sources: rows per source (``prediction_log``, ``snapshot``).
    """

    rows: int
    current: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    churn_rate: float | None = None
    sources: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data for the summary JSON."""
        return {"rows": self.rows, "current": self.current, "reference": self.reference,
                "churn_rate": self.churn_rate, "sources": self.sources}


def matured_mask(times: pd.Series, label_cutoff: pd.Timestamp, horizon_days: int) -> pd.Series:
    """Whether each prediction's label window ``(t, t + horizon]`` ended by ``label_cutoff``."""
    ts = pd.to_datetime(times, utc=True)
    return (ts + pd.Timedelta(days=horizon_days)) <= pd.Timestamp(label_cutoff)


def label_predictions(predictions: pd.DataFrame, transactions: pd.DataFrame,
                      horizon_days: int) -> pd.DataFrame:
    """Attach the actual churn label to predictions made at ``event_timestamp``.

    Args:
        predictions: ``customer_id, event_timestamp, churn_probability`` (+ anything else).
        transactions: ``customer_id, event_timestamp, amount``.
        horizon_days: the churn horizon the model was trained for.

    Returns:
        ``predictions`` with ``churned``, ``future_orders`` and ``future_spend``.
    """
    if predictions.empty:
        return predictions.assign(churned=pd.Series(dtype="int64"))
    frame = predictions.copy()
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    return make_labels(frame, transactions, horizon_days)


def reference_quality(run_metrics: Mapping[str, float]) -> dict[str, float]:
    """The champion's churn metrics from its training run (``churn_roc_auc`` -> ``roc_auc``)."""
    names = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
    return {name: float(run_metrics[f"churn_{name}"]) for name in names if f"churn_{name}" in run_metrics}


def quality_check(labelled: pd.DataFrame, reference: Mapping[str, float],
                  sources: Mapping[str, int] | None = None) -> QualityCheck:
    """Churn metrics of labelled predictions.

    Args:
        labelled: ``churned`` and ``churn_probability`` per row.
        reference: the champion's metrics at training (see :func:`reference_quality`).
        sources: rows per source, reported as is.
    """
    rows = labelled.dropna(subset=["churned", "churn_probability"]) if len(labelled) else labelled
    if rows.empty:
        return QualityCheck(0, {}, dict(reference), None, dict(sources or {}))
    y = rows["churned"].to_numpy(int)
    current = M.classification_metrics(y, rows["churn_probability"].to_numpy(float))
    current = {k: float(v) for k, v in current.items()}
    return QualityCheck(len(rows), current, dict(reference), float(np.mean(y)), dict(sources or {}))
