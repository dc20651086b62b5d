"""Typed, frozen configuration for the training, promotion and scoring jobs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "model" / "actions.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricRule(_Frozen):
    """How one metric is compared between a candidate and the champion.

    Attributes:
        metric: metric name as logged to MLflow (e.g. ``churn_roc_auc``).
        higher_is_better: direction of the metric.
        threshold: the primary metric's required margin, or a guard metric's tolerated regression.
        relative: ``threshold`` is a fraction of the champion's value instead of an absolute amount.
    """

    metric: str = Field(min_length=1)
    higher_is_better: bool = True
    threshold: float = Field(default=0.0, ge=0.0)
    relative: bool = False


class BaselineRule(_Frozen):
    """A baseline of the same run that the candidate must beat on the holdout, first model included.

    Attributes:
        metric: the candidate's metric (e.g. ``churn_roc_auc``).
        baseline: the baseline's metric in the same run (e.g. ``baseline_rfm_roc_auc``).
        higher_is_better: direction of both metrics.
        threshold: the required margin; ``None``: the primary rule's margin.
    """

    metric: str = Field(min_length=1)
    baseline: str = Field(min_length=1)
    higher_is_better: bool = True
    threshold: float | None = Field(default=None, ge=0.0)


class GateConfig(_Frozen):
    """Promotion gate: beat the run's own ``baselines``, then the champion on ``primary``, within ``guards``."""

    primary: MetricRule = MetricRule(metric="churn_roc_auc", higher_is_better=True, threshold=0.002)
    guards: tuple[MetricRule, ...] = (
        MetricRule(metric="churn_brier", higher_is_better=False, threshold=0.02, relative=True),
        MetricRule(metric="spend_mae", higher_is_better=False, threshold=0.05, relative=True),
    )
    baselines: tuple[BaselineRule, ...] = (
        BaselineRule(metric="churn_roc_auc", baseline="baseline_logreg_roc_auc"),
        BaselineRule(metric="churn_roc_auc", baseline="baseline_rfm_roc_auc"),
        BaselineRule(metric="spend_mae", baseline="baseline_constant_spend_mae", higher_is_better=False,
                     threshold=0.0),
    )


class XGBParams(_Frozen):
    """Gradient-boosting hyper-parameters shared by the churn and value models."""

    n_estimators: int = Field(default=250, ge=1, le=5000)
    max_depth: int = Field(default=3, ge=1, le=16)
    learning_rate: float = Field(default=0.08, gt=0.0, le=1.0)
    subsample: float = Field(default=0.9, gt=0.0, le=1.0)
    colsample_bytree: float = Field(default=0.9, gt=0.0, le=1.0)
    min_child_weight: float = Field(default=5.0, ge=0.0)
    tweedie_variance_power: float = Field(default=1.5, gt=1.0, lt=2.0)
    monotone: bool = Field(
        default=True,
        description="Constrain churn and value to the buy-till-you-die directions in recency, tenure and "
        "recent orders (training.models.VALUE_MONOTONE); False: every feature free.",
    )
    btyd_features: bool = Field(
        default=True,
        description="Give the churn and value models BG/NBD's expected orders over the horizon and P(alive) "
        "as inputs (fitted on the training rows' latest snapshot, stored in the bundle; model.lifetime).",
    )
    orders_tweedie_variance_power: float = Field(
        default=1.2,
        gt=1.0,
        lt=2.0,
        description="Tweedie variance power of the expected-orders model (near 1: Poisson-like counts with "
        "an unbounded step; XGBoost's Poisson objective caps each step, which flattens the heaviest buyers).",
    )
    btyd_orders_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="BG/NBD's weight in the served expected orders (a weighted mean on the log scale of the "
        "orders booster's and BG/NBD's expectations; model.lifetime.blend_orders). 0: the booster alone. "
        "None: chosen per run, the weight of 0, 0.05, ..., 1 with the lowest RMSE on an inner time split of "
        "the training snapshots (0.5 when none exists; training.orders_weight). Applies only with "
        "btyd_features.",
    )
    n_jobs: int | None = Field(
        default=None, ge=1, description="Threads; None: the cores other processes leave idle (at least 1)."
    )


