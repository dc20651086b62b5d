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
    from model.uplift import UpliftPredictor
    from model.uplift_runner import UpliftRunner
    from serving.predictor import ServingPredictor
    from store.feature_batch import FeatureBatch


def _plain(values: np.ndarray) -> list[float | None]:
    """Floats as a list, non-finite values as None (JSON allows no NaN)."""
    array = np.asarray(values, dtype=float)
    out: list[float | None] = array.tolist()
    if not np.isfinite(array).all():
        out = [v if math.isfinite(v) else None for v in out]  # type: ignore[arg-type]
    return out


def uplift_fields(
    uplift: UpliftRunner, batch: FeatureBatch, ok: np.ndarray
) -> Callable[[int], dict[str, object]] | None:
    """Row index -> the uplift fields of a result (``uplift``, ``next_best_action``, ``uplift_model_version``).

    None (the fields are left out) when the batch lacks a feature the uplift model needs: the
    churn champion and the uplift champion are promoted separately, and a churn answer must not
    fail because of the other model. Cold starts get null fields.
    """
    from model.uplift import uplift_column
    from model.uplift_runner import NEXT_OFFER, NEXT_UPLIFT, NEXT_VALUE

    if not uplift.serves(batch):
        return None
    rows = np.flatnonzero(ok)
    version = uplift.version
    empty: dict[str, object] = {"uplift": None, "next_best_action": None, "uplift_model_version": version}
    if not len(rows):
        return lambda _i: empty
    predicted = uplift.predict(batch if len(rows) == len(batch) else batch.take(rows))
    offers = uplift.predictor.offers
    # Plain Python values built column by column (a 1000-customer batch stays a few milliseconds).
    per_offer = [(o, _plain(predicted[uplift_column("conversion", o)]), _plain(predicted[uplift_column("spend", o)]))
                 for o in offers]
    values, gains = _plain(predicted[NEXT_VALUE]), _plain(predicted[NEXT_UPLIFT])
    answers: list[dict[str, object]] = []
    for j, offer in enumerate(predicted[NEXT_OFFER].tolist()):
        value, gain = values[j], gains[j]
        answers.append({
            "uplift": {o: {"conversion": conversion[j], "spend": spend[j]} for o, conversion, spend in per_offer},
            "next_best_action": {
                "offer": offer,
                "expected_uplift": gain,
                "expected_value": value,
                "reason": f"{offer}: {gain or 0:+.1%} conversion, net value {value or 0:.2f}" if offer is not None
                else "no offer pays for its contact",
            },
            "uplift_model_version": version,
        })
    where = dict(zip(rows.tolist(), answers, strict=True))

    def fields(i: int) -> dict[str, object]:
        return where.get(i, empty)

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
    from model.uplift import load_uplift

    return runner_of(settings, load_uplift(f"models:/{name}/{version}", settings), version)


def runner_of(settings: Settings, predictor: UpliftPredictor, version: str) -> UpliftRunner:
    """An uplift version ready to serve, its offers priced (see :func:`load_runner`)."""
    import pandas as pd

    from core import catalog
    from model.uplift import latest_offer_costs
    from model.uplift_runner import UpliftRunner

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


__all__ = ["load_runner", "runner_of", "unserved_reason", "uplift_fields"]
