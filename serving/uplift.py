"""The uplift part of a ``/predict`` answer: each offer's expected uplift and the next best action.

Served only when an uplift champion is registered (:class:`serving.runtime.ServingRuntime`
loads it beside the churn champion); without one a prediction carries none of these fields and
nothing here runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings
    from model.uplift_runner import UpliftRunner
    from serving.predictor import ServingPredictor
    from store.feature_batch import FeatureBatch


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def uplift_fields(
    uplift: UpliftRunner, batch: FeatureBatch, ok: np.ndarray
) -> Callable[[int], dict[str, object]] | None:
    """Row index -> the uplift fields of a result (``uplift``, ``next_best_action``, ``uplift_model_version``).

    None (the fields are left out) when the batch lacks a feature the uplift model needs: the
    churn champion and the uplift champion are promoted separately, and a churn answer must not
    fail because of the other model. Cold starts get null fields.
    """
    from model.uplift import OUTCOMES, uplift_column
    from model.uplift_runner import NEXT_OFFER, NEXT_UPLIFT, NEXT_VALUE

    if not uplift.serves(batch):
        return None
    rows = np.flatnonzero(ok)
    predicted = uplift.predict(batch if len(rows) == len(batch) else batch.take(rows)) if len(rows) else {}
    where = {int(r): j for j, r in enumerate(rows.tolist())}
    offers = uplift.predictor.offers
    columns = {(o, outcome): np.asarray(predicted[uplift_column(outcome, o)], dtype=float).tolist()
               for o in offers for outcome in OUTCOMES} if len(rows) else {}
    version = uplift.version

    def fields(i: int) -> dict[str, object]:
        j = where.get(i)
        if j is None:
            return {"uplift": None, "next_best_action": None, "uplift_model_version": version}
        offer = predicted[NEXT_OFFER][j]
        value = _finite_or_none(float(predicted[NEXT_VALUE][j]))
        gain = _finite_or_none(float(predicted[NEXT_UPLIFT][j]))
        return {
            "uplift": {o: {outcome: _finite_or_none(columns[(o, outcome)][j]) for outcome in OUTCOMES}
                       for o in offers},
            "next_best_action": {
                "offer": offer,
                "expected_uplift": gain,
                "expected_value": value,
                "reason": f"{offer}: {gain or 0:+.1%} conversion, net value {value or 0:.2f}" if offer is not None
                else "no offer pays for its contact",
            },
            "uplift_model_version": version,
        }

    return fields


def load_runner(settings: Settings, name: str, version: str) -> UpliftRunner:
    """A registered uplift version (same trust checks as any Persona model) ready to serve.

    Offers are priced at the costs the version learned from (``offer_costs``), else at each
    offer's latest ingested campaign (an offer with neither is never recommended); one conversion
    is worth the mean spend of a converted customer it learned from, as in
    ``persona campaign plan``.

    Raises:
        UntrustedModelError / ValueError / MlflowException: the version cannot serve.
    """
    import pandas as pd

    from core import catalog
    from model.uplift import latest_offer_costs, load_uplift
    from model.uplift_runner import UpliftRunner

    predictor = load_uplift(f"models:/{name}/{version}", settings)
    costs = dict(predictor.metadata.get("offer_costs") or {})
    campaigns = catalog.raw_table(settings, "campaigns")
    if any(o not in costs for o in predictor.offers) and campaigns.exists():
        costs = {**latest_offer_costs(pd.read_parquet(campaigns)), **costs}
    value = predictor.metadata.get("spend_per_conversion")
    return UpliftRunner(predictor, costs, float(value) if value is not None else None, version=str(version))


def unserved_reason(runner: UpliftRunner, predictor: ServingPredictor | None) -> str | None:
    """Why the uplift model cannot answer beside ``predictor`` (features the churn model's reader lacks)."""
    if predictor is None:
        return None
    lacking = [c for c in runner.feature_columns if c not in predictor.feature_columns]
    if not lacking:
        return None
    return f"uplift v{runner.version} needs features the served churn model does not read: {lacking}"


__all__ = ["load_runner", "unserved_reason", "uplift_fields"]
