"""BG/NBD in the model: the buy-till-you-die expectation as a feature of the served models.

:class:`BGNBD` holds the fitted parameters of the classic model (Fader, Hardie & Lee 2005,
"Counting your customers the easy way") and its two closed forms: P(alive) and the expected
orders over a horizon. The training baseline (:mod:`training.btyd`) fits it; a persona bundle
also carries one (:class:`LifetimeSpec`, inside :class:`model.preprocess.FeatureSpec`) and
derives two model inputs from each feature row:

- ``btyd_expected_orders``: BG/NBD's expected orders over the bundle's horizon,
- ``btyd_p_alive``: the probability that the customer has not dropped out.

BG/NBD needs, per customer at time ``t``: repeat orders ``x``, the time from the first order
to the last one ``t_x`` and from the first order to ``t`` (``T``). They come from three
behavior features, so training, batch scoring, serving and explanations compute the same
numbers from the same row: ``x = orders_total - 1``, ``T = first_order_days``,
``t_x = first_order_days - recency_days`` (in ``unit_days``). A row without an order yet
gets the population's rate (``x = t_x = T = 0``); a row missing an input gets NaN.
Pure numpy and scipy; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import hyp2f1

WEEK_DAYS = 7.0
LIFETIME_INPUTS = ("orders_total", "first_order_days", "recency_days")
LIFETIME_COLUMNS = ("btyd_expected_orders", "btyd_p_alive")


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters (purchase rate ~ Gamma(r, alpha), drop-out ~ Beta(a, b))."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Probability that a customer with this history has not dropped out by ``T``."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        odds = np.where(
            x > 0,
            self.a / (self.b + np.maximum(x, 1) - 1) * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x),
            0.0,
        )
        return 1.0 / (1.0 + odds)

    def expected_orders(self, horizon: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected orders in ``(T, T + horizon]`` given the history (FHL 2005, eq. 10)."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        c = a + b + x - 1
        z = horizon / (alpha + T + horizon)
        core = 1.0 - ((alpha + T) / (alpha + T + horizon)) ** (r + x) * hyp2f1(r + x, b + x, c, z)
        return (c / (a - 1)) * core * self.p_alive(x, t_x, T)


def lifetime_summary(
    orders_total: np.ndarray, first_order_days: np.ndarray, recency_days: np.ndarray, unit_days: float = WEEK_DAYS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's ``(x, t_x, T)`` from the three behavior features (NaN where an input is missing)."""
    n = np.asarray(orders_total, dtype=float)
    first = np.asarray(first_order_days, dtype=float)
    recency = np.asarray(recency_days, dtype=float)
    has = n > 0
    missing = np.isnan(n) | (has & (np.isnan(first) | np.isnan(recency)))
    x = np.where(has, np.maximum(n - 1.0, 0.0), 0.0)
    T = np.where(has, first / unit_days, 0.0)
    t_x = np.where(has, np.clip(first - recency, 0.0, None) / unit_days, 0.0)
    return tuple(np.where(missing, np.nan, v) for v in (x, t_x, T))  # type: ignore[return-value]


@dataclass(frozen=True)
class LifetimeSpec:
    """A fitted BG/NBD and the horizon of its expected orders: the bundle's derived inputs."""

    r: float
    alpha: float
    a: float
    b: float
    horizon_days: float
    unit_days: float = WEEK_DAYS
    # BG/NBD's weight in the served expected orders: the booster's and BG/NBD's expectations are
    # averaged on the log scale with weights (1 - w, w); 0 serves the booster alone (older bundles)
    orders_weight: float = 0.0

    @property
    def model(self) -> BGNBD:
        """The BG/NBD these parameters describe."""
        return BGNBD(self.r, self.alpha, self.a, self.b)

    def values(self, orders_total: np.ndarray, first_order_days: np.ndarray, recency_days: np.ndarray) -> np.ndarray:
        """``(rows, 2)``: expected orders over the horizon and P(alive) (:data:`LIFETIME_COLUMNS` order)."""
        x, t_x, T = lifetime_summary(orders_total, first_order_days, recency_days, self.unit_days)
        known = ~np.isnan(x)
        out = np.full((len(x), len(LIFETIME_COLUMNS)), np.nan)
        if known.any():
            model = self.model
            xs, ts, Ts = x[known], t_x[known], T[known]
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # out-of-range rows: NaN
                out[known, 0] = model.expected_orders(self.horizon_days / self.unit_days, xs, ts, Ts)
                out[known, 1] = model.p_alive(xs, ts, Ts)
        return out

    def to_dict(self) -> dict[str, float]:
        """Plain data for ``bundle.json``."""
        return {
            "r": self.r,
            "alpha": self.alpha,
            "a": self.a,
            "b": self.b,
            "horizon_days": self.horizon_days,
            "unit_days": self.unit_days,
            "orders_weight": self.orders_weight,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LifetimeSpec:
        """The inverse of :meth:`to_dict`."""
        values = {k: float(data[k]) for k in ("r", "alpha", "a", "b", "horizon_days", "unit_days")}
        return cls(**values, orders_weight=float(data.get("orders_weight", 0.0)))


ORDERS_FLOOR = 1e-6  # expected orders below this are taken as this on the log scale


def blend_orders(booster: np.ndarray, btyd: np.ndarray, weight: float) -> np.ndarray:
    """Expected orders served: the booster's and BG/NBD's expectations averaged on the log scale.

    ``exp((1 - weight) * log(booster) + weight * log(btyd))``, both floored at
    :data:`ORDERS_FLOOR`; rows where BG/NBD has no value (NaN) keep the booster's own. A
    geometric average keeps the value model's log link (its explanations still add up, see
    :func:`blend_margin`) and, on the CDNOW log, beat either model alone on MAE, RMSE and
    correlation (see the README's value section).
    """
    booster = np.asarray(booster, dtype=float)
    if weight <= 0.0:
        return booster
    mixed = np.exp(blend_margin(np.log(np.maximum(booster, ORDERS_FLOOR)), btyd, weight))
    return np.where(np.isfinite(np.asarray(btyd, dtype=float)), mixed, booster)


def blend_margin(margin: np.ndarray, btyd: np.ndarray, weight: float) -> np.ndarray:
    """The blend of :func:`blend_orders` on the log scale, from the booster's margin (NaN BG/NBD: the margin)."""
    margin = np.asarray(margin, dtype=float)
    btyd = np.asarray(btyd, dtype=float)
    known = np.isfinite(btyd)
    mixed = (1.0 - weight) * margin + weight * np.log(np.maximum(np.where(known, btyd, 1.0), ORDERS_FLOOR))
    return np.where(known, mixed, margin)


__all__ = [
    "BGNBD",
    "LIFETIME_COLUMNS",
    "LIFETIME_INPUTS",
    "ORDERS_FLOOR",
    "WEEK_DAYS",
    "LifetimeSpec",
    "blend_margin",
    "blend_orders",
    "lifetime_summary",
]
