"""Drift of features and predictions: pure frames in, an Evidently snapshot and a summary out.

Columns are screened before Evidently sees them: a column with no values on one side, or a
single value (category) on both, cannot be tested and gets status ``insufficient_data`` instead
of an exception. Missing-value shares are computed here on the full frames, because Evidently's
drift tests drop NaN. Results are read back by metric type (``ValueDrift``, ``MissingValueCount``),
never by position.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from evidently.core.report import Snapshot

if TYPE_CHECKING:  # evidently takes seconds to import; only the report functions need it
    from collections.abc import Iterable, Mapping

    from monitoring.policy import DriftPolicy

Kind = Literal["numerical", "categorical"]
Role = Literal["feature", "prediction", "persona"]
ColumnStatus = Literal["ok", "drift", "insufficient_data"]
PERSONA_COLUMN = "persona"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test.

    Attributes:
        column: column name (the same string as in Feast, MLflow and the report).
        role: ``feature``, ``prediction`` or ``persona``.
        kind: ``numerical`` or ``categorical`` (None when the column cannot be tested at all).
        status: ``ok``, ``drift`` or ``insufficient_data``.
        score: the drift score of ``method`` (None when untested).
        method / threshold: the Evidently method and threshold used.
        reference_missing / current_missing: share of missing values on each side (full frames).
        reason: why the column could not be tested.
    """

    column: str
    role: Role
    kind: Kind | None
    status: ColumnStatus
    score: float | None = None
    method: str | None = None
    threshold: float | None = None
    reference_missing: float = 0.0
    current_missing: float = 0.0
    reason: str = ""

    @property
    def missing_increase(self) -> float:
        """Rise of the missing-value share from reference to window (negative: fewer missing)."""
        return self.current_missing - self.reference_missing


