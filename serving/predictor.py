"""The plain serving predictor: online features + model + input validation, no web framework.

:class:`ServingPredictor` answers "predict these customers" (features read from the online
store) and "predict from these feature values" (what-if, customers not yet in the store). The
BentoML service (:mod:`serving.service`) is a thin shell around it; tests use it directly with a
fake model and a fake feature reader.

A customer the store does not know (no row in a required view) is never predicted from null
features: the answer is an explicit cold start with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from model.preprocess import P_ALIVE
from model.runner import PREDICTION_COLUMNS, ModelRunner, make_runner
from serving.bounds import DEFAULT_ABS_MAX, DEFAULT_SIGMA_MARGIN, FeatureBounds
from serving.freshness import Freshness, cold_start_reason
from serving.prediction_log import FEATURES_AT, LogBatch
from store.feature_batch import FeatureBatch, split_columns

if TYPE_CHECKING:
    from model.uplift_runner import UpliftRunner

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class InputError(ValueError):
    """A request the caller must fix: ``field`` names what was wrong, ``status`` is 400 or 413."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status


class FeatureReader(Protocol):
    """Reads feature values by customer id (see :class:`store.online_reader.OnlineFeatureReader`)."""

    @property
    def views(self) -> list[str]:
        """The feature views the reader reads."""
        ...

    def read(self, ids: Sequence[int] | np.ndarray) -> FeatureBatch:
        """Features of ``ids``, in order."""
        ...


def check_batch_size(count: int, field_name: str, max_batch: int = MAX_BATCH) -> None:
    """Raise :class:`InputError` for an empty (400) or oversized (413) batch."""
    if count < 1:
        raise InputError(field_name, "must hold at least one item")
    if count > max_batch:
        raise InputError(field_name, f"holds {count} items; at most {max_batch} per request", 413)


def check_ids(customer_ids: Sequence[object], max_batch: int = MAX_BATCH) -> np.ndarray:
    """Customer ids as int64 (raises :class:`InputError` naming the bad item)."""
    check_batch_size(len(customer_ids), "customer_ids", max_batch)
    for i, value in enumerate(customer_ids):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"customer_ids[{i}]", f"expected an integer, got {value!r}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise InputError(f"customer_ids[{i}]", f"{value} is outside the 64-bit integer range")
    return np.asarray(customer_ids, dtype=np.int64)


def utc_now() -> dt.datetime:
    """The current time, tz-aware UTC."""
    return dt.datetime.now(dt.UTC)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class Served:
    """The answer to one request: one result dict per row, and the rows for the prediction log."""

    results: list[dict[str, object]]
    log: LogBatch


