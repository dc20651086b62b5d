"""BG/NBD's weight in the served expected orders, chosen per run on an inner time split.

The served expected orders are ``exp((1 - w) log booster + w log BG/NBD)``
(:func:`model.lifetime.blend_orders`). Unless ``XGBParams.btyd_orders_weight`` fixes ``w``, a
persona run holds out its latest training snapshot(s) as inner validation (purged like the
outer split: with ``purge`` an inner training snapshot ``t`` needs ``t + horizon <=`` the
inner validation snapshot), fits the orders booster and BG/NBD on the earlier snapshots the way
the bundle's are fitted, and keeps the ``w`` of :data:`WEIGHT_GRID` with the lowest inner RMSE
(RMSE is minimised by the conditional mean, which a calibrated expectation and total need;
inner MAE picked weights that missed a holdout target on two of four CDNOW runs). Without an inner split
(a customer split, too few snapshots or rows, or no BG/NBD fit on the inner rows) ``w`` is
:data:`DEFAULT_ORDERS_WEIGHT`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from model.lifetime import LIFETIME_INPUTS, blend_orders
from model.preprocess import btyd_orders_of, fit_feature_spec, model_matrix
from training.btyd import fit_lifetime
from training.data import TIMESTAMP
from training.models import OBJECTIVES, VALUE_MONOTONE, fit_xgb, predict_xgb

if TYPE_CHECKING:
    from training.config import TrainConfig

# The weights tried, 0 (the booster alone) to 1 (BG/NBD alone) in steps of 0.05.
WEIGHT_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))
# The weight when none is fixed and no inner split exists (chosen on CDNOW at 90 days).
DEFAULT_ORDERS_WEIGHT = 0.5

Source = Literal["searched", "fallback", "fixed"]


@dataclass(frozen=True)
class OrdersWeightChoice:
    """The weight a run stores in its bundle and how it was chosen.

    Attributes:
        weight: BG/NBD's weight in the served expected orders.
        source: ``searched`` (lowest inner RMSE), ``fallback`` (no inner split: the default)
            or ``fixed`` (``XGBParams.btyd_orders_weight``).
        reason: for a fallback, why no inner split existed; for a search, the inner split.
        inner_rmse: inner-validation RMSE per weight tried (searched only).
    """

    weight: float
    source: Source
    reason: str = ""
    inner_rmse: dict[float, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """MLflow metrics: the weight, and for a search the best and the default's inner RMSE and each weight's."""
        out = {"orders_weight": self.weight}
        if self.inner_rmse:
            out["orders_weight_inner_rmse_best"] = self.inner_rmse[self.weight]
            out["orders_weight_inner_rmse_default"] = self.inner_rmse[DEFAULT_ORDERS_WEIGHT]
            out.update({f"orders_weight_inner_rmse_w{round(w * 100):03d}": v for w, v in self.inner_rmse.items()})
        return out

    def params(self) -> dict[str, str]:
        """MLflow params: how the weight was chosen (and why, for a fallback or a search)."""
        out: dict[str, str] = {"orders_weight_source": self.source}
        if self.reason:
            out["orders_weight_reason"] = self.reason[:500]
        return out

    def line(self) -> str:
        """One line for the run's summary."""
        if self.source == "searched":
            return (
                f"orders weight {self.weight:.2f} (searched: inner RMSE {self.inner_rmse[self.weight]:.4f}, "
                f"{self.inner_rmse[DEFAULT_ORDERS_WEIGHT]:.4f} at the default "
                f"{DEFAULT_ORDERS_WEIGHT:.2f}; {self.reason})"
            )
        if self.source == "fallback":
            return f"orders weight {self.weight:.2f} (the default: {self.reason})"
        return f"orders weight {self.weight:.2f} (fixed by XGBParams.btyd_orders_weight)"


def rmse_by_weight(
    y: np.ndarray, booster: np.ndarray, btyd: np.ndarray, grid: tuple[float, ...] = WEIGHT_GRID
) -> dict[float, float]:
    """RMSE of the blended expected orders against ``y`` for each weight of ``grid``."""
    y = np.asarray(y, dtype=float)
    return {w: float(np.sqrt(np.mean((blend_orders(booster, btyd, w) - y) ** 2))) for w in grid}


