"""Model quality metrics: pure functions of labels and predictions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins.

    Args:
        y_true: binary labels (0/1).
        prob: predicted probabilities of the positive class.
        bins: number of equal-width bins on [0, 1].

    Returns:
        The size-weighted mean of |observed rate - mean predicted probability| per bin.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(prob, dtype=float), 0.0, 1.0)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def classification_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier score and calibration error of probabilities.

    Args:
        y_true: binary labels (0/1).
        prob: predicted probabilities of the positive class.

    Returns:
        ``{"roc_auc", "pr_auc", "log_loss", "brier", "ece"}``; AUCs are NaN when only one class occurs.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(prob, dtype=float), 1e-6, 1 - 1e-6)
    two_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
    }


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or empty."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and Pearson correlation of predictions with outcomes.

    Returns:
        ``{"mae", "rmse", "corr"}``.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(pred, dtype=float)
    err = p - y
    return {
        "mae": float(np.mean(np.abs(err))) if len(y) else float("nan"),
        "rmse": float(np.sqrt(np.mean(err**2))) if len(y) else float("nan"),
        "corr": correlation(y, p),
    }


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{"roc_auc": x}`` -> ``{"<prefix>_roc_auc": x}`` (the names logged to MLflow)."""
    return {f"{prefix}_{name}": value for name, value in metrics.items()}
