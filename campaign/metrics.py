"""How well a targeting score finds the customers a contact changes: pure functions of arrays.

Uplift is never observed per customer (nobody is both contacted and not), so a score is judged
on a randomized campaign by ranking everyone and comparing treated with control customers among
the top of the ranking:

* the **Qini curve** (Radcliffe): for the top ``n``, ``Q(n) = Y_T(n) - Y_C(n) * N_T(n) / N_C(n)``,
  the incremental outcomes had the top ``n`` been treated (control outcomes rescaled to the
  treated count);
* the **Qini coefficient**: the mean height of the curve above the random-targeting line (from
  0 to ``Q(N)``), divided by the population, so it reads as incremental outcomes per customer
  that the ranking adds over random order (0 for a random ranking, negative when worse);
* **uplift at k**: the treated minus control mean outcome among the top ``k`` share.

On generated data the true effects are known, so :func:`expected_gain` scores a ranking with no
sampling noise: the sum of true effects of the customers it picks.
"""

from __future__ import annotations

import numpy as np


def _ranked(score: np.ndarray, *arrays: np.ndarray, seed: int = 104_729) -> list[np.ndarray]:
    """Arrays ordered by ``score`` descending; ties broken at random (fixed seed), not by position."""
    score = np.asarray(score, dtype=float)
    tiebreak = np.random.default_rng(seed).random(len(score))
    order = np.lexsort((tiebreak, -score))
    return [np.asarray(a)[order] for a in arrays]


def qini_curve(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, Q(n))`` for n = 0..N (see the module docstring).

    Args:
        score: higher = target first.
        treated: 1/True for treatment rows, 0/False for control rows.
        outcome: the observed outcome (conversion 0/1, or spend).
    """
    t, y = _ranked(score, np.asarray(treated, dtype=bool), np.asarray(outcome, dtype=float))
    n_t = np.cumsum(t)
    n_c = np.cumsum(~t)
    y_t = np.cumsum(np.where(t, y, 0.0))
    y_c = np.cumsum(np.where(t, 0.0, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = y_t - np.where(n_c > 0, y_c * n_t / n_c, 0.0)
    return np.arange(len(t) + 1), np.concatenate([[0.0], q])


def qini_coefficient(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> float:
    """Mean height of the Qini curve above the random line, per customer (0: random ranking)."""
    n, q = qini_curve(score, treated, outcome)
    total = len(n) - 1
    if total == 0:
        return float("nan")
    random_line = q[-1] * n / total
    return float(np.mean(q[1:] - random_line[1:]) / total)


def uplift_at_k(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, k: float) -> float:
    """Treated minus control mean outcome among the top ``k`` share (NaN when a group is empty there)."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be a share in (0, 1], got {k}")
    t, y = _ranked(score, np.asarray(treated, dtype=bool), np.asarray(outcome, dtype=float))
    top = max(int(round(k * len(t))), 1)
    t, y = t[:top], y[:top]
    if t.all() or not t.any():
        return float("nan")
    return float(y[t].mean() - y[~t].mean())


def expected_gain(score: np.ndarray, true_effect: np.ndarray, n: int) -> float:
    """Sum of true effects of the top ``n`` by score: the incremental outcomes of contacting them."""
    (effect,) = _ranked(score, np.asarray(true_effect, dtype=float))
    return float(effect[: max(int(n), 0)].sum())


def expected_qini(score: np.ndarray, true_effect: np.ndarray) -> float:
    """Qini coefficient on true effects: mean gain of the top ``n`` above random, per customer."""
    (effect,) = _ranked(score, np.asarray(true_effect, dtype=float))
    total = len(effect)
    if total == 0:
        return float("nan")
    gain = np.cumsum(effect)
    random_line = effect.sum() * np.arange(1, total + 1) / total
    return float(np.mean(gain - random_line) / total)


__all__ = ["expected_gain", "expected_qini", "qini_coefficient", "qini_curve", "uplift_at_k"]