def best_weight(rmse: dict[float, float]) -> float:
    """The weight with the lowest RMSE (a tie goes to the one nearest the default, then the smaller)."""
    return min(rmse, key=lambda w: (rmse[w], abs(w - DEFAULT_ORDERS_WEIGHT), w))


def inner_split(
    train: pd.DataFrame, horizon_days: int, purge: bool, snapshots: int, min_snapshots: int, min_rows: int
) -> tuple[pd.DataFrame, pd.DataFrame] | str:
    """The latest ``snapshots`` training snapshots as inner validation, the earlier ones as inner training.

    With ``purge`` an inner training snapshot ``t`` needs ``t + horizon_days <=`` the first
    inner validation snapshot, as in the outer split. Returns the reason instead when the inner
    training would hold fewer than ``min_snapshots`` snapshots or ``min_rows`` rows, or the
    validation no rows.
    """
    times = pd.to_datetime(train[TIMESTAMP], utc=True)
    distinct = sorted(times.unique())
    if len(distinct) <= snapshots:
        return f"{len(distinct)} training snapshot(s) leave none before an inner validation"
    start = distinct[-snapshots]
    cut = start - pd.Timedelta(days=horizon_days) if purge else start - pd.Timedelta(microseconds=1)
    inner = times <= cut
    n_inner = times[inner].nunique()
    if n_inner < min_snapshots or int(inner.sum()) < min_rows:
        return (
            f"{n_inner} training snapshot(s) and {int(inner.sum())} row(s) end their {horizon_days}-day "
            f"label window before the inner validation snapshot {pd.Timestamp(start).date()} "
            f"(needs {min_snapshots} and {min_rows})"
        )
    return train[inner.to_numpy()], train[(times >= start).to_numpy()]


def choose_orders_weight(
    train: pd.DataFrame, features: list[str], config: TrainConfig, time_split: bool = True
) -> OrdersWeightChoice:
    """The weight a persona run stores: fixed, searched on an inner time split, or the default.

    Args:
        train: the run's labelled training rows.
        features: feature columns, in model order.
        config: the run configuration (``xgb.btyd_orders_weight`` not None fixes the weight).
        time_split: whether the run's split is by time (a customer split has no inner time split).
    """
    xgbp = config.xgb
    if xgbp.btyd_orders_weight is not None:
        return OrdersWeightChoice(float(xgbp.btyd_orders_weight), "fixed")
    if not time_split:
        return OrdersWeightChoice(DEFAULT_ORDERS_WEIGHT, "fallback", "a customer split has no inner time split")
    split = inner_split(
        train,
        config.horizon_days,
        config.purge,
        config.holdout_snapshots,
        max(2, config.min_train_snapshots),
        config.min_train_rows,
    )
    if isinstance(split, str):
        return OrdersWeightChoice(DEFAULT_ORDERS_WEIGHT, "fallback", split)
    inner, validation = split
    lifetime = fit_lifetime(inner, config.horizon_days, seed=config.seed)
    spec = fit_feature_spec(inner, features)
    if lifetime is None or not all(c in spec.numeric for c in LIFETIME_INPUTS):
        return OrdersWeightChoice(DEFAULT_ORDERS_WEIGHT, "fallback", "no BG/NBD fit on the inner training rows")
    spec = spec.with_lifetime(lifetime)
    booster = fit_xgb(
        model_matrix(inner, spec),
        inner["future_orders"].to_numpy(float),
        OBJECTIVES["orders"],
        xgbp,
        config.seed,
        spec.matrix_names,
        VALUE_MONOTONE,
        variance_power=xgbp.orders_tweedie_variance_power,
    )
    matrix = model_matrix(validation, spec)
    rmse = rmse_by_weight(
        validation["future_orders"].to_numpy(float),
        np.clip(predict_xgb(booster, matrix), 0, None),
        btyd_orders_of(matrix, spec),
    )
    start = pd.to_datetime(validation[TIMESTAMP], utc=True).min()
    reason = (
        f"inner validation {start.date()}, {len(validation)} rows; "
        f"inner training {inner[TIMESTAMP].nunique()} snapshots, {len(inner)} rows"
    )
    return OrdersWeightChoice(best_weight(rmse), "searched", reason, rmse)
