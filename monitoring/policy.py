"""The retraining policy: a validated YAML file and a pure decision over monitoring facts.

``decide`` turns what the drift report, the persona shares and the matured labels showed into
one of five statuses:

* ``insufficient_data`` - too few rows in the window (or nothing left to compare): never retrain;
* ``data_quality`` - a feature's missing-value share jumped: fix the pipeline, do not retrain on NaN;
* ``retrain`` - a trigger fired (share of drifted features, a key feature, a prediction, the
  persona mix, or a quality drop) and the cooldown has passed;
* ``cooldown`` - a trigger fired but the last retrain is too recent;
* ``ok`` - nothing crossed its threshold.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import PersonaError, first_validation_error

if TYPE_CHECKING:
    from monitoring.drift import DriftSummary
    from monitoring.quality import QualityCheck
    from monitoring.shares import PersonaShift

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policy.yaml"

# Evidently 0.7 drift methods by column type (names as its stattest registry spells them).
NUMERICAL_METHODS = frozenset({"wasserstein", "ks", "psi", "kl_div", "jensenshannon", "anderson",
                               "cramer_von_mises", "mannw", "t_test", "ed", "es", "empirical_mmd",
                               "hellinger"})
CATEGORICAL_METHODS = frozenset({"jensenshannon", "chisquare", "psi", "kl_div", "z", "TVD", "g_test",
                                 "fisher_exact", "hellinger"})
QUALITY_METRICS = {"roc_auc": True, "pr_auc": True, "brier": False, "log_loss": False, "ece": False}
"""Churn quality metrics the policy can watch -> whether higher is better."""

Status = Literal["ok", "retrain", "cooldown", "insufficient_data", "data_quality"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MethodRule(_Frozen):
    """An Evidently drift method and the threshold at which a column counts as drifted."""

    method: str
    threshold: float = Field(gt=0.0)


def _check_method(method: str, allowed: frozenset[str] | set[str], kind: str) -> None:
    if method not in allowed:
        raise ValueError(f"unknown {kind} drift method {method!r}; use one of {', '.join(sorted(allowed))}")


def _positive_thresholds(value: dict[str, float]) -> dict[str, float]:
    bad = [k for k, v in value.items() if not (isinstance(v, int | float) and v > 0)]
    if bad:
        raise ValueError(f"thresholds must be positive numbers: {', '.join(bad)}")
    return value


class DriftPolicy(_Frozen):
    """Feature drift triggers.

    Attributes:
        share_threshold: retrain when at least this share of testable features drifted.
        numerical / categorical: drift method and threshold per column type.
        key_features: features that trigger a retrain on their own when they drift.
        column_thresholds: per-feature thresholds overriding the type's threshold.
        ignore: features left out of drift tests (e.g. ones that trend by construction).
        max_rows: reference and window are sampled to at most this many rows for the tests
            (distance methods do not get stricter with more rows; the report gets faster).
    """

    share_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    numerical: MethodRule = MethodRule(method="wasserstein", threshold=0.1)
    categorical: MethodRule = MethodRule(method="jensenshannon", threshold=0.1)
    key_features: tuple[str, ...] = ()
    column_thresholds: dict[str, float] = Field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    max_rows: int = Field(default=20_000, ge=100)

    @field_validator("numerical")
    @classmethod
    def _numerical_method(cls, rule: MethodRule) -> MethodRule:
        _check_method(rule.method, NUMERICAL_METHODS, "numerical")
        return rule

    @field_validator("categorical")
    @classmethod
    def _categorical_method(cls, rule: MethodRule) -> MethodRule:
        _check_method(rule.method, CATEGORICAL_METHODS, "categorical")
        return rule

    @field_validator("column_thresholds")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        return _positive_thresholds(value)

    @model_validator(mode="after")
    def _key_not_ignored(self) -> DriftPolicy:
        both = sorted(set(self.key_features) & set(self.ignore))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both a key feature and ignored")
        return self


class PredictionPolicy(_Frozen):
    """Prediction drift triggers.

    Attributes:
        method: drift method for the numeric prediction columns.
        thresholds: prediction column -> threshold (a column drifting past it triggers a retrain).
        persona_share_threshold: retrain when any persona's share of customers moves by at least
            this much (absolute, e.g. 0.1 = ten percentage points).
    """

    method: str = "wasserstein"
    thresholds: dict[str, float] = Field(default_factory=lambda: {"churn_probability": 0.15,
                                                                  "expected_spend": 0.15})
    persona_share_threshold: float = Field(default=0.1, gt=0.0, le=1.0)

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        _check_method(value, NUMERICAL_METHODS, "numerical")
        return value

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        return _positive_thresholds(value)


class QualityPolicy(_Frozen):
    """Model quality once labels matured: retrain when ``metric`` worsens by ``max_drop``."""

    metric: str = "roc_auc"
    max_drop: float = Field(default=0.05, gt=0.0)
    min_rows: int = Field(default=200, ge=1)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in QUALITY_METRICS:
            raise ValueError(f"unknown quality metric {value!r}; use one of {', '.join(QUALITY_METRICS)}")
        return value


class MissingPolicy(_Frozen):
    """Missing values, checked apart from drift (drift tests ignore NaN)."""

    max_increase: float = Field(default=0.2, gt=0.0, le=1.0)


class SkewPolicy(_Frozen):
    """Skew replay (:mod:`monitoring.skew`): served features rebuilt offline and compared.

    Attributes:
        max_mismatch_rate: a feature whose served values differ from the offline ones in more
            than this share of replayed rows blocks promotion.
        sample_rows: served rows replayed at most (a seeded sample).
        rtol / atol: numbers within these tolerances match (the online store keeps 32-bit floats).
    """

    max_mismatch_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    sample_rows: int = Field(default=2000, ge=1)
    rtol: float = Field(default=1e-4, ge=0.0)
    atol: float = Field(default=1e-6, ge=0.0)


class MonitoringPolicy(_Frozen):
    """The whole policy file (see ``monitoring/policy.yaml``)."""

    min_rows: int = Field(default=1000, ge=1)
    min_reference_rows: int = Field(default=100, ge=1)
    cooldown_hours: float = Field(default=24.0, ge=0.0)
    drift: DriftPolicy = DriftPolicy()
    predictions: PredictionPolicy = PredictionPolicy()
    quality: QualityPolicy = QualityPolicy()
    missing: MissingPolicy = MissingPolicy()
    skew: SkewPolicy = SkewPolicy()


def load_policy(path: Path | str | None = None) -> MonitoringPolicy:
    """Read and validate a policy file.

    Args:
        path: YAML file (default ``monitoring/policy.yaml``).

    Raises:
        PersonaError: naming the file, the offending key and the reason.
    """
    path = Path(path) if path is not None else DEFAULT_POLICY_PATH
    if not path.is_file():
        raise PersonaError(f"monitoring policy {path}: file not found; pass an existing --policy file")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise PersonaError(f"monitoring policy {path}: not valid YAML{where}; fix the syntax") from None
    if not isinstance(doc, dict):
        raise PersonaError(f"monitoring policy {path}: expected a mapping of keys at the top level")
    try:
        return MonitoringPolicy.model_validate(doc)
    except ValidationError as exc:
        key, reason = first_validation_error(exc)
        raise PersonaError(f"monitoring policy {path}: key {key}: {reason}") from None


# --------------------------------------------------------------------------- the decision (pure)
@dataclass(frozen=True)
class Decision:
    """What the policy concluded.

    Attributes:
        status: see the module docstring.
        retrain: whether a retrain should run now.
        triggers: the triggers that fired (``feature_share``, ``key_feature:<name>``,
            ``prediction:<column>``, ``persona_share``, ``quality``), even when not acted on.
        reasons: one human sentence per trigger or blocker.
        notes: what could not be checked and why.
    """

    status: Status
    retrain: bool
    triggers: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """The decision in one line."""
        text = "; ".join(self.reasons) if self.reasons else "no threshold crossed"
        return f"{self.status}{' -> retrain' if self.retrain else ''}: {text}"


def quality_drop(check: QualityCheck, metric: str) -> float | None:
    """How much worse ``metric`` is now than at training (positive = worse), or None if unknown."""
    now, then = check.current.get(metric), check.reference.get(metric)
    if now is None or then is None or not (math.isfinite(now) and math.isfinite(then)):
        return None
    return (then - now) if QUALITY_METRICS[metric] else (now - then)


def decide(
    drift: DriftSummary,
    policy: MonitoringPolicy,
    now: dt.datetime,
    last_retrain_at: dt.datetime | None = None,
    personas: PersonaShift | None = None,
    quality: QualityCheck | None = None,
) -> Decision:
    """Apply the policy to one monitoring run's facts.

    Args:
        drift: per-column drift results and row counts.
        policy: the validated policy.
        now: the decision time (tz-aware).
        last_retrain_at: when the last retrain started, or None.
        personas: persona share shift (optional).
        quality: churn quality on matured labels (optional).

    Returns:
        The decision; ``retrain`` is True only with status ``retrain``.
    """
    notes: list[str] = []
    if drift.current_rows < policy.min_rows:
        return Decision("insufficient_data", False, reasons=(
            f"{drift.current_rows} rows in the window; the policy needs at least {policy.min_rows}",))
    if drift.reference_rows < policy.min_reference_rows:
        return Decision("insufficient_data", False, reasons=(
            f"{drift.reference_rows} reference rows; the policy needs at least {policy.min_reference_rows}",))
    features = [c for c in drift.features if c.column not in policy.drift.ignore]
    untestable: dict[str, list[str]] = {}
    for col in drift.columns:
        if col.status == "insufficient_data" and col.column not in policy.drift.ignore:
            untestable.setdefault(col.reason, []).append(col.column)
    notes += [f"insufficient data ({reason}): {', '.join(names)}" for reason, names in untestable.items()]
    testable = [c for c in features if c.status != "insufficient_data"]
    if not testable:
        return Decision("insufficient_data", False, reasons=(
            "no feature has data on both sides to compare",), notes=tuple(notes))

    missing = [c for c in features if c.missing_increase > policy.missing.max_increase]
    triggers: list[str] = []
    reasons: list[str] = []
    drifted = [c for c in testable if c.status == "drift"]
    share = len(drifted) / len(testable)
    if share >= policy.drift.share_threshold:
        triggers.append("feature_share")
        reasons.append(f"{len(drifted)}/{len(testable)} features drifted ({share:.0%} >= "
                       f"{policy.drift.share_threshold:.0%})")
    for name in policy.drift.key_features:
        key = drift.column(name)
        if key is None:
            notes.append(f"key feature {name} is not among the model's features")
        elif key.status == "drift":
            triggers.append(f"key_feature:{name}")
            reasons.append(f"key feature {name} drifted ({key.method} {key.score:.3g} vs threshold "
                           f"{key.threshold:.3g})")
    for name in policy.predictions.thresholds:
        prediction = drift.column(name)
        if prediction is None or prediction.status == "insufficient_data":
            notes.append(f"prediction {name} could not be tested")
        elif prediction.status == "drift":
            triggers.append(f"prediction:{name}")
            reasons.append(f"prediction {name} drifted ({prediction.method} {prediction.score:.3g} vs threshold "
                           f"{prediction.threshold:.3g})")
    persona_limit = policy.predictions.persona_share_threshold
    if personas is not None and personas.max_share_change is not None \
            and personas.max_share_change >= persona_limit:
        triggers.append("persona_share")
        reasons.append(f"persona {personas.max_share_persona!r} share moved by "
                       f"{personas.max_share_change:.1%} (threshold {persona_limit:.0%})")
    if quality is not None:
        drop = quality_drop(quality, policy.quality.metric)
        if quality.rows < policy.quality.min_rows or drop is None:
            notes.append(f"quality: {quality.rows} matured labelled rows (need {policy.quality.min_rows} "
                         "with both classes)")
        elif drop >= policy.quality.max_drop:
            triggers.append("quality")
            reasons.append(f"churn {policy.quality.metric} dropped by {drop:.3f} on {quality.rows} matured "
                           f"rows (threshold {policy.quality.max_drop:.3f})")

    if missing:
        listed = ", ".join(f"{c.column} {c.reference_missing:.0%}->{c.current_missing:.0%}" for c in missing)
        blocked = [f"missing values jumped in {listed}; fix the feature pipeline before retraining"]
        if triggers:
            blocked.append("retrain held back: " + "; ".join(reasons))
        return Decision("data_quality", False, tuple(triggers), tuple(blocked), tuple(notes))
    if not triggers:
        return Decision("ok", False, (), (f"{len(drifted)}/{len(testable)} features drifted ({share:.0%})",),
                        tuple(notes))
    if last_retrain_at is not None and policy.cooldown_hours > 0:
        ready_at = last_retrain_at + dt.timedelta(hours=policy.cooldown_hours)
        if now < ready_at:
            reasons.append(f"cooldown: last retrain at {last_retrain_at.isoformat(timespec='seconds')}, "
                           f"next allowed at {ready_at.isoformat(timespec='seconds')}")
            return Decision("cooldown", False, tuple(triggers), tuple(reasons), tuple(notes))
    return Decision("retrain", True, tuple(triggers), tuple(reasons), tuple(notes))
