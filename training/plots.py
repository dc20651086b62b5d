"""Matplotlib figures for a training run (ROC, calibration, feature importance, personas).

Each function returns a new Figure on the non-interactive Agg canvas; the caller saves or
logs it and closes it.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

if TYPE_CHECKING:
    import pandas as pd


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def roc_figure(y_true: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    """ROC curves of several scorers on the same labels."""
    fig = _figure()
    ax = fig.add_subplot()
    y = np.asarray(y_true, dtype=int)
    for name, score in curves.items():
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, score)
            ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Churn ROC (holdout)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def calibration_figure(y_true: np.ndarray, prob: np.ndarray, bins: int = 10) -> Figure:
    """Observed churn rate against mean predicted probability per bin."""
    fig = _figure()
    ax = fig.add_subplot()
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(prob, dtype=float), 0, 1)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    xs, ys, ns = [], [], []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            xs.append(p[mask].mean())
            ys.append(y[mask].mean())
            ns.append(mask.sum())
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    ax.scatter(xs, ys, s=20 + 80 * np.asarray(ns) / max(max(ns, default=1), 1), label="model")
    ax.plot(xs, ys)
    ax.set(
        xlabel="mean predicted churn probability",
        ylabel="observed churn rate",
        title="Calibration (holdout)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series, title: str = "Churn feature importance (gain)") -> Figure:
    """Horizontal bars of feature importance, largest on top."""
    fig = _figure(6.5, max(3.0, 0.28 * len(importance) + 1.0))
    ax = fig.add_subplot()
    values = importance.iloc[::-1]
    ax.barh([str(i) for i in values.index], values.to_numpy())
    ax.set(title=title, xlabel="total gain")
    fig.tight_layout()
    return fig


def persona_figure(cards: list[dict]) -> Figure:
    """Share, churn rate and expected spend per persona, side by side."""
    fig = _figure(11.0, max(3.0, 0.45 * len(cards) + 1.5))
    names = [c["name"] for c in cards][::-1]
    panels = (
        ("share", "share of customers"),
        ("churn_rate", "churn rate"),
        ("expected_spend", "expected spend"),
    )
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        values = [float(c[key]) if c.get(key) is not None else 0.0 for c in cards][::-1]
        ax.barh(names, values, color=f"C{i}")
        ax.set_title(title, fontsize=10)
        if i:
            ax.set_yticklabels([])
    fig.tight_layout()
    return fig


def figure_png_base64(fig: Figure) -> str:
    """The figure as a base64 PNG (for inline ``<img>`` in HTML)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")