@dataclass(frozen=True)
class DriftSummary:
    """Every column's result plus the row counts."""

    reference_rows: int
    current_rows: int
    columns: tuple[ColumnDrift, ...] = ()

    @property
    def features(self) -> list[ColumnDrift]:
        """The feature columns' results."""
        return [c for c in self.columns if c.role == "feature"]

    @property
    def predictions(self) -> list[ColumnDrift]:
        """The prediction columns' results."""
        return [c for c in self.columns if c.role == "prediction"]

    def column(self, name: str) -> ColumnDrift | None:
        """The result for ``name``, or None."""
        return next((c for c in self.columns if c.column == name), None)

    @property
    def drifted_share(self) -> float | None:
        """Share of testable features that drifted (None when none is testable)."""
        testable = [c for c in self.features if c.status != "insufficient_data"]
        if not testable:
            return None
        return sum(c.status == "drift" for c in testable) / len(testable)

    def to_frame(self) -> pd.DataFrame:
        """One row per column (for the summary page and JSON)."""
        return pd.DataFrame([{**c.__dict__, "missing_increase": c.missing_increase} for c in self.columns])


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is tested (or why it is not)."""

    column: str
    role: Role
    kind: Kind | None
    method: str | None = None
    threshold: float | None = None
    reason: str = ""

    @property
    def testable(self) -> bool:
        """Whether the column gets a drift test (no reason to skip it)."""
        return not self.reason


@dataclass
class DriftRun:
    """An Evidently snapshot (None when nothing could be tested) and what it showed."""

    summary: DriftSummary
    snapshot: Snapshot | None = None
    plans: list[ColumnPlan] = field(default_factory=list)


# --------------------------------------------------------------------------- pure screening
def _is_listlike(series: pd.Series) -> bool:
    sample = series.dropna().head(5)
    return any(isinstance(v, list | tuple | np.ndarray | dict) for v in sample)


def column_kind(series: pd.Series) -> Kind | None:
    """``numerical`` for numbers, ``categorical`` for strings, booleans and categories, else None.

    Datetimes and list-valued columns (embeddings) are not drift-tested here.
    """
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numerical"
    if pd.api.types.is_datetime64_any_dtype(series) or _is_listlike(series):
        return None
    return "categorical"


def missing_share(series: pd.Series | None) -> float:
    """Share of missing values (1.0 for an absent or empty column)."""
    if series is None or len(series) == 0:
        return 1.0
    return float(series.isna().mean())


def screen_column(reference: pd.Series | None, current: pd.Series | None) -> str:
    """Why a column cannot be drift-tested, or ``""`` when it can.

    A column absent from one side, with no values on one side, or with a single distinct value
    (one category) across both sides has nothing to compare.
    """
    if reference is None:
        return "not in the reference data"
    if current is None:
        return "not in the current window"
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty and cur.empty:
        return "all values missing on both sides"
    if ref.empty:
        return "all values missing in the reference"
    if cur.empty:
        return "all values missing in the current window"
    if pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur) \
            and not pd.api.types.is_bool_dtype(ref):
        low, high = min(ref.min(), cur.min()), max(ref.max(), cur.max())
        single, value = low == high, low
    else:  # compare as text, over the distinct values only (cheap on large frames)
        distinct = {str(v) for v in ref.unique()} | {str(v) for v in cur.unique()}
        single, value = len(distinct) < 2, next(iter(distinct))
    return f"a single value ({value}) on both sides" if single else ""


def plan_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[str],
    predictions: Mapping[str, float],
    policy: DriftPolicy,
    prediction_method: str = "wasserstein",
) -> list[ColumnPlan]:
    """Decide method, threshold or the reason it is untestable, for every monitored column.

    Args:
        reference: the training reference (features and predictions).
        current: the current window.
        features: feature columns (in model order).
        predictions: numeric prediction column -> threshold.
        policy: drift methods and thresholds per column type.
        prediction_method: method for the numeric prediction columns.
    """
    plans: list[ColumnPlan] = []
    ignored = set(policy.ignore)
    columns: list[tuple[str, Role]] = [(c, "feature") for c in features if c not in ignored]
    columns += [(c, "prediction") for c in predictions]
    if PERSONA_COLUMN in reference or PERSONA_COLUMN in current:
        columns.append((PERSONA_COLUMN, "persona"))
    for name, role in columns:
        ref, cur = reference.get(name), current.get(name)
        probe = ref if ref is not None and ref.notna().any() else cur
        kind = column_kind(probe) if probe is not None else None
        reason = screen_column(ref, cur)
        if not reason and kind is None:
            reason = "not a number or a category"
        if role == "prediction":
            method, threshold = prediction_method, float(predictions[name])
        elif kind == "categorical":
            method, threshold = policy.categorical.method, policy.categorical.threshold
        else:
            method, threshold = policy.numerical.method, policy.numerical.threshold
        threshold = float(policy.column_thresholds.get(name, threshold))
        if reason:
            plans.append(ColumnPlan(name, role, kind, reason=reason))
        else:
            plans.append(ColumnPlan(name, role, kind, method, threshold))
    return plans


def _typed(frame: pd.DataFrame, plans: list[ColumnPlan]) -> pd.DataFrame:
    """Only the planned columns, numbers as float64 and categories as str (missing as None)."""
    out = pd.DataFrame(index=frame.index)
    for plan in plans:
        if plan.kind is None:
            continue
        values = frame[plan.column] if plan.column in frame else pd.Series(np.nan, index=frame.index)
        if plan.kind == "numerical":
            out[plan.column] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[plan.column] = values.astype(object).where(values.notna(), None).map(
                lambda v: None if v is None else str(v))
    return out.reset_index(drop=True)


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, sampled without replacement (the frame itself when smaller)."""
    return frame if len(frame) <= max_rows else frame.sample(max_rows, random_state=seed)


# --------------------------------------------------------------------------- Evidently edge
def build_report(plans: list[ColumnPlan], metadata: Mapping[str, str] | None = None, drift_share: float = 0.5):
    """An Evidently report of the planned columns, led by the dataset drift summary.

    First ``DriftedColumnsCount`` over the testable features (how many drifted and their share,
    each with its own method and threshold, failing at ``drift_share``: the policy's
    ``share_threshold``); then one ``ValueDrift`` per testable column, the persona mix
    (``UniqueValueCount``) and ``MissingValueCount`` per typed feature.
    """
    from evidently import Report
    from evidently.metrics import DriftedColumnsCount, MissingValueCount, UniqueValueCount, ValueDrift

    metrics: list = []
    features = [p for p in plans if p.testable and p.role == "feature"]
    if features:
        metrics.append(DriftedColumnsCount(
            columns=[p.column for p in features], drift_share=drift_share,
            per_column_method={p.column: p.method for p in features if p.method is not None},
            per_column_threshold={p.column: p.threshold for p in features if p.threshold is not None}))
    metrics += [ValueDrift(column=p.column, method=p.method, threshold=p.threshold) for p in plans if p.testable]
    if any(p.column == PERSONA_COLUMN and p.testable for p in plans):
        metrics.append(UniqueValueCount(column=PERSONA_COLUMN))
    metrics += [MissingValueCount(column=p.column) for p in plans
                if p.role == "feature" and p.kind is not None]
    return Report(metrics, metadata=dict(metadata or {}), include_tests=True)


