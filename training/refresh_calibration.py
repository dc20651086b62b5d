"""Churn calibration refreshed on matured rows, the boosters untouched (pure; part of the label-free refresh).

While churn and value wait for labels that cover a drift, some labels have still matured since the
champion's training window (before the drift). They cannot retrain the boosters on the shift, but
they can say whether the champion's probabilities are still calibrated. A logistic (Platt) map on the
log-odds is fitted on half of those customers (seeded, by customer) and judged on the other half: it
is accepted only when it lowers the Brier score by ``min_brier_gain`` and costs at most
``max_auc_loss`` of ROC AUC. The map is strictly increasing (a slope that is not positive is
refused), stored as a fine piecewise-linear grid, so the ranking, and with it the AUC, is kept.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from model.calibration import CALIBRATION_KEY, calibrate_churn, without_calibration
from training import metrics as M

if TYPE_CHECKING:
    import pandas as pd

    from model.bundle import PersonaPredictor

MIN_ROWS = 200
GRID_POINTS = 399  # the map's knots inside (0, 1); the ends map 0 and 1 through the same curve
MIN_BRIER_GAIN = 0.001
MAX_AUC_LOSS = 0.005


def fit_calibration(
    champion: PersonaPredictor, matured: pd.DataFrame | None, seed: int = 7, min_rows: int = MIN_ROWS
) -> tuple[dict | None, dict[str, float], str]:
    """An isotonic churn map fitted on half of ``matured``'s customers, measured on the other half.

    Args:
        champion: the champion bundle (its boosters' own probabilities are recalibrated; an earlier
            map is replaced, and what it served is the "before").
        matured: rows after the champion's training window whose labels matured: its feature columns,
            ``customer_id`` and ``churned``.
        seed: the customer split's seed.
        min_rows: fewer matured rows fit nothing.

    Returns:
        ``(map or None, metrics, note)``: the map (``{"x": [...], "y": [...]}``), the Brier score,
        ECE and AUC before and after on the held-out half, and why nothing was fitted.
    """
    from sklearn.linear_model import LogisticRegression

    rows = 0 if matured is None else len(matured)
    metrics = {"calibration_rows": float(rows)}
    if matured is None or rows < min_rows:
        return None, metrics, f"{rows} rows with matured labels after the champion's training window (needs {min_rows})"
    y = matured["churned"].to_numpy(int)
    customers = matured["customer_id"].to_numpy()
    unique = np.unique(customers)
    held = set(np.random.default_rng(seed).permutation(unique)[: len(unique) // 2].tolist())
    evaluate = np.array([c in held for c in customers])
    if len(np.unique(y[~evaluate])) < 2 or len(np.unique(y[evaluate])) < 2:
        return None, metrics, "the matured rows hold one churn class in a half: nothing to calibrate on"
    raw = dataclasses.replace(champion, metadata=without_calibration(champion.metadata))
    p_raw = raw.predict(matured)["churn_probability"].to_numpy()
    p_served = champion.predict(matured)["churn_probability"].to_numpy()
    platt = LogisticRegression(C=1e6).fit(_logit(p_raw[~evaluate])[:, None], y[~evaluate])
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    if not slope > 0:
        return None, metrics, f"the matured rows rank churn the other way round (slope {slope:.3f}): calibration kept"
    grid = np.concatenate([[0.0], np.linspace(0.0005, 0.9995, GRID_POINTS), [1.0]])
    mapping = {"x": [float(v) for v in grid],
               "y": [float(v) for v in 1 / (1 + np.exp(-(slope * _logit(grid) + intercept)))]}
    metrics.update({"calibration_slope": slope, "calibration_intercept": intercept})
    p_new = calibrate_churn({CALIBRATION_KEY: mapping}, p_raw[evaluate])
    before = M.classification_metrics(y[evaluate], p_served[evaluate])
    after = M.classification_metrics(y[evaluate], p_new)
    for name in ("brier", "ece", "roc_auc"):
        metrics[f"calibration_{name}_before"] = float(before[name])
        metrics[f"calibration_{name}_after"] = float(after[name])
    metrics["calibration_eval_rows"] = float(evaluate.sum())
    return mapping, metrics, ""


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def calibration_verdict(
    metrics: dict[str, float], min_brier_gain: float = MIN_BRIER_GAIN, max_auc_loss: float = MAX_AUC_LOSS
) -> tuple[bool, str]:
    """Whether the refitted map is accepted, and the one-line reason (a gain of exactly ``min_brier_gain`` is)."""
    if "calibration_brier_after" not in metrics:
        return False, "calibration kept"
    before, after = metrics["calibration_brier_before"], metrics["calibration_brier_after"]
    auc_before, auc_after = metrics["calibration_roc_auc_before"], metrics["calibration_roc_auc_after"]
    gain, loss = before - after, auc_before - auc_after
    text = (f"churn calibration on {int(metrics.get('calibration_eval_rows', 0)):,} held-out matured rows: "
            f"Brier {after:.4f} vs {before:.4f} (gain {gain:+.4f}, needs {min_brier_gain:+.4f}), "
            f"ROC AUC {auc_after:.4f} vs {auc_before:.4f}")
    if not (np.isfinite(gain) and np.isfinite(loss)) or gain < min_brier_gain or loss > max_auc_loss:
        return False, f"{text}: calibration kept"
    return True, f"{text}: recalibrated"