class PersonaParams(_Frozen):
    """KMeans personas: k is chosen by silhouette within ``[k_min, k_max]``.

    A retrain keeps the champion's k unless another k's silhouette beats it by ``keep_k_margin``:
    on weakly clustered customers silhouettes differ by noise, and a new k splits every persona.
    """

    k_min: int = Field(default=3, ge=2, le=30)
    k_max: int = Field(default=7, ge=2, le=30)
    fit_sample: int = Field(default=20_000, ge=100, description="Rows used to fit KMeans.")
    silhouette_sample: int = Field(default=4_000, ge=100, description="Rows used to score silhouette.")
    top_terms: int = Field(default=8, ge=1, le=50)
    max_reviews_per_segment: int = Field(default=4_000, ge=10)
    keep_k_margin: float = Field(default=0.02, ge=0.0, le=1.0,
                                 description="Silhouette gain needed to leave the champion's k.")

    @model_validator(mode="after")
    def _ordered(self) -> PersonaParams:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must be <= k_max ({self.k_max})")
        return self


class TrainConfig(_Frozen):
    """Everything one training run depends on besides the data (what applies is logged as MLflow params).

    Attributes:
        as_of: only snapshots whose label window ends on or before this time are used
            (``None``: the latest possible, from the transactions).
        horizon_days: label window after each snapshot.
        feature_service: Feast feature service the models read.
        train_snapshots: how many of the latest eligible snapshots feed training (bounds run time).
        holdout_snapshots: how many of the latest label-complete snapshots form the holdout.
        holdout_fraction: share of customers held out when the split is by customer (labels at
            one time, or too little history for a time split); stratified by label and seeded.
        min_train_snapshots / min_train_rows: below these a time split is not trusted and the
            plan switches to a customer split at the same dates (see :mod:`training.plan`).
        min_holdout_rows: below this even a customer split is refused.
        cv_folds: with labels at one time, also report the mean and spread of the primary metric
            over this many stratified customer folds (0: off).
        purge: drop training snapshots whose label window overlaps the holdout snapshot, so the
            holdout mimics deployment (no training label looks past the holdout's features).
            Without it the same customers' nearly identical future leaks in: on generated data
            the holdout AUC then matches or beats the oracle's (measured 0.910 vs 0.909).
        labels_path / target / task: a custom target instead of churn and value.
        ground_truth_path: the generator's ground truth for oracle metrics (optional).
    """

    as_of: dt.datetime | None = None
    horizon_days: int = Field(default=90, ge=1, le=3650)
    feature_service: str = "churn_model_v2"
    train_snapshots: int = Field(default=20, ge=1, le=520)
    holdout_snapshots: int = Field(default=1, ge=1, le=52)
    purge: bool = True
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    min_train_snapshots: int = Field(default=2, ge=1, le=520)
    min_train_rows: int = Field(default=100, ge=1)
    min_holdout_rows: int = Field(default=50, ge=1)
    cv_folds: int = Field(default=0, ge=0, le=20)
    max_train_rows: int = Field(
        default=200_000,
        ge=100,
        description="Training rows sampled (before the feature join) when the chosen snapshots hold more.",
    )
    seed: int = 7
    xgb: XGBParams = XGBParams()
    personas: PersonaParams = PersonaParams()
    gate: GateConfig = GateConfig()
    policy_path: Path = DEFAULT_POLICY_PATH
    compare_behavior_only: bool = True
    reference_rows: int = Field(default=5_000, ge=10)
    labels_path: Path | None = None
    target: str | None = None
    task: Literal["classification", "regression"] = "classification"
    ground_truth_path: Path | None = None
    experiment: str = "persona-training"

    def logged_params(self) -> dict[str, str]:
        """The MLflow params of this run: only what applies (no horizon, purge or churn gate for a custom target)."""
        data = json.loads(self.model_dump_json())
        if self.labels_path is not None:
            for key in ("horizon_days", "purge", "train_snapshots", "holdout_snapshots", "min_train_snapshots",
                        "min_train_rows", "personas", "policy_path", "compare_behavior_only", "gate",
                        "ground_truth_path", "max_train_rows"):
                data.pop(key, None)
            data["xgb"].pop("monotone", None)  # the churn and value directions; a custom target has none
        else:
            for key in ("labels_path", "target", "task", "cv_folds"):
                data.pop(key, None)
        return {k: str(v)[:500] for k, v in _flatten(data).items()}

    @model_validator(mode="after")
    def _labels_need_target(self) -> TrainConfig:
        if (self.labels_path is None) != (self.target is None):
            raise ValueError("--labels and --target go together: pass both or neither")
        return self


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """Nested config as ``a.b.c`` keys (MLflow params are flat)."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
