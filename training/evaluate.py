"""Holdout metrics of a fitted bundle: churn and value, a custom target, and the generator's oracle.

Pure functions of labelled rows and predictions; the champion is scored with the same ones, on
the same holdout, so the gate compares like with like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from training import metrics as M

if TYPE_CHECKING:
    import pandas as pd

    from model.bundle import PersonaPredictor


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
