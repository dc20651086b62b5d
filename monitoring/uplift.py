"""Watching an uplift model: its predictions drifting, personas' uplift moving, and what campaigns really changed.

Pure functions (frames in, frames out) so the monitoring job and tests share them:

* :func:`uplift_drift`: per uplift column, the population stability index (PSI) of the current
  predictions against the reference on the reference's deciles, beside both means. Uplift is a
  small difference of outcomes, so its distribution moves before any conversion figure does.
* :func:`persona_uplift_shift`: per persona and column, the mean uplift then and now (a persona
  a discount used to move and no longer does shows here first).
* :func:`realized_vs_predicted`: once a campaign's outcomes have matured, customers binned by
  their predicted uplift, with the realized uplift of each bin (treated minus control
  conversion, normal 95 % interval) beside the predicted one. A model whose bins no longer
  line up is ranking customers by something that stopped being true.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import CONTROL, TREATMENT

if TYPE_CHECKING:
    from collections.abc import Sequence

PSI_DRIFT = 0.2  # the usual reading: < 0.1 stable, 0.1-0.2 moving, > 0.2 shifted
Z95 = 1.959964


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` on the reference's quantile bins."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    e = np.clip(expected / len(reference), 1e-4, None)
    a = np.clip(actual / len(current), 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def uplift_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                 threshold: float = PSI_DRIFT) -> pd.DataFrame:
    """Per column: ``reference_mean, current_mean, psi, drifted`` (PSI above ``threshold``).

    Raises:
        ValueError: a column is missing from either frame.
    """
    missing = [c for c in columns if c not in reference or c not in current]
    if missing:
        raise ValueError(f"uplift columns {missing} missing from the reference or the current window")
    rows = []
    for column in columns:
        ref, cur = reference[column].to_numpy(dtype=float), current[column].to_numpy(dtype=float)
        value = psi(ref, cur)
        rows.append({"column": column, "reference_mean": float(np.nanmean(ref)) if len(ref) else float("nan"),
                     "current_mean": float(np.nanmean(cur)) if len(cur) else float("nan"),
                     "psi": value, "drifted": bool(value > threshold)})
    return pd.DataFrame(rows)


def persona_uplift_shift(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                         persona: str = "persona") -> pd.DataFrame:
    """Per persona and column: ``reference_mean, current_mean, change``, largest moves first."""
    ref = reference.groupby(persona)[list(columns)].mean()
    cur = current.groupby(persona)[list(columns)].mean()
    joined = ref.stack().rename("reference_mean").to_frame().join(
        cur.stack().rename("current_mean"), how="outer")
    joined["change"] = joined["current_mean"] - joined["reference_mean"]
    joined.index = joined.index.set_names([persona, "column"])
    out = joined.reset_index()
    return out.reindex(out["change"].abs().sort_values(ascending=False, na_position="last").index).reset_index(
        drop=True)


def realized_vs_predicted(outcomes: pd.DataFrame, predicted: str, bins: int = 5,
                          outcome: str = "converted") -> pd.DataFrame:
    """Realized against predicted uplift, customers binned by predicted uplift (quantiles).

    Args:
        outcomes: one row per matured exposure: ``group`` (treatment / control), ``outcome`` and the
            ``predicted`` uplift the model gave that customer before the contact.
        predicted: the predicted uplift column.
        bins: number of quantile bins.
        outcome: the realized outcome column.

    Returns:
        Per bin: ``predicted_low, predicted_high, treated, control, predicted`` (mean),
        ``realized`` (treated minus control mean outcome), ``low, high`` (95 %), ``covers``
        (the interval holds the predicted mean). Bins without both groups have NaN realized values.
    """
    frame = outcomes[[predicted, "group", outcome]].dropna(subset=[predicted])
    if frame.empty:
        return pd.DataFrame(columns=["predicted_low", "predicted_high", "treated", "control", "predicted",
                                     "realized", "low", "high", "covers"])
    ranks = frame[predicted].rank(method="first")
    labels = pd.qcut(ranks, q=min(bins, len(frame)), labels=False)
    rows = []
    for _, part in frame.groupby(labels, sort=True):
        t = part.loc[part["group"] == TREATMENT, outcome].to_numpy(dtype=float)
        c = part.loc[part["group"] == CONTROL, outcome].to_numpy(dtype=float)
        mean = float(part[predicted].mean())
        if len(t) and len(c):
            realized = float(t.mean() - c.mean())
            variance = (t.var(ddof=1) / len(t) if len(t) > 1 else 0.0) + (c.var(ddof=1) / len(c) if len(c) > 1 else 0.0)
            se = float(np.sqrt(variance))
            low, high = realized - Z95 * se, realized + Z95 * se
        else:
            realized = low = high = float("nan")
        rows.append({"predicted_low": float(part[predicted].min()), "predicted_high": float(part[predicted].max()),
                     "treated": len(t), "control": len(c), "predicted": mean, "realized": realized,
                     "low": low, "high": high, "covers": bool(low <= mean <= high)})
    return pd.DataFrame(rows)


__all__ = ["PSI_DRIFT", "persona_uplift_shift", "psi", "realized_vs_predicted", "uplift_drift"]
