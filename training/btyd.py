"""The buy-till-you-die baseline: BG/NBD for orders, Gamma-Gamma for spend per order (maximum likelihood).

The classic value model of the field (Fader, Hardie & Lee 2005, "Counting your customers the
easy way"; "RFM and CLV"), kept as the baseline the XGBoost value model must beat on the same
calibration window. Each customer is summarised at a time ``t`` by what the models need:

- ``x``: repeat orders up to ``t`` (orders after the first one),
- ``t_x``: time from the first order to the last one,
- ``T``: time from the first order to ``t``,
- ``n`` and ``mean_amount``: all orders up to ``t`` and their mean amount (Gamma-Gamma).

Times are in ``unit_days`` (weeks by default, as in the papers). The log-likelihoods are closed
form, fitted with :func:`scipy.optimize.minimize` on log parameters; a well-kept library of the
field was weighed first: PyMC-Marketing needs PyMC and PyTensor (a compiler toolchain at run
time), and ``lifetimes`` 0.11.3 is unmaintained (its dataset loader no longer imports), so the
fit is a small tested function here. Pure numpy and scipy; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from core.contract import ENTITY_KEY, TIMESTAMP
from features.transforms.events import NS_PER_DAY, event_index, to_utc_ns
from model.lifetime import BGNBD, LIFETIME_INPUTS, WEEK_DAYS, LifetimeSpec, lifetime_summary

SUMMARY_COLUMNS = ("x", "t_x", "T", "n", "mean_amount")


# --------------------------------------------------------------------------- summaries
def summarize(entities: pd.DataFrame, transactions: pd.DataFrame, unit_days: float = WEEK_DAYS) -> pd.DataFrame:
    """The BTYD summary of each row ``(customer_id, t)`` from the orders at or before ``t``.

    Args:
        entities: ``customer_id`` and ``event_timestamp`` (the snapshot time ``t``).
        transactions: ``customer_id``, ``event_timestamp``, ``amount`` (one row = one order,
            as in the labels).
        unit_days: the time unit of ``t_x`` and ``T``.

    Returns:
        A frame aligned with ``entities`` with :data:`SUMMARY_COLUMNS`; a customer without an
        order by ``t`` has ``n == 0`` and ``x == t_x == T == 0`` (the model gives it the
        population's rate), and ``mean_amount`` NaN.
    """
    index = pd.Index(pd.unique(entities[ENTITY_KEY]))
    codes = index.get_indexer(entities[ENTITY_KEY])
    amount = pd.to_numeric(transactions["amount"], errors="coerce").to_numpy(float)
    tx = event_index(transactions, index, "transactions", {"amount": amount})
    t_ns = to_utc_ns(entities[TIMESTAMP])
    (at_t,) = tx.positions_upto(codes, t_ns, (0,))
    start = tx.positions_start(codes)
    n = np.maximum(at_t - start, 0)
    has = n > 0
    first = np.where(has, tx.times_at(start), t_ns)
    last = np.where(has, tx.times_at(at_t - 1), t_ns)
    unit = unit_days * NS_PER_DAY
    spend = tx.window_sum("amount", start, np.maximum(at_t, start))
    return pd.DataFrame(
        {
            "x": np.maximum(n - 1, 0).astype(float),
            "t_x": np.where(has, (last - first) / unit, 0.0),
            "T": np.where(has, (t_ns - first) / unit, 0.0),
            "n": n.astype(float),
            "mean_amount": np.divide(spend, n, out=np.full(len(n), np.nan), where=has),
        },
        index=entities.index,
    )


# --------------------------------------------------------------------------- BG/NBD
def bgnbd_loglik(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6) for ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
    """Maximum-likelihood BG/NBD on customers who have ordered (``T > 0``)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    keep = T > 0
    x, t_x, T = x[keep], t_x[keep], T[keep]
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer with an order before the cutoff")
    scale = float(np.mean(T)) or 1.0  # fit alpha on the data's scale, so the start point is sound

    def loss(theta: np.ndarray) -> float:
        p = np.exp(theta)
        return -float(np.sum(bgnbd_loglik(np.array([p[0], p[1] * scale, p[2], p[3]]), x, t_x, T))) / len(x)

    best = minimize(loss, np.zeros(4), method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-10})
    best = minimize(loss, best.x, method="L-BFGS-B")
    r, alpha, a, b = np.exp(best.x)
    return BGNBD(float(r), float(alpha * scale), float(a), float(b))