@dataclass
class ServingPredictor:
    """One loaded model version with its feature reader.

    Attributes:
        model: a Persona bundle (``model.bundle.PersonaPredictor``) or anything with
            ``feature_columns`` and ``predict(frame)`` returning the prediction columns.
        reader: where customer features come from (None: only ``predict_features`` works).
        version: the registered model version (reported with every prediction).
        model_name: the registered model's name (reported in explanations).
        clock: current UTC time (injectable for tests).
        max_batch: most rows per request.
        feature_abs_max / sigma_margin: plausible ranges of what-if values
            (:class:`serving.bounds.FeatureBounds`).
    """

    model: object
    reader: FeatureReader | None = None
    version: str = ""
    model_name: str = ""
    clock: Callable[[], dt.datetime] = utc_now
    max_batch: int = MAX_BATCH
    feature_abs_max: float = DEFAULT_ABS_MAX
    sigma_margin: float = DEFAULT_SIGMA_MARGIN
    runner: ModelRunner = field(init=False)
    bounds: FeatureBounds = field(init=False)

    def __post_init__(self) -> None:
        self.runner = make_runner(self.model)
        self.bounds = FeatureBounds.from_model(self.model, self.feature_abs_max, self.sigma_margin)
        self.numeric_columns, self.string_columns = split_columns(
            self.runner.feature_columns, set(self.runner.string_columns)
        )
        if self.reader is not None:
            served = set(getattr(self.reader, "columns", self.runner.feature_columns))
            lacking = [c for c in self.runner.feature_columns if c not in served]
            if lacking:
                raise ValueError(f"the feature reader does not serve {lacking}")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The model's feature columns, in the runner's order."""
        return self.runner.feature_columns

    # ---- validation ----
    def check_batch_size(self, count: int, field_name: str) -> None:
        """Raise :class:`InputError` for an empty (400) or oversized (413) batch."""
        check_batch_size(count, field_name, self.max_batch)

    def check_ids(self, customer_ids: Sequence[object]) -> np.ndarray:
        """Customer ids as int64 (raises :class:`InputError` naming the bad item)."""
        return check_ids(customer_ids, self.max_batch)

    def feature_batch(self, rows: Sequence[Mapping[str, object]]) -> tuple[FeatureBatch, list[int | None]]:
        """Validate caller-supplied feature rows field by field.

        Every row needs ``features`` with exactly the model's feature columns: numbers (finite,
        not booleans, within :attr:`bounds`) for numeric columns, strings for categorical ones,
        null for unknown.

        Returns:
            The batch and the optional customer id per row.

        Raises:
            InputError: naming the first offending field.
        """
        self.check_batch_size(len(rows), "rows")
        expected = set(self.feature_columns)
        n = len(rows)
        batch = FeatureBatch.empty([0] * n, self.numeric_columns, self.string_columns)
        ids: list[int | None] = []
        numeric_index = {c: j for j, c in enumerate(self.numeric_columns)}
        string_index = {c: j for j, c in enumerate(self.string_columns)}
        for i, row in enumerate(rows):
            where = f"rows[{i}]"
            if not isinstance(row, Mapping):
                raise InputError(where, "expected an object with 'features'")
            unknown_keys = [k for k in row if k not in ("customer_id", "features")]
            if unknown_keys:
                raise InputError(
                    f"{where}.{unknown_keys[0]}", "unknown field; a row has 'customer_id' and 'features'"
                )
            customer_id = row.get("customer_id")
            if customer_id is not None and (
                isinstance(customer_id, bool)
                or not isinstance(customer_id, int)
                or not INT64_MIN <= customer_id <= INT64_MAX
            ):
                raise InputError(
                    f"{where}.customer_id", f"expected a 64-bit integer or null, got {customer_id!r}"
                )
            ids.append(customer_id)
            features = row.get("features")
            if not isinstance(features, Mapping):
                raise InputError(f"{where}.features", "expected an object mapping feature name to value")
            for name in features:
                if name not in expected:
                    raise InputError(
                        f"{where}.features.{name}",
                        f"unknown feature; model v{self.version or '?'} expects "
                        f"{', '.join(self.feature_columns)}",
                    )
            missing = [c for c in self.feature_columns if c not in features]
            if missing:
                raise InputError(
                    f"{where}.features.{missing[0]}",
                    f"missing feature(s) {', '.join(missing)}; send null for an unknown value",
                )
            for name, value in features.items():
                if value is None:
                    continue
                if name in numeric_index:
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise InputError(
                            f"{where}.features.{name}", f"expected a number or null, got {value!r}"
                        )
                    try:
                        number = float(value)
                    except OverflowError:  # an integer of hundreds of digits
                        number = math.inf
                    if not math.isfinite(number):
                        shown = f"{str(value)[:20]}..." if len(str(value)) > 24 else repr(value)
                        raise InputError(f"{where}.features.{name}", f"expected a finite number, got {shown}")
                    why = self.bounds.violation(name, number)
                    if why is not None:
                        raise InputError(f"{where}.features.{name}", why)
                    batch.numeric[i, numeric_index[name]] = number
                else:
                    if not isinstance(value, str):
                        raise InputError(
                            f"{where}.features.{name}", f"expected a string or null, got {value!r}"
                        )
                    batch.strings[i, string_index[name]] = value
        batch.ids = np.asarray([0 if c is None else c for c in ids], dtype=np.int64)
        return batch, ids

    # ---- predictions ----
    def predict_customers(
        self, customer_ids: Sequence[int], request_id: str = "", explain: bool = False,
        uplift: UpliftRunner | None = None,
    ) -> Served:
        """Predict for customers by id from the online store (cold start for unknown ones).

        With ``explain``, every predicted row also gets its reasons (:mod:`model.explain`); with
        an ``uplift`` model, each offer's expected uplift and the next best action
        (:func:`serving.uplift.uplift_fields`).

        Raises:
            InputError: bad or oversized ``customer_ids``.
            RuntimeError: no feature reader configured.
            store.online_reader.FeatureStoreError: the online store cannot be read.
        """
        ids = self.check_ids(customer_ids)
        if self.reader is None:
            raise RuntimeError("this predictor has no feature reader; use predict_features")
        batch = self.reader.read(ids)
        return self._serve(
            batch, [int(i) for i in ids.tolist()], "predict", request_id, with_freshness=True, explain=explain,
            uplift=uplift,
        )

    def predict_features(
        self, rows: Sequence[Mapping[str, object]], request_id: str = "", explain: bool = False,
        uplift: UpliftRunner | None = None,
    ) -> Served:
        """Predict from caller-supplied feature rows (validated field by field).

        Raises:
            InputError: naming the offending field.
        """
        batch, ids = self.feature_batch(rows)
        return self._serve(batch, ids, "predict_features", request_id, with_freshness=False, explain=explain,
                           uplift=uplift)

    def _serve(
        self,
        batch: FeatureBatch,
        ids: list[int | None],
        endpoint: str,
        request_id: str,
        with_freshness: bool,
        explain: bool = False,
        uplift: UpliftRunner | None = None,
    ) -> Served:
        served_at = self.clock()
        n = len(batch)
        reasons: list[str | None] = [None] * n
        for i, missing in enumerate(batch.missing_views):
            if missing:
                found = any(stamps[i] is not None for stamps in batch.event_ts.values())
                reasons[i] = cold_start_reason(missing, found)
        ok = np.array([r is None for r in reasons], dtype=bool)
        predictions = self._predict(batch, ok)
        reasons_of = self._explain(batch, ok, predictions) if explain else None
        uplift_of = None
        if uplift is not None:
            from serving.uplift import uplift_fields

            try:
                uplift_of = uplift_fields(uplift, batch, ok)
            except Exception:  # the uplift model never fails a churn answer: its fields are left out
                logger.exception("uplift v%s failed on request %s; answering without uplift", uplift.version,
                                 request_id)
        results: list[dict[str, object]] = []
        churn, orders, spend, segment, persona, action = (predictions[c].tolist() for c in PREDICTION_COLUMNS)
        p_alive = predictions[P_ALIVE].tolist() if P_ALIVE in predictions else None
        flags = ok.tolist()
        freshness_of = Freshness(batch, served_at) if with_freshness else None
        for i in range(n):
            freshness = freshness_of.row(i) if freshness_of is not None else ({}, None)
            result: dict[str, object]
            if flags[i]:
                result = {
                    "customer_id": ids[i],
                    "status": "ok",
                    "churn_probability": _finite_or_none(float(churn[i])),
                    "expected_orders": _finite_or_none(float(orders[i])),
                    "expected_spend": _finite_or_none(float(spend[i])),
                    "segment": int(segment[i]),
                    "persona": str(persona[i]),
                    "action": str(action[i]),
                    "p_alive": None if p_alive is None else _finite_or_none(float(p_alive[i])),
                }
            else:
                result = {
                    "customer_id": ids[i],
                    "status": "cold_start",
                    "churn_probability": None,
                    "expected_orders": None,
                    "expected_spend": None,
                    "segment": None,
                    "persona": None,
                    "action": None,
                    "p_alive": None,
                }
            result.update(
                {
                    "model_version": self.version,
                    "features_as_of": freshness[0],
                    "feature_age_seconds": freshness[1],
                    "cold_start_reason": reasons[i],
                }
            )
            if reasons_of is not None:
                result["explanation"] = reasons_of.get(i)
            if uplift_of is not None:
                result.update(uplift_of.fields(i))
            results.append(result)
        log = LogBatch(
            request_id=request_id,
            served_at=served_at,
            endpoint=endpoint,
            model_version=self.version,
            customer_ids=list(ids),
            features={FEATURES_AT: batch.newest_event_times()} if with_freshness else {},
            predictions=predictions if uplift_of is None else {**predictions, **uplift_of.log_columns},
            reasons=reasons,
            numeric_columns=batch.numeric_columns,
            numeric=batch.numeric,
            string_columns=batch.string_columns,
            strings=batch.strings,
            feature_order=self.feature_columns,
        )
        return Served(results, log)

    def _explain(
        self, batch: FeatureBatch, ok: np.ndarray, predictions: dict[str, np.ndarray]
    ) -> dict[int, dict[str, object]]:
        """Row index -> explanation of each predicted row (off the plain path: only when asked).

        Raises:
            InputError: 501 naming ``explain`` when the served model cannot be explained.
        """
        from model.explain import NotExplainable, explain
        from model.runner import batch_frame

        rows = np.flatnonzero(ok)
        if not len(rows):
            return {}
        part = batch if len(rows) == len(batch) else batch.take(rows)
        frame = batch_frame(part, self.feature_columns)
        chosen = {c: np.asarray(predictions[c])[rows] for c in PREDICTION_COLUMNS}
        try:
            explained = explain(self.model, frame, chosen, self.model_name, self.version)  # type: ignore[arg-type]
        except NotExplainable as exc:
            raise InputError("explain", f"model v{self.version or '?'} cannot be explained: {exc}", 501) from None
        return dict(zip(rows.tolist(), explained, strict=True))

    def _predict(self, batch: FeatureBatch, ok: np.ndarray) -> dict[str, np.ndarray]:
        n = len(batch)
        if n and ok.all():
            predicted = self.runner.predict(batch)
            return {c: np.asarray(predicted[c]) for c in (*PREDICTION_COLUMNS, *_extras(predicted))}
        out: dict[str, np.ndarray] = {
            "churn_probability": np.full(n, np.nan),
            "expected_orders": np.full(n, np.nan),
            "expected_spend": np.full(n, np.nan),
            "segment": np.full(n, -1, dtype=np.int64),
            "persona": np.full(n, None, dtype=object),
            "action": np.full(n, None, dtype=object),
        }
        if not ok.any():
            return out
        rows = np.flatnonzero(ok)
        predicted = self.runner.predict(batch if len(rows) == n else batch.take(rows))
        for column in _extras(predicted):
            out[column] = np.full(n, np.nan)
        for column in (*PREDICTION_COLUMNS, *_extras(predicted)):
            values = np.asarray(predicted[column])
            if column in ("churn_probability", "expected_orders", "expected_spend", P_ALIVE):
                out[column][rows] = values.astype(float)
            elif column == "segment":
                out[column][rows] = values.astype(np.int64)
            else:
                out[column][rows] = values.astype(object)
        return out


def _extras(predicted: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Optional outputs the runner gave beside :data:`PREDICTION_COLUMNS` (``p_alive``)."""
    return (P_ALIVE,) if P_ALIVE in predicted else ()
