"""Holdout metrics of a fitted bundle: churn and value, a custom target, and the generator's oracle.

Pure functions of labelled rows and predictions; the champion is scored with the same ones, on
the same holdout, so the gate compares like with like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY, TIMESTAMP
from training import btyd
from training import metrics as M

if TYPE_CHECKING:
    from model.bundle import PersonaPredictor

BTYD_FIT_ROWS = 50_000  # customers per snapshot the BTYD baseline is fitted on


def persona_metrics(holdout: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """All churn and value metrics of a persona bundle's predictions on labelled rows."""
    out = M.prefixed("churn", M.classification_metrics(holdout["churned"], predictions["churn_probability"]))
    out.update(
        M.prefixed("orders", M.regression_metrics(holdout["future_orders"], predictions["expected_orders"]))
    )
    out.update(
        M.prefixed("spend", M.regression_metrics(holdout["future_spend"], predictions["expected_spend"]))
    )
    return out


def oracle_metrics(holdout: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """Compare with the generator's ground truth on rows that have it (oracle AUC, value correlations)."""
    known = holdout["true_churn_probability"].notna().to_numpy()
    if not known.any():
        return {}
    y = holdout["churned"].to_numpy(int)[known]
    oracle = M.classification_metrics(y, holdout["true_churn_probability"].to_numpy(float)[known])
    model_auc = M.classification_metrics(y, predictions["churn_probability"].to_numpy()[known])["roc_auc"]
    out = M.prefixed("oracle_churn", oracle)
    out["oracle_gap_roc_auc"] = oracle["roc_auc"] - model_auc
    out["ground_truth_rows"] = float(known.sum())
    out["spend_corr_truth"] = M.correlation(
        predictions["expected_spend"].to_numpy()[known], holdout["true_expected_spend"].to_numpy(float)[known]
    )
    if "true_expected_orders" in holdout:
        out["orders_corr_truth"] = M.correlation(
            predictions["expected_orders"].to_numpy()[known],
            holdout["true_expected_orders"].to_numpy(float)[known],
        )
    out["churn_prob_corr_truth"] = M.correlation(
        predictions["churn_probability"].to_numpy()[known],
        holdout["true_churn_probability"].to_numpy(float)[known],
    )
    return out


def target_metrics(predictor: PersonaPredictor, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of a custom-target predictor on labelled rows, prefixed with the target name."""
    assert predictor.target is not None
    pred = predictor.predict(holdout)["prediction"].to_numpy()
    y = holdout[predictor.target].to_numpy(float)
    raw = (
        M.classification_metrics(y, pred)
        if predictor.task == "classification"
        else M.regression_metrics(y, pred)
    )
    return M.prefixed(predictor.target, raw)


def bundle_metrics(predictor: PersonaPredictor, frame: pd.DataFrame) -> dict[str, float]:
    """The metrics the gate compares for any bundle kind (persona or custom target)."""
    if predictor.kind == "target":
        return target_metrics(predictor, frame)
    return persona_metrics(frame, predictor.predict(frame))


def btyd_holdout_predictions(
    holdout: pd.DataFrame, transactions: pd.DataFrame, horizon_days: int
) -> pd.DataFrame | None:
    """The BTYD baseline's ``expected_orders``, ``expected_spend`` and ``p_alive`` per holdout row.

    BG/NBD and Gamma-Gamma are fitted on each holdout snapshot's own calibration window (the
    orders at or before the snapshot, which the model's features see too) and predict the
    next ``horizon_days``; the fit sees at most :data:`BTYD_FIT_ROWS` customers per snapshot (four
    parameters need no more, and the likelihood is evaluated a few thousand times).
    ``None`` when no holdout row has an order.
    """
    keys = holdout[[ENTITY_KEY, TIMESTAMP]]
    summary = btyd.summarize(keys, transactions)
    if not (summary["n"] > 0).any():
        return None
    parts = []
    for _, rows in summary.groupby(keys[TIMESTAMP].to_numpy(), sort=False):
        calibration = rows if len(rows) <= BTYD_FIT_ROWS else rows.sample(BTYD_FIT_ROWS, random_state=0)
        try:
            parts.append(btyd.fit_btyd(calibration).predict(rows, horizon_days))
        except ValueError:  # nothing to fit (e.g. no order of positive value)
            return None  # no baseline rather than a failed run
    return pd.concat(parts).loc[summary.index]


def value_baseline_metrics(
    holdout: pd.DataFrame, predictions: pd.DataFrame, base: pd.DataFrame
) -> dict[str, float]:
    """The BTYD baseline beside the value model, on the same holdout rows.

    ``baseline_btyd_orders_*`` and ``baseline_btyd_spend_*`` are the regression metrics of
    ``base`` (see :func:`btyd_holdout_predictions`), ``*_total_ratio`` the predicted total over
    the actual one (1 is calibrated; the model's own ratio is logged beside it),
    ``baseline_btyd_churn_roc_auc`` ranks the chance of no order against ``churned`` and
    ``baseline_btyd_p_alive_mean`` is the mean P(alive).
    """
    out = M.prefixed(
        "baseline_btyd_orders", M.regression_metrics(holdout["future_orders"], base["expected_orders"])
    )
    out.update(
        M.prefixed("baseline_btyd_spend", M.regression_metrics(holdout["future_spend"], base["expected_spend"]))
    )
    # BG/NBD counts a one-time buyer as alive (P(alive) = 1), so churn is ranked by the chance
    # of no order in the horizon (Poisson at the expected count), not by 1 - P(alive)
    no_order = np.exp(-base["expected_orders"].to_numpy(float))
    out["baseline_btyd_churn_roc_auc"] = M.classification_metrics(holdout["churned"], no_order)["roc_auc"]
    out["baseline_btyd_p_alive_mean"] = float(base["p_alive"].mean())
    for name, column, values in (
        ("orders", "future_orders", predictions["expected_orders"]),
        ("spend", "future_spend", predictions["expected_spend"]),
        ("baseline_btyd_orders", "future_orders", base["expected_orders"]),
        ("baseline_btyd_spend", "future_spend", base["expected_spend"]),
    ):
        out[f"{name}_total_ratio"] = total_ratio(holdout[column], values)
    return out


def total_ratio(actual: pd.Series | np.ndarray, predicted: pd.Series | np.ndarray) -> float:
    """Predicted total over actual total (NaN when nothing happened): 1.1 means 10% too high."""
    total = float(np.sum(np.asarray(actual, dtype=float)))
    return float(np.sum(np.asarray(predicted, dtype=float))) / total if total > 0 else float("nan")