def _dataset(frame: pd.DataFrame, plans: list[ColumnPlan]):
    from evidently import DataDefinition, Dataset

    definition = DataDefinition(
        numerical_columns=[p.column for p in plans if p.kind == "numerical"],
        categorical_columns=[p.column for p in plans if p.kind == "categorical"],
    )
    return Dataset.from_pandas(frame, data_definition=definition)


def read_value_drift(snapshot: Snapshot) -> dict[str, tuple[float, bool, str | None, float | None]]:
    """``column -> (score, drifted, method, threshold)`` from every ``ValueDrift`` result.

    Reads results by metric type; ``drifted`` is the verdict of the metric's drift test.
    """
    from evidently.core.metric_types import SingleValue
    from evidently.metrics import ValueDrift

    out = {}
    for metric_id, result in snapshot.metric_results.items():
        metric = snapshot.context.get_metric(metric_id).to_metric()
        if not isinstance(metric, ValueDrift) or not isinstance(result, SingleValue):
            continue
        drifted = any(t.status.value == "FAIL" for t in result.tests)
        params = result.metric_value_location.metric.params if result.metric_value_location else {}
        threshold = params.get("threshold", metric.threshold)
        out[metric.column] = (float(result.value), drifted, params.get("method", metric.method),
                              float(threshold) if threshold is not None else None)
    return out


def tagged(snapshot: Snapshot, tags: Mapping[str, str]) -> Snapshot:
    """A copy of ``snapshot`` tagged ``key=value`` per pair, the pairs added to its metadata too.

    Evidently's tags are plain strings, filterable in its UI; the metadata keeps each value by its
    key. The decision is known only after the report ran, hence a copy (Evidently's own dump and
    load) rather than tags given to ``Report.run``.
    """
    doc = snapshot.dump_dict()
    doc["tags"] = [*doc.get("tags", []), *(f"{key}={value}" for key, value in tags.items())]
    doc["metadata"] = {**doc.get("metadata", {}), **tags}
    return Snapshot.load_dict(doc)


def run_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[str],
    policy: DriftPolicy,
    predictions: Mapping[str, float] | None = None,
    prediction_method: str = "wasserstein",
    metadata: Mapping[str, str] | None = None,
    seed: int = 0,
    timestamp: dt.datetime | None = None,
) -> DriftRun:
    """Test every feature and prediction column for drift between reference and window.

    Args:
        reference: training reference rows (features and predictions).
        current: current window rows.
        features: feature columns to test.
        policy: methods, thresholds, ignored columns and the sampling cap.
        predictions: numeric prediction column -> threshold (e.g. ``churn_probability``).
        prediction_method: drift method for the prediction columns.
        metadata: string metadata stored in the Evidently snapshot.
        seed: sampling seed.
        timestamp: the snapshot's time (default now); shown on the Evidently dashboard's time axis.

    Returns:
        The summary (always) and the Evidently snapshot (None when the window is empty or no
        column is testable).
    """
    predictions = dict(predictions or {})
    features = list(features)
    plans = plan_columns(reference, current, features, predictions, policy, prediction_method)
    snapshot = None
    scores: dict[str, tuple[float, bool, str | None, float | None]] = {}
    if len(current) and len(reference) and any(p.testable for p in plans):
        ref = _typed(sample_rows(reference, policy.max_rows, seed), plans)
        cur = _typed(sample_rows(current, policy.max_rows, seed), plans)
        report = build_report(plans, metadata, policy.share_threshold)
        with warnings.catch_warnings():  # Evidently's numpy chatter (empty slices, divide by zero)
            warnings.simplefilter("ignore")
            when = timestamp.astimezone(dt.UTC).replace(tzinfo=None) if timestamp is not None else None
            snapshot = report.run(current_data=_dataset(cur, plans), reference_data=_dataset(ref, plans),
                                  timestamp=when)
        scores = read_value_drift(snapshot)
    columns = []
    for plan in plans:
        ref_missing = missing_share(reference.get(plan.column))
        cur_missing = missing_share(current.get(plan.column))
        if plan.testable and plan.column in scores:
            score, drifted, method, threshold = scores[plan.column]
            columns.append(ColumnDrift(plan.column, plan.role, plan.kind, "drift" if drifted else "ok", score,
                                       method, threshold, ref_missing, cur_missing))
        else:
            reason = plan.reason or ("empty window" if not len(current) else "not tested")
            columns.append(ColumnDrift(plan.column, plan.role, plan.kind, "insufficient_data",
                                       reference_missing=ref_missing, current_missing=cur_missing,
                                       reason=reason))
    summary = DriftSummary(len(reference), len(current), tuple(columns))
    return DriftRun(summary, snapshot, plans)