def fit_lifetime(
    train: pd.DataFrame, horizon_days: float, max_rows: int = 50_000, seed: int = 0
) -> LifetimeSpec | None:
    """BG/NBD fitted on the training rows' latest snapshot, for the bundle's derived inputs.

    The calibration summary comes from the rows' own behavior features
    (:data:`~model.lifetime.LIFETIME_INPUTS`), so it sees exactly what the model sees and
    nothing after the training window. At most ``max_rows`` customers are used.

    Returns:
        None when an input column is absent or no sound fit exists (no repeat buyer, or
        parameters whose expectation is not finite on the calibration rows).
    """
    if any(c not in train.columns for c in LIFETIME_INPUTS) or train.empty:
        return None
    times = pd.to_datetime(train[TIMESTAMP], utc=True)
    latest = train[times == times.max()]
    if len(latest) > max_rows:
        latest = latest.sample(max_rows, random_state=seed)
    x, t_x, T = lifetime_summary(*(latest[c].to_numpy(dtype=float, na_value=np.nan) for c in LIFETIME_INPUTS))
    keep = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)
    if not (x[keep] > 0).any():
        return None
    try:
        fitted = fit_bgnbd(x[keep], t_x[keep], T[keep])
    except ValueError:
        return None
    spec = LifetimeSpec(fitted.r, fitted.alpha, fitted.a, fitted.b, float(horizon_days), WEEK_DAYS)
    values = spec.values(*(latest[c].to_numpy(dtype=float, na_value=np.nan)[keep] for c in LIFETIME_INPUTS))
    if abs(fitted.a - 1.0) < 1e-9 or not np.isfinite(values).all():
        return None
    return spec


# --------------------------------------------------------------------------- Gamma-Gamma
@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend model (order value ~ Gamma(p, nu), nu ~ Gamma(q, gamma))."""

    p: float
    q: float
    gamma: float

    @property
    def population_mean(self) -> float:
        """Mean order value of a customer the model knows nothing about."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")

    def expected_spend_per_order(self, n: np.ndarray, mean_amount: np.ndarray) -> np.ndarray:
        """Posterior mean order value: a weighted mean of the population's and the customer's."""
        n = np.asarray(n, dtype=float)
        m = np.nan_to_num(np.asarray(mean_amount, dtype=float))
        return (self.p * (self.gamma + n * m)) / (self.p * n + self.q - 1)


def gamma_gamma_loglik(params: np.ndarray, n: np.ndarray, mean_amount: np.ndarray) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of mean order values (FHL 2005b) for ``(p, q, gamma)``."""
    p, q, g = params
    return (
        gammaln(p * n + q)
        - gammaln(p * n)
        - gammaln(q)
        + q * np.log(g)
        + (p * n - 1) * np.log(mean_amount)
        + p * n * np.log(n)
        - (p * n + q) * np.log(g + n * mean_amount)
    )


def fit_gamma_gamma(n: np.ndarray, mean_amount: np.ndarray) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma on customers with at least one order of positive value."""
    n = np.asarray(n, dtype=float)
    m = np.asarray(mean_amount, dtype=float)
    keep = (n > 0) & np.isfinite(m) & (m > 0)
    n, m = n[keep], m[keep]
    if len(n) == 0:
        raise ValueError("Gamma-Gamma needs at least one order with a positive amount")
    scale = float(np.mean(m))

    def loss(theta: np.ndarray) -> float:
        p, q, g = np.exp(theta)
        return -float(np.sum(gamma_gamma_loglik(np.array([p, q, g]), n, m / scale))) / len(n)

    best = minimize(loss, np.array([0.0, 1.0, 0.0]), method="Nelder-Mead", options={"maxiter": 4000})
    best = minimize(loss, best.x, method="L-BFGS-B")
    p, q, g = np.exp(best.x)
    return GammaGamma(float(p), float(q), float(g * scale))


# --------------------------------------------------------------------------- the baseline
@dataclass(frozen=True)
class BTYDBaseline:
    """BG/NBD plus Gamma-Gamma, fitted on one calibration window."""

    orders: BGNBD
    spend: GammaGamma
    unit_days: float = WEEK_DAYS

    def predict(self, summary: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """``expected_orders``, ``expected_spend`` and ``p_alive`` over the next ``horizon_days``."""
        x, t_x, T = (summary[c].to_numpy(float) for c in ("x", "t_x", "T"))
        orders = self.orders.expected_orders(horizon_days / self.unit_days, x, t_x, T)
        per_order = self.spend.expected_spend_per_order(summary["n"].to_numpy(float), summary["mean_amount"])
        if not np.isfinite(self.spend.population_mean):
            per_order = np.where(np.isfinite(per_order), per_order, np.nanmean(summary["mean_amount"]))
        return pd.DataFrame(
            {
                "expected_orders": orders,
                "expected_spend": orders * per_order,
                "p_alive": self.orders.p_alive(x, t_x, T),
            },
            index=summary.index,
        )


def fit_btyd(summary: pd.DataFrame, unit_days: float = WEEK_DAYS) -> BTYDBaseline:
    """Fit both models on one calibration summary (see :func:`summarize`)."""
    orders = fit_bgnbd(summary["x"], summary["t_x"], summary["T"])
    spend = fit_gamma_gamma(summary["n"], summary["mean_amount"])
    return BTYDBaseline(orders, spend, unit_days)


__all__ = [
    "BGNBD",
    "BTYDBaseline",
    "WEEK_DAYS",
    "GammaGamma",
    "bgnbd_loglik",
    "fit_bgnbd",
    "fit_btyd",
    "fit_gamma_gamma",
    "fit_lifetime",
    "gamma_gamma_loglik",
    "summarize",
]
