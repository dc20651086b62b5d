"""Model fitting: XGBoost churn and value models and the churn baselines (data in, models out)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from training.config import XGBParams

SMALL_DATA_ROWS = 20_000
OBJECTIVES = {
    "churn": "binary:logistic",
    "orders": "reg:tweedie",
    "spend": "reg:tweedie",
    "regression": "reg:squarederror",
}
# Shape priors of the value models, as in buy-till-you-die models: other features held fixed, a
# longer time since the last order and a longer life with the same recent orders mean a lower
# purchase rate, and more recent orders a higher one. Trees extrapolate flat past the training
# range; without these directions they also fit bumps there, and a customer dormant longer than
# any training row gets a rate no training row supports (on CDNOW the predicted total over the
# holdout fell from 15% to 5% above the actual one). Churn takes the opposite directions.
VALUE_MONOTONE: dict[str, int] = {
    "recency_days": -1,
    "tenure_days": -1,
    "orders_30d": 1,
    "orders_90d": 1,
    "orders_365d": 1,
    "first_order_days": -1,
    # BG/NBD's own expectation and P(alive) (model.lifetime), when the bundle derives them
    "btyd_expected_orders": 1,
    "btyd_p_alive": 1,
}
CHURN_MONOTONE: dict[str, int] = {name: -sign for name, sign in VALUE_MONOTONE.items()}


def threads(requested: int | None, rows: int) -> int:
    """Threads for XGBoost.

    OpenMP threads spin while they wait, so on a busy machine a second thread costs far more
    than it brings (measured: 100 rounds on 300k rows, 4.7 s with one thread, 32 s with two
    while other jobs held the cores). Small data and busy machines get one thread.
    """
    if requested is not None:
        return requested
    if rows < SMALL_DATA_ROWS:
        return 1
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def fit_xgb(
    matrix: np.ndarray,
    y: np.ndarray,
    objective: str,
    params: XGBParams,
    seed: int,
    feature_names: list[str] | None = None,
    monotone: dict[str, int] | None = None,
    variance_power: float | None = None,
) -> xgb.Booster:
    """Fit one XGBoost booster with the hist method.

    Args:
        matrix: model matrix (NaN = missing).
        y: target (0/1 for ``binary:logistic``, counts or amounts for tweedie).
        objective: XGBoost objective.
        params: shared hyper-parameters.
        seed: random seed.
        feature_names: names shown in feature importance.
        monotone: ``{feature: +1 or -1}``, the direction the prediction must follow in each named
            feature (others are free); needs ``feature_names`` and ``params.monotone``.
        variance_power: Tweedie variance power for ``reg:tweedie`` (None: ``params.tweedie_variance_power``).
    """
    dtrain = xgb.DMatrix(
        matrix.astype(np.float32), label=np.asarray(y, dtype=float), feature_names=feature_names
    )
    booster_params = {
        "objective": objective,
        "eta": params.learning_rate,
        "max_depth": params.max_depth,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "min_child_weight": params.min_child_weight,
        "tree_method": "hist",
        "nthread": threads(params.n_jobs, len(matrix)),
        "seed": seed,
        "verbosity": 0,
    }
    constraints = monotone_constraints(feature_names, monotone if params.monotone else None)
    if constraints:
        booster_params["monotone_constraints"] = constraints
    if objective == "reg:tweedie":
        booster_params["tweedie_variance_power"] = (
            params.tweedie_variance_power if variance_power is None else variance_power
        )
    if objective == "binary:logistic":
        rate = float(np.clip(np.mean(y), 1e-3, 1 - 1e-3)) if len(y) else 0.5
        booster_params["base_score"] = rate
    return xgb.train(booster_params, dtrain, num_boost_round=params.n_estimators)


def monotone_constraints(feature_names: list[str] | None, monotone: dict[str, int] | None) -> str | None:
    """XGBoost's ``(d1,d2,...)`` constraint string in matrix order; None when no named feature is constrained."""
    if not feature_names or not monotone:
        return None
    signs = [int(monotone.get(name, 0)) for name in feature_names]
    if not any(signs):
        return None
    return "(" + ",".join(str(sign) for sign in signs) + ")"


def predict_xgb(booster: xgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """Predictions on the response scale (probability, expected count or amount)."""
    if len(matrix) == 0:
        return np.zeros(0)
    return np.asarray(booster.inplace_predict(matrix.astype(np.float32)), dtype=float)


def feature_importance(booster: xgb.Booster, top: int = 20) -> pd.Series:
    """Total gain per feature, largest first."""
    gain = booster.get_score(importance_type="total_gain")
    return pd.Series(gain, dtype=float).sort_values(ascending=False).head(top)


def fit_logreg(matrix: np.ndarray, y: np.ndarray, seed: int) -> Pipeline:
    """Logistic-regression baseline on an imputed matrix (standardized inside the pipeline)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=1.0, random_state=seed))
    return model.fit(np.nan_to_num(matrix), np.asarray(y, dtype=int))


def rfm_score(frame: pd.DataFrame) -> np.ndarray:
    """The RFM heuristic: churn risk rises with recency and falls with frequency and spend.

    Each of recency, frequency (``orders_365d``) and monetary (``spend_365d``) becomes a
    percentile rank; the score is their mean (risk-oriented), in [0, 1].
    """

    def pct(col: str, ascending: bool) -> pd.Series:
        if col not in frame.columns:
            return pd.Series(0.5, index=frame.index)
        values = pd.to_numeric(frame[col], errors="coerce")
        fill = values.max() if col == "recency_days" else 0.0
        return values.fillna(fill if pd.notna(fill) else 0.0).rank(pct=True, ascending=ascending)

    risk = (pct("recency_days", True) + pct("orders_365d", False) + pct("spend_365d", False)) / 3.0
    return risk.to_numpy(dtype=float)


@dataclass(frozen=True)
class ScoreCalibrator:
    """Platt scaling of a heuristic score into a probability (so log loss and Brier mean something)."""

    slope: float
    intercept: float

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Probabilities for raw heuristic scores."""
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(score, dtype=float) + self.intercept)))


def fit_calibrator(score: np.ndarray, y: np.ndarray) -> ScoreCalibrator:
    """Fit Platt scaling of ``score`` on labels ``y``."""
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        rate = float(np.clip(y.mean() if len(y) else 0.5, 1e-3, 1 - 1e-3))
        return ScoreCalibrator(0.0, float(np.log(rate / (1 - rate))))
    lr = LogisticRegression(C=1e6, max_iter=200).fit(np.asarray(score, dtype=float).reshape(-1, 1), y)
    return ScoreCalibrator(float(lr.coef_[0, 0]), float(lr.intercept_[0]))
