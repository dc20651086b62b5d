"""The uplift part of a ``/predict`` answer: each offer's expected uplift and the next best action.

Served only when an uplift champion is registered (:class:`serving.runtime.ServingRuntime`
loads it beside the churn champion); without one a prediction carries none of these fields and
nothing here runs. What was served is logged with the row (:data:`LOG_NEXT_ACTION` and the
other log columns below, beside each offer's ``uplift_conversion_<offer>`` and
``uplift_spend_<offer>``); rows logged without an uplift model simply lack those columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:

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


LOG_NEXT_ACTION = "next_best_action"
LOG_NEXT_UPLIFT = "next_best_expected_uplift"
LOG_NEXT_VALUE = "next_best_expected_value"
LOG_VERSION = "uplift_model_version"


@dataclass
class UpliftAnswer:
    """The uplift part of one request's answer.

    Attributes:
        fields: row index -> the result's ``uplift``, ``next_best_action`` and ``uplift_model_version``.
        log_columns: the same per row for the prediction log (one value per row of the batch; NaN /
            None for cold starts): each offer's ``uplift_conversion_<offer>`` and
            ``uplift_spend_<offer>``, ``next_best_action`` (the offer, None when nothing pays),
            ``next_best_expected_uplift``, ``next_best_expected_value`` and ``uplift_model_version``.
    """

    fields: Callable[[int], dict[str, object]]
    log_columns: dict[str, np.ndarray]


def _log_columns(n: int, rows: np.ndarray, predicted: dict[str, np.ndarray] | None, offers: tuple[str, ...],
                 version: str) -> dict[str, np.ndarray]:
    from model.uplift import uplift_column
    from model.uplift_runner import NEXT_OFFER, NEXT_UPLIFT, NEXT_VALUE

    def spread(values: np.ndarray | None, fill: object) -> np.ndarray:
        out = np.full(n, np.nan) if fill is None else np.full(n, None, dtype=object)
        if values is not None and len(rows):
            out[rows] = np.asarray(values)
        return out

    columns: dict[str, np.ndarray] = {}
    for offer in offers:
        for outcome in ("conversion", "spend"):
            name = uplift_column(outcome, offer)
            columns[name] = spread(None if predicted is None else predicted[name], None)
    columns[LOG_NEXT_ACTION] = spread(None if predicted is None else predicted[NEXT_OFFER], "")
    columns[LOG_NEXT_UPLIFT] = spread(None if predicted is None else predicted[NEXT_UPLIFT], None)
    columns[LOG_NEXT_VALUE] = spread(None if predicted is None else predicted[NEXT_VALUE], None)
    columns[LOG_VERSION] = np.full(n, version, dtype=object)
    return columns


def uplift_fields(uplift: UpliftRunner, batch: FeatureBatch, ok: np.ndarray) -> UpliftAnswer | None:
    """The uplift fields of each result and the columns to log (:class:`UpliftAnswer`).

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
    offers = uplift.predictor.offers
    empty: dict[str, object] = {"uplift": None, "next_best_action": None, "uplift_model_version": version}
    if not len(rows):
        return UpliftAnswer(lambda _i: empty, _log_columns(len(batch), rows, None, offers, version))
    predicted = uplift.predict(batch if len(rows) == len(batch) else batch.take(rows))
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

    return UpliftAnswer(fields, _log_columns(len(batch), rows, predicted, offers, version))


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


__all__ = ["LOG_NEXT_ACTION", "LOG_NEXT_UPLIFT", "LOG_NEXT_VALUE", "LOG_VERSION", "UpliftAnswer", "load_runner",
           "runner_of", "unserved_reason", "uplift_fields"]
