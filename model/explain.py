"""Reasons per prediction: feature contributions, the persona's traits, the rule and the versions.

A served number is only trusted when its reasons can be shown. For each customer this gives:

- the top feature contributions of each model (churn, orders, spend) from XGBoost's own
  TreeSHAP (``Booster.predict(..., pred_contribs=True)``), in the model's margin units (log-odds
  for churn, log scale for counts and amounts). One-hot columns of a categorical feature are
  summed back into that feature, so a contribution always names an input column (or one of
  the bundle's derived inputs, ``btyd_expected_orders`` and ``btyd_p_alive``). The
  contributions and the bias add up to the margin of the prediction served (for expected orders
  blended with BG/NBD, BG/NBD's share of the log is counted in ``btyd_expected_orders``);
- the persona's distinguishing traits: its KMeans center in the standardized clustering space,
  i.e. how many training standard deviations the persona sits from the population per trait;
- the action policy rule that chose the action (:func:`model.actions.matching_rules`, the same
  function that assigns it) with the customer's churn risk and value tier;
- every version involved: registered model and version, feature service, text projection.

Pure: a :class:`~model.bundle.PersonaPredictor` and a feature frame in, JSON-ready dicts out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from model.actions import describe_rule, matching_rules
from model.lifetime import ORDERS_FLOOR
from model.preprocess import lifetime_block, model_matrix, numeric_block

if TYPE_CHECKING:
    from collections.abc import Sequence

    from model.bundle import PersonaPredictor

# Served output -> the booster that made it, and the unit of its contributions.
EXPLAINED_MODELS = {
    "churn_probability": ("churn", "log-odds"),
    "expected_orders": ("orders", "log"),
    "expected_spend": ("spend", "log"),
}
DEFAULT_TOP = 5
TRAITS_TOP = 3
# Bundle metadata keys that name a version of something the model was trained with.
_VERSION_KEYS = {"feature_service": "feature_service", "text_projection_version": "text_projection"}


class NotExplainable(ValueError):
    """The model is not a Persona bundle with XGBoost models (the message says why)."""


def contributions(
    predictor: PersonaPredictor, frame: pd.DataFrame, models: Sequence[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """XGBoost's TreeSHAP contributions of each of ``models`` per input feature, plus the bias (last column).

    Returns:
        Model -> ``(n_rows, n_features + 1)`` contributions (one-hot levels summed into their
        feature), and the feature names in column order (``"bias"`` last).
    """
    import xgboost as xgb

    spec = predictor.features
    matrix = model_matrix(frame, spec).astype(np.float32)
    # One DMatrix for every model, built on one thread: OpenMP workers spinning up cost more than
    # a request's rows (milliseconds on a shared machine).
    data = xgb.DMatrix(matrix, missing=np.nan, feature_names=spec.matrix_names, nthread=1)
    # derived inputs (BG/NBD's expectation and P(alive)) are named as themselves
    owners = list(spec.numeric) + [c for c, levels in spec.categorical.items() for _ in levels] + list(spec.derived)
    names = list(spec.numeric) + list(spec.categorical) + list(spec.derived)
    index = {name: j for j, name in enumerate(names)}
    out = {}
    for model in models:
        raw = predictor.models[model].predict(data, pred_contribs=True, validate_features=False)
        raw = np.asarray(raw, dtype=float).reshape(len(frame), matrix.shape[1] + 1)
        summed = np.zeros((len(frame), len(names) + 1))
        for column, owner in enumerate(owners):
            summed[:, index[owner]] += raw[:, column]
        summed[:, -1] = raw[:, -1]
        out[model] = summed
    return out, [*names, "bias"]


def persona_traits(predictor: PersonaPredictor, segment: int, top: int = TRAITS_TOP) -> list[dict[str, object]]:
    """The persona's most distinguishing traits: its center's largest standardized coordinates."""
    if predictor.cluster is None or predictor.centers is None or not 0 <= segment < len(predictor.centers):
        return []
    center = np.asarray(predictor.centers[segment], dtype=float)
    order = np.argsort(-np.abs(center), kind="stable")[:top]
    return [
        {"feature": predictor.cluster.columns[j], "z": round(float(center[j]), 3),
         "direction": "above" if center[j] >= 0 else "below"}
        for j in order.tolist()
    ]


def versions(predictor: PersonaPredictor, model_name: str, version: str) -> dict[str, str | None]:
    """Every version behind a prediction: the registered model and what it was trained with."""
    meta = predictor.metadata or {}
    out: dict[str, str | None] = {"model": model_name, "model_version": str(version)}
    for key, name in _VERSION_KEYS.items():
        value = meta.get(key)
        out[name] = None if value is None else str(value)
    return out


def explain(
    predictor: PersonaPredictor,
    frame: pd.DataFrame,
    predictions: pd.DataFrame | dict[str, np.ndarray],
    model_name: str,
    version: str,
    top: int = DEFAULT_TOP,
) -> list[dict[str, object]]:
    """One explanation per row of ``frame`` (see module docstring).

    Args:
        predictor: the persona bundle that made ``predictions``.
        frame: the feature rows predicted (the model's feature columns).
        predictions: its outputs for those rows (``churn_probability``, ``expected_spend``,
            ``segment``, ...).
        model_name: the registered model that served them.
        version: its version.
        top: contributions kept per model, largest magnitude first.

    Raises:
        NotExplainable: not a persona bundle.
    """
    if getattr(predictor, "kind", None) != "persona" or predictor.policy is None:
        raise NotExplainable("explanations need a Persona bundle (churn, value, personas and actions)")
    n = len(frame)
    churn = np.asarray(predictions["churn_probability"], dtype=float)
    spend = np.asarray(predictions["expected_spend"], dtype=float)
    segments = np.asarray(predictions["segment"]).astype(int)
    personas = np.asarray(predictions["persona"], dtype=object)
    rules = matching_rules(personas, churn, spend, predictor.policy, predictor.spend_cuts)
    tops: dict[str, list[list[dict[str, object]]]] = {}
    bias: dict[str, np.ndarray] = {}
    values = {c: frame[c].to_numpy(dtype=object) for c in predictor.feature_columns}
    spec = predictor.features
    if spec.derived:  # BG/NBD's inputs, shown with the values the models saw
        derived = lifetime_block(numeric_block(frame, spec.numeric), spec).astype(np.float32).astype(float)
        values.update({c: derived[:, j].astype(object) for j, c in enumerate(spec.derived)})
    by_model, names = contributions(predictor, frame, [model for model, _ in EXPLAINED_MODELS.values()])
    for output, (model, _unit) in EXPLAINED_MODELS.items():
        contrib = by_model[model]
        if output == "expected_orders":
            contrib = _orders_blend(contrib, names, frame, spec)
        bias[output] = contrib[:, -1]
        features = contrib[:, :-1]
        order = np.argsort(-np.abs(features), axis=1, kind="stable")[:, :top]
        tops[output] = [
            [
                {"feature": names[j], "value": _plain(values[names[j]][i]),
                 "contribution": round(float(features[i, j]), 6)}
                for j in order[i].tolist()
            ]
            for i in range(n)
        ]
    shared = versions(predictor, model_name, version)
    traits = {s: persona_traits(predictor, s) for s in set(segments.tolist())}
    out = []
    for i in range(n):
        out.append({
            "contributions": {
                output: {"unit": unit, "bias": round(float(bias[output][i]), 6), "top": tops[output][i]}
                for output, (_m, unit) in EXPLAINED_MODELS.items()
            },
            "persona": {"segment": int(segments[i]), "name": str(personas[i]), "traits": traits[int(segments[i])]},
            "action": describe_rule(predictor.policy, int(rules[i]), float(churn[i]), float(spend[i]),
                                    predictor.spend_cuts),
            "versions": dict(shared),
        })
    return out


def _orders_blend(contrib: np.ndarray, names: list[str], frame: pd.DataFrame, spec) -> np.ndarray:
    """Orders contributions of a bundle that blends BG/NBD into its expected orders (``blend_orders``).

    The served log is ``(1 - w) * booster margin + w * log(BG/NBD)``: the booster's contributions
    and bias are scaled by ``1 - w`` and ``w * log(BG/NBD)`` is added to the contribution of
    ``btyd_expected_orders``, so contributions and bias still add up to the served margin. Rows
    without a BG/NBD value are served the booster alone and keep its contributions.
    """
    weight = spec.lifetime.orders_weight if spec.lifetime is not None else 0.0
    if weight <= 0.0 or "btyd_expected_orders" not in names:
        return contrib
    at = names.index("btyd_expected_orders")
    btyd = lifetime_block(numeric_block(frame, spec.numeric), spec)[:, spec.derived.index("btyd_expected_orders")]
    btyd = btyd.astype(np.float32).astype(float)  # the value the served matrix holds
    known = np.isfinite(btyd)
    out = contrib.copy()
    out[known] *= 1.0 - weight
    out[known, at] += weight * np.log(np.maximum(btyd[known], ORDERS_FLOOR))
    return out


def _plain(value: object) -> object:
    """A JSON-ready feature value (NaN and None become None)."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return str(value)
