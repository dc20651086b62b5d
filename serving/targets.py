"""Custom-target models served by id: which model a request names, and one loaded version answering.

``persona train --labels L --target T`` registers ``<registered_model>-T`` (``persona-T``); the
``predict_target`` API serves its champion (or a pinned version) from the online features of the
feature service it was trained on (:mod:`serving.target_runtime` loads and watches them). This
module holds the pure parts: :func:`model_for` (the request's ``target`` / ``model`` -> the
registered model, or an :class:`~serving.predictor.InputError` naming the field) and
:class:`TargetPredictor` (online features -> ``prediction`` per customer, cold starts as
``predict`` answers them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from model.runner import batch_frame
from serving.freshness import Freshness, cold_start_reason
from serving.prediction_log import FEATURES_AT, LogBatch
from serving.predictor import MAX_BATCH, FeatureReader, InputError, Served, check_ids, utc_now
from store.online_reader import FeatureStoreError

ENDPOINT = "predict_target"
PREDICTION = "prediction"
MAX_NAME = 200
NOT_IN_STORE = "add them to your feature source and run `persona features materialize`"


class NotMaterialized(FeatureStoreError):
    """The model's feature views were never loaded into the online store (the message says what to run)."""


def target_model_name(registered_model: str, target: str) -> str:
    """The registered model of a custom target: ``<registered_model>-<target>`` (as training names it)."""
    return f"{registered_model}-{target}"


def model_for(registered_model: str, target: str | None, model: str | None) -> str:
    """The registered model a ``predict_target`` request names.

    ``target`` ``T`` names ``<registered_model>-T``; ``model`` names it in full. Either is enough;
    both must agree. The persona bundle itself and its uplift model are not custom targets
    (``predict`` serves them).

    Raises:
        InputError: 400 naming ``target`` or ``model``.
    """
    from model.uplift import uplift_model_name

    for name, value in (("target", target), ("model", model)):
        if value is not None and (not value.strip() or value != value.strip()):
            raise InputError(name, f"expected a non-empty name without surrounding spaces, got {value!r}")
        if value is not None and len(value) > MAX_NAME:
            raise InputError(name, f"is {len(value)} characters long; at most {MAX_NAME}")
    if target is None and model is None:
        raise InputError(
            "target", f'required: the label column a model was trained on (or "model": "{registered_model}-<target>")'
        )
    name = target_model_name(registered_model, target) if target is not None else str(model)
    if model is not None and model != name:
        raise InputError("model", f"{model!r} is not the model of target {target!r} ({name!r}); send one of them")
    field = "target" if target is not None else "model"
    if name == registered_model:
        raise InputError(field, f"{name!r} is the persona model; POST /predict serves it")
    if name == uplift_model_name(registered_model):
        raise InputError(field, f"{name!r} is the uplift model; POST /predict serves it beside the persona model")
    if not name.startswith(f"{registered_model}-"):
        raise InputError(
            "model", f"{name!r} is not a custom target's model; those are named {registered_model}-<target>"
        )
    return name


@dataclass
class TargetPredictor:
    """One loaded version of a custom-target model with the reader of its feature service.

    Attributes:
        model: a target bundle (``model.bundle.PersonaPredictor`` of kind ``target``), or anything
            with ``feature_columns`` and ``predict(frame)`` returning a ``prediction`` column.
        reader: the online features of the model's feature service.
        model_name: the registered model (``persona-T``).
        version: the registered version (reported with every prediction).
        clock: current UTC time (injectable for tests).
        unmaterialized: the model's views never materialized (asked only when no customer is found).
    """

    model: object
    reader: FeatureReader
    model_name: str
    version: str
    clock: Callable[[], dt.datetime] = utc_now
    max_batch: int = MAX_BATCH
    unmaterialized: Callable[[], list[str]] | None = None

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The model's input columns, in its order."""
        return tuple(self.model.feature_columns)  # type: ignore[attr-defined]

    def predict_customers(self, customer_ids: Sequence[object], request_id: str = "") -> Served:
        """Predict customers by id from the online store; unknown ones get a cold start with the reason.

        Raises:
            InputError: bad or oversized ``customer_ids``.
            NotMaterialized: no customer found, and the model's views were never materialized.
            store.online_reader.FeatureStoreError: the online store cannot be read.
        """
        ids = check_ids(customer_ids, self.max_batch)
        served_at = self.clock()
        batch = self.reader.read(ids)
        reasons: list[str | None] = [None] * len(batch)
        for i, missing in enumerate(batch.missing_views):
            if missing:
                found = any(stamps[i] is not None for stamps in batch.event_ts.values())
                reasons[i] = cold_start_reason(missing, found, NOT_IN_STORE)
        ok = np.array([r is None for r in reasons], dtype=bool)
        if not ok.any() and self.unmaterialized is not None and (views := self.unmaterialized()):
            raise NotMaterialized(
                f"the online store holds no rows of {', '.join(views)} ({self.model_name}'s features): run "
                "`persona features materialize`"
            )
        values = np.full(len(batch), np.nan)
        rows = np.flatnonzero(ok)
        if len(rows):
            part = batch if len(rows) == len(batch) else batch.take(rows)
            out = self.model.predict(batch_frame(part, self.feature_columns))  # type: ignore[attr-defined]
            values[rows] = np.asarray(out[PREDICTION], dtype=float)
        freshness = Freshness(batch, served_at)
        results: list[dict[str, object]] = []
        for i, customer in enumerate(ids.tolist()):
            stamps, age = freshness.row(i)
            value = float(values[i])
            results.append(
                {
                    "customer_id": customer,
                    "status": "ok" if ok[i] else "cold_start",
                    PREDICTION: value if ok[i] and np.isfinite(value) else None,
                    "model": self.model_name,
                    "model_version": self.version,
                    "features_as_of": stamps,
                    "feature_age_seconds": age,
                    "cold_start_reason": reasons[i],
                }
            )
        log = LogBatch(
            request_id=request_id,
            served_at=served_at,
            endpoint=ENDPOINT,
            model_version=self.version,
            customer_ids=[int(c) for c in ids.tolist()],
            features={FEATURES_AT: batch.newest_event_times()},
            predictions={PREDICTION: values},
            reasons=reasons,
            numeric_columns=batch.numeric_columns,
            numeric=batch.numeric,
            string_columns=batch.string_columns,
            strings=batch.strings,
            feature_order=self.feature_columns,
        )
        return Served(results, log)


__all__ = ["ENDPOINT", "NotMaterialized", "TargetPredictor", "model_for", "target_model_name"]
