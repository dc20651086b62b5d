"""The training job: point-in-time training set -> churn, value and persona models -> MLflow -> gate.

``TrainJob(settings, config).run()`` builds the training set from Feast (snapshots whose label
window ends by ``as_of``), splits it by time (the latest snapshots are the holdout), fits the
models, evaluates them (and the current champion on the same holdout), logs everything to
MLflow, registers one pyfunc bundle and moves ``champion`` or ``challenger`` to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core import catalog
from core.errors import PersonaError
from core.settings import PROJECT_ROOT, Settings
from model.actions import ActionPolicy, load_policy, value_cutpoints
from model.bundle import BUNDLE_ENTRY, PersonaPredictor
from model.preprocess import (
    TEXT_PROJECTION_PREFIX,
    cluster_matrix,
    fit_cluster_spec,
    fit_feature_spec,
    model_matrix,
    nearest_center,
    persona_columns,
)
from training import metrics as M
from training.config import GateConfig, MetricRule, TrainConfig
from training.gate import CHALLENGER, CHAMPION, GateDecision, decide_promotion
from training.models import (
    OBJECTIVES,
    feature_importance,
    fit_calibrator,
    fit_logreg,
    fit_xgb,
    predict_xgb,
    rfm_score,
)
from training.personas import fit_personas, name_segments, persona_cards, segment_terms, trait_scores

logger = logging.getLogger(__name__)

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
LABELS = ("churned", "future_orders", "future_spend")
TEXT_COLUMNS_PREFIXES = (TEXT_PROJECTION_PREFIX, "sentiment_")
REFERENCE_ARTIFACT = catalog.REFERENCE_ARTIFACT
BASELINE_ROWS = 60_000


# --------------------------------------------------------------------------- pure helpers
def choose_snapshots(
    times: pd.DatetimeIndex | list,
    holdout_snapshots: int,
    train_snapshots: int,
    horizon_days: int,
    purge: bool,
) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """Pick training and holdout snapshot times (holdout = the latest ones).

    Args:
        times: label-complete snapshot times.
        holdout_snapshots: how many of the latest times form the holdout.
        train_snapshots: how many of the remaining latest times feed training.
        horizon_days: label window; with ``purge`` a training time ``t`` needs
            ``t + horizon <= first holdout time`` (no training label sees past the holdout's features).
        purge: apply the rule above.

    Returns:
        ``(train_times, holdout_times)``, each ascending.

    Raises:
        PersonaError: when no training time remains.
    """
    ordered = sorted(pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(times))))
    if len(ordered) < 2:
        raise PersonaError(
            f"need at least 2 label-complete snapshots to split by time, found {len(ordered)}; "
            "use more history, a shorter --horizon-days or a later --as-of"
        )
    holdout = ordered[-holdout_snapshots:] if holdout_snapshots < len(ordered) else ordered[-1:]
    start = holdout[0]
    candidates = [t for t in ordered if t < start]
    if purge:
        candidates = [t for t in candidates if t + pd.Timedelta(days=horizon_days) <= start]
    if not candidates:
        raise PersonaError(
            f"no training snapshot ends its {horizon_days}-day label window before the holdout snapshot "
            f"{start.date()}; use more history or a shorter --horizon-days"
        )
    return candidates[-train_snapshots:], list(holdout)


def feature_columns_of(frame: pd.DataFrame, extra_exclude: tuple[str, ...] = ()) -> list[str]:
    """Columns of a training frame that are features (not keys, labels or bookkeeping)."""
    excluded = {ENTITY_KEY, TIMESTAMP, "created_timestamp", *LABELS, *extra_exclude}
    return [c for c in frame.columns if c not in excluded and not c.startswith("_")]


def is_text_feature(column: str) -> bool:
    """Text-derived features (embedding projection, sentiment)."""
    return column.startswith(TEXT_COLUMNS_PREFIXES)


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n, random_state=seed)


def attach_ground_truth(holdout: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Left-join the generator's ground truth on ``(customer_id, event_timestamp)``."""
    wanted = [
        c
        for c in ("true_churn_probability", "true_expected_orders", "true_expected_spend")
        if c in truth.columns
    ]
    right = truth[[ENTITY_KEY, TIMESTAMP, *wanted]].copy()
    right[TIMESTAMP] = pd.to_datetime(right[TIMESTAMP], utc=True)
    right[ENTITY_KEY] = right[ENTITY_KEY].astype("int64")
    left = holdout.drop(columns=[c for c in wanted if c in holdout.columns])
    return left.merge(right.drop_duplicates([ENTITY_KEY, TIMESTAMP]), on=[ENTITY_KEY, TIMESTAMP], how="left")


def persona_metrics(holdout: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """All churn and value metrics of a persona bundle's predictions on labelled rows."""
    out = M.prefixed("churn", M.classification_metrics(holdout["churned"], predictions["churn_probability"]))
    out.update(
        M.prefixed("orders", M.regression_metrics(holdout["future_orders"], predictions["expected_orders"]))
    )
    out.update(
        M.prefixed("spend", M.regression_metrics(holdout["future_spend"], predictions["expected_spend"]))
    )
    return out


# --------------------------------------------------------------------------- fitting (no I/O)
@dataclass
class FitResult:
    """Everything a fit produced, before anything is logged."""

    predictor: PersonaPredictor
    metrics: dict[str, float]
    predictions: pd.DataFrame
    cards: list[dict]
    importance: pd.Series
    roc_curves: dict[str, np.ndarray] = field(default_factory=dict)
    silhouettes: dict[int, float] = field(default_factory=dict)


def fit_persona_bundle(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    config: TrainConfig,
    policy: ActionPolicy,
    reviews: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """Fit churn, value, baseline and persona models and evaluate them on the holdout.

    Args:
        train: labelled training rows (features + ``churned``, ``future_orders``, ``future_spend``).
        holdout: labelled holdout rows (later snapshots than ``train``).
        features: feature columns, in model order.
        config: the run configuration.
        policy: validated action policy.
        reviews: ``customer_id``, ``event_timestamp``, ``text`` for persona terms (optional).
        progress: progress display to advance (optional).
    """
    task = progress.add_task("fitting", total=8) if progress else None
    timings: dict[str, float] = {}
    clock = [time.perf_counter(), "prepare"]

    def step(name: str) -> None:
        now = time.perf_counter()
        timings[f"seconds_{str(clock[1]).replace(' ', '_').replace('-', '_')}"] = now - float(clock[0])
        clock[:] = [now, name]
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=name)

    seed, xgbp = config.seed, config.xgb
    spec = fit_feature_spec(train, features)
    x_train, x_hold = model_matrix(train, spec), model_matrix(holdout, spec)
    names = spec.matrix_names
    y_train, y_hold = train["churned"].to_numpy(int), holdout["churned"].to_numpy(int)
    if len(np.unique(y_train)) < 2:
        raise PersonaError("the training rows hold only one churn class; use more history or another --as-of")

    step("churn model")
    churn = fit_xgb(x_train, y_train, OBJECTIVES["churn"], xgbp, seed, names)
    step("value models")
    orders = fit_xgb(x_train, train["future_orders"].to_numpy(float), OBJECTIVES["orders"], xgbp, seed, names)
    spend = fit_xgb(x_train, train["future_spend"].to_numpy(float), OBJECTIVES["spend"], xgbp, seed, names)

    step("baselines")
    baseline_rows = _sample(train, BASELINE_ROWS, seed)  # a baseline needs no more
    logreg = fit_logreg(
        model_matrix(baseline_rows, spec, impute=True), baseline_rows["churned"].to_numpy(int), seed
    )
    p_logreg = logreg.predict_proba(model_matrix(holdout, spec, impute=True))[:, 1]
    calibrate = fit_calibrator(rfm_score(train), y_train)
    p_rfm = calibrate(rfm_score(holdout))

    step("personas")
    cluster_cols = persona_columns(features)
    fit_rows = _sample(train, config.personas.fit_sample, seed)
    cluster_spec = fit_cluster_spec(fit_rows, cluster_cols)
    pfit = fit_personas(
        cluster_matrix(fit_rows, cluster_spec),
        config.personas.k_min,
        config.personas.k_max,
        seed,
        config.personas.silhouette_sample,
    )
    seg_fit = nearest_center(cluster_matrix(fit_rows, cluster_spec), pfit.centers)
    traits = trait_scores(fit_rows, seg_fit)
    churn_by_seg = fit_rows["churned"].groupby(seg_fit).mean()
    recency_z = traits.get("recency_days")
    persona_names = name_segments(traits, churn_by_seg, recency_z)

    spend_cuts = value_cutpoints(predict_xgb(spend, x_hold), policy)
    predictor = PersonaPredictor(
        kind="persona",
        features=spec,
        models={"churn": churn, "orders": orders, "spend": spend},
        cluster=cluster_spec,
        centers=pfit.centers,
        persona_names=persona_names,
        policy=policy,
        spend_cuts=spend_cuts,
        metadata={"feature_service": config.feature_service},
    )

    step("evaluating")
    predictions = predictor.predict(holdout)
    metrics = persona_metrics(holdout, predictions)
    metrics.update(M.prefixed("baseline_logreg", M.classification_metrics(y_hold, p_logreg)))
    metrics.update(M.prefixed("baseline_rfm", M.classification_metrics(y_hold, p_rfm)))
    metrics["persona_k"] = float(pfit.k)
    metrics["persona_silhouette"] = float(pfit.silhouettes[pfit.k])
    metrics["train_rows"] = float(len(train))
    metrics["holdout_rows"] = float(len(holdout))
    metrics["holdout_churn_rate"] = float(y_hold.mean()) if len(y_hold) else float("nan")
    curves = {
        "xgboost": predictions["churn_probability"].to_numpy(),
        "logistic regression": p_logreg,
        "RFM heuristic": p_rfm,
    }

    step("behavior-only comparison")
    behavior = [c for c in features if not is_text_feature(c)]
    if config.compare_behavior_only and len(behavior) < len(features):
        bspec = fit_feature_spec(train, behavior)
        b_churn = fit_xgb(model_matrix(train, bspec), y_train, OBJECTIVES["churn"], xgbp, seed)
        p_behavior = predict_xgb(b_churn, model_matrix(holdout, bspec))
        metrics.update(M.prefixed("behavior_only_churn", M.classification_metrics(y_hold, p_behavior)))
        metrics["text_lift_roc_auc"] = metrics["churn_roc_auc"] - metrics["behavior_only_churn_roc_auc"]
        curves["xgboost behavior-only"] = p_behavior

    if {"true_churn_probability", "true_expected_spend"} <= set(holdout.columns):
        metrics.update(oracle_metrics(holdout, predictions))

    step("persona cards")
    described = pd.concat(
        [
            holdout.reset_index(drop=True),
            predictions.reset_index(drop=True).drop(
                columns=[c for c in predictions.columns if c in ("segment",)]
            ),
        ],
        axis=1,
    )
    described_traits = trait_scores(described, predictions["segment"].to_numpy())
    terms = {}
    if reviews is not None and len(reviews):
        segment_of = pd.Series(predictions["segment"].to_numpy(), index=holdout[ENTITY_KEY].to_numpy())
        segment_of = segment_of[~segment_of.index.duplicated(keep="last")]
        terms = segment_terms(
            reviews, segment_of, config.personas.top_terms, config.personas.max_reviews_per_segment, seed
        )
    cards = persona_cards(
        described, predictions["segment"].to_numpy(), persona_names, terms, described_traits
    )
    step("done")
    metrics.update(timings)
    return FitResult(
        predictor=predictor,
        metrics=metrics,
        predictions=predictions,
        cards=cards,
        importance=feature_importance(churn),
        roc_curves=curves,
        silhouettes=pfit.silhouettes,
    )


def oracle_metrics(holdout: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """Compare with the generator's ground truth on rows that have it (oracle AUC, value correlations)."""
    known = holdout["true_churn_probability"].notna().to_numpy()
    if not known.any():
        return {}
    y = holdout["churned"].to_numpy(int)[known]
    oracle = M.classification_metrics(y, holdout["true_churn_probability"].to_numpy(float)[known])
    model_auc = M.classification_metrics(y, predictions["churn_probability"].to_numpy()[known])["roc_auc"]
    out = M.prefixed("oracle_churn", oracle)
    out["oracle_gap_roc_auc"] = oracle["roc_auc"] - model_auc
    out["ground_truth_rows"] = float(known.sum())
    out["spend_corr_truth"] = M.correlation(
        predictions["expected_spend"].to_numpy()[known], holdout["true_expected_spend"].to_numpy(float)[known]
    )
    if "true_expected_orders" in holdout:
        out["orders_corr_truth"] = M.correlation(
            predictions["expected_orders"].to_numpy()[known],
            holdout["true_expected_orders"].to_numpy(float)[known],
        )
    out["churn_prob_corr_truth"] = M.correlation(
        predictions["churn_probability"].to_numpy()[known],
        holdout["true_churn_probability"].to_numpy(float)[known],
    )
    return out


def fit_target_model(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    target: str,
    task: str,
    config: TrainConfig,
) -> tuple[PersonaPredictor, dict[str, float]]:
    """Fit and evaluate one XGBoost model for a custom label column."""
    spec = fit_feature_spec(train, features)
    y = train[target].to_numpy(float)
    if task == "classification" and len(np.unique(y)) < 2:
        raise PersonaError(
            f"the training rows hold only one value of {target}; a classifier needs both 0 and 1"
        )
    objective = OBJECTIVES["churn"] if task == "classification" else OBJECTIVES["regression"]
    booster = fit_xgb(model_matrix(train, spec), y, objective, config.xgb, config.seed, spec.matrix_names)
    predictor = PersonaPredictor(
        kind="target",
        features=spec,
        models={"target": booster},
        target=target,
        task=task,
        metadata={"feature_service": config.feature_service},
    )
    return predictor, target_metrics(predictor, holdout)


def target_metrics(predictor: PersonaPredictor, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of a custom-target predictor on labelled rows, prefixed with the target name."""
    assert predictor.target is not None
    pred = predictor.predict(holdout)["prediction"].to_numpy()
    y = holdout[predictor.target].to_numpy(float)
    raw = (
        M.classification_metrics(y, pred)
        if predictor.task == "classification"
        else M.regression_metrics(y, pred)
    )
    return M.prefixed(predictor.target, raw)


def target_gate(target: str, task: str, base: GateConfig) -> GateConfig:
    """The gate for a custom target: ROC AUC (+ Brier guard) or MAE (+ RMSE guard)."""
    if task == "classification":
        return GateConfig(
            primary=MetricRule(metric=f"{target}_roc_auc", threshold=base.primary.threshold),
            guards=(
                MetricRule(metric=f"{target}_brier", higher_is_better=False, threshold=0.02, relative=True),
            ),
        )
    return GateConfig(
        primary=MetricRule(metric=f"{target}_mae", higher_is_better=False, threshold=0.01, relative=True),
        guards=(MetricRule(metric=f"{target}_rmse", higher_is_better=False, threshold=0.05, relative=True),),
    )


# --------------------------------------------------------------------------- the job (I/O edges)
@dataclass
class TrainResult:
    """What a training run did."""

    run_id: str
    model_name: str
    version: str
    decision: GateDecision
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    cards_html: Path | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal."""
        m = self.metrics
        lines = [
            f"run {self.run_id}: registered {self.model_name} v{self.version} -> {self.decision.alias} "
            f"({self.decision.reason})"
        ]
        if "churn_roc_auc" in m:
            parts = [f"churn ROC AUC {m['churn_roc_auc']:.4f}"]
            for key, label in (
                ("baseline_logreg_roc_auc", "logreg"),
                ("baseline_rfm_roc_auc", "RFM"),
                ("oracle_churn_roc_auc", "oracle"),
                ("behavior_only_churn_roc_auc", "behavior-only"),
            ):
                if key in m:
                    parts.append(f"{label} {m[key]:.4f}")
            lines.append(" · ".join(parts))
            lines.append(
                f"brier {m['churn_brier']:.4f} · ECE {m['churn_ece']:.4f} · spend MAE "
                f"{m['spend_mae']:.2f} · spend corr {m['spend_corr']:.3f}"
                + (f" · spend corr vs truth {m['spend_corr_truth']:.3f}" if "spend_corr_truth" in m else "")
            )
            lines.append(f"personas: k={int(m['persona_k'])} (silhouette {m['persona_silhouette']:.3f})")
        else:
            lines.append(" · ".join(f"{k} {v:.4f}" for k, v in sorted(m.items()) if np.isfinite(v)))
        if self.cards_html:
            lines.append(f"persona cards: {self.cards_html}")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<26}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=True,
    )


def git_sha() -> str:
    """The repo's HEAD commit (``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def feast_lineage(settings: Settings, feature_service: str) -> dict[str, str]:
    """Feast project, registry last-update time and a fingerprint of the feature service definition."""
    out = {"feast.project": settings.project}
    try:
        from store.repo import get_store

        store = get_store(settings)
        service = store.get_feature_service(feature_service)
        spec = service.to_proto().spec.SerializeToString(deterministic=True)
        out["feast.feature_service_fingerprint"] = hashlib.sha256(spec).hexdigest()[:16]
        updated = getattr(store.registry, "_get_last_updated_metadata", lambda _p: None)(store.project)
        if updated is not None:
            out["feast.registry_version"] = updated.isoformat()
        elif service.last_updated_timestamp:
            out["feast.registry_version"] = service.last_updated_timestamp.isoformat()
    except Exception as exc:  # lineage is best-effort; training must not fail on it
        logger.warning("could not read Feast lineage: %s", exc)
    return out


class TrainJob:
    """One training run; services (Feast, MLflow) are opened inside :meth:`run`."""

    def __init__(self, settings: Settings, config: TrainConfig) -> None:
        self.settings = settings
        self.config = config
        self._from_feast = False

    # ---- data ----
    def _transactions(self) -> pd.DataFrame:
        path = catalog.raw_table(self.settings, "transactions")
        if not path.exists():
            raise PersonaError("no transactions ingested yet; run `persona ingest --transactions FILE` first")
        return pd.read_parquet(path, columns=[ENTITY_KEY, TIMESTAMP, "amount"])

    def _reviews(self, until: pd.Timestamp | None) -> pd.DataFrame | None:
        path = catalog.raw_table(self.settings, "reviews")
        if not path.exists():
            return None
        reviews = pd.read_parquet(path, columns=[ENTITY_KEY, TIMESTAMP, "text"])
        if until is not None:
            ts = pd.to_datetime(reviews[TIMESTAMP], utc=True)
            reviews = reviews[(ts <= until) & (ts > until - pd.Timedelta(days=365))]
        return reviews

    def _ground_truth(self) -> pd.DataFrame | None:
        path = self.config.ground_truth_path or catalog.ground_truth(self.settings)
        if not Path(path).exists():
            if self.config.ground_truth_path is not None:
                raise PersonaError(f"--ground-truth {path}: file not found")
            return None
        truth = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)
        if not {ENTITY_KEY, TIMESTAMP, "true_churn_probability"} <= set(truth.columns):
            raise PersonaError(
                f"{path}: ground truth needs customer_id, event_timestamp, true_churn_probability"
            )
        return truth

    def build_frame(self) -> tuple[pd.DataFrame, pd.Timestamp]:
        """Labelled, point-in-time correct rows of the chosen train and holdout snapshots."""
        from features.build import entity_snapshots
        from features.dataset import build_training_set
        from training.labels import label_complete, latest_label_cutoff, make_labels

        cfg = self.config
        transactions = self._transactions()
        as_of = pd.Timestamp(cfg.as_of) if cfg.as_of else latest_label_cutoff(transactions)
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
        snaps = entity_snapshots(self.settings)
        complete = snaps[label_complete(snaps, as_of, cfg.horizon_days).to_numpy()]
        train_t, hold_t = choose_snapshots(
            complete[TIMESTAMP], cfg.holdout_snapshots, cfg.train_snapshots, cfg.horizon_days, cfg.purge
        )
        chosen = complete[TIMESTAMP].isin(train_t)
        train_rows = _sample(complete[chosen], cfg.max_train_rows, cfg.seed)
        entities = pd.concat([train_rows, complete[complete[TIMESTAMP].isin(hold_t)]], ignore_index=True)
        labelled = make_labels(entities, transactions, cfg.horizon_days)
        self._from_feast = True
        return build_training_set(self.settings, labelled, cfg.feature_service), as_of

    def _features(self, frame: pd.DataFrame) -> list[str]:
        if self._from_feast:
            from features.dataset import feature_names

            return [
                c for c in feature_names(self.settings, self.config.feature_service) if c in frame.columns
            ]
        return feature_columns_of(frame)

    def _frame_for(self, predictor: PersonaPredictor, holdout: pd.DataFrame) -> pd.DataFrame | None:
        """The holdout with the features ``predictor`` needs (re-fetched from its feature service)."""
        if all(c in holdout.columns for c in predictor.feature_columns):
            return holdout
        service = predictor.metadata.get("feature_service")
        if not (self._from_feast and service):
            return None
        from features.dataset import build_training_set

        keep = [
            c
            for c in holdout.columns
            if c in (ENTITY_KEY, TIMESTAMP, *LABELS, self.config.target) or c.startswith("true_")
        ]
        return build_training_set(self.settings, holdout[keep], service)

    def _champion_metrics(self, client, model: str, holdout: pd.DataFrame) -> tuple[dict | None, str | None]:
        from model.bundle import load_predictor
        from model.registry import alias_version

        version = alias_version(client, model, CHAMPION)
        if version is None:
            return None, None
        try:
            predictor = load_predictor(f"models:/{model}@{CHAMPION}")
            frame = self._frame_for(predictor, holdout)
        except Exception as exc:  # an unreadable champion must not block training
            logger.warning("could not evaluate champion v%s: %s", version, exc)
            return {}, version
        if frame is None:
            return {}, version
        if predictor.kind == "target":
            return target_metrics(predictor, frame), version
        return persona_metrics(frame, predictor.predict(frame)), version

    # ---- run ----
    def run(self, frame: pd.DataFrame | None = None) -> TrainResult:
        """Train, evaluate, log, register and gate.

        Args:
            frame: labelled rows with features (for tests and notebooks); default: built from Feast.
        """
        started = time.perf_counter()
        if self.config.labels_path is not None:
            return self._run_custom(frame, started)
        policy = load_policy(self.config.policy_path)
        with _progress() as progress:
            load = progress.add_task("building training set", total=1)
            as_of = None
            if frame is None:
                frame, as_of = self.build_frame()
            build_seconds = time.perf_counter() - started
            progress.update(load, advance=1)
            features = self._features(frame)
            train_t, hold_t = choose_snapshots(
                frame[TIMESTAMP],
                self.config.holdout_snapshots,
                self.config.train_snapshots,
                self.config.horizon_days,
                self.config.purge,
            )
            train = _sample(
                frame[frame[TIMESTAMP].isin(train_t)], self.config.max_train_rows, self.config.seed
            )
            holdout = frame[frame[TIMESTAMP].isin(hold_t)].reset_index(drop=True)
            truth = self._ground_truth()
            if truth is not None:
                holdout = attach_ground_truth(holdout, truth)
            reviews = self._reviews(max(hold_t))
            fit = fit_persona_bundle(
                train.reset_index(drop=True), holdout, features, self.config, policy, reviews, progress
            )
            window = {
                "data.train_start": str(min(train_t)),
                "data.train_end": str(max(train_t)),
                "data.holdout_start": str(min(hold_t)),
                "data.holdout_end": str(max(hold_t)),
                "data.as_of": str(as_of if as_of is not None else max(hold_t)),
            }
            fit.predictor.metadata.update({**window, "features": features})
            fit.metrics["seconds_build_training_set"] = build_seconds
            logged = progress.add_task("logging to MLflow", total=1)
            log_started = time.perf_counter()
            result = self._log_and_gate(
                fit.predictor, fit.metrics, holdout, features, window, self.config.gate, fit=fit
            )
            progress.update(logged, advance=1)
        result.seconds = time.perf_counter() - started
        self._log_late_metrics(
            result,
            {"seconds_mlflow_and_gate": time.perf_counter() - log_started, "seconds_total": result.seconds},
        )
        return result

    def _log_late_metrics(self, result: TrainResult, values: dict[str, float]) -> None:
        """Metrics known only after the run closed (its own logging time)."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.settings.tracking_uri)
        for key, value in values.items():
            client.log_metric(result.run_id, key, value)
        result.metrics.update(values)

    def _run_custom(self, frame: pd.DataFrame | None, started: float) -> TrainResult:
        from training.labels import validate_label_frame

        cfg = self.config
        assert cfg.target is not None
        assert cfg.labels_path is not None
        with _progress() as progress:
            load = progress.add_task("building training set", total=2)
            dropped = 0
            if frame is None:
                from features.dataset import build_training_set

                labels = read_labels(cfg.labels_path)
                known = self._transactions()[ENTITY_KEY].drop_duplicates()
                validated = validate_label_frame(labels, cfg.target, known, cfg.task)
                dropped = validated.dropped_rows
                rows = validated.frame[[ENTITY_KEY, TIMESTAMP, cfg.target]]
                if cfg.as_of is not None:
                    rows = rows[rows[TIMESTAMP] <= pd.Timestamp(cfg.as_of)]
                progress.update(load, advance=1)
                self._from_feast = True
                frame = build_training_set(self.settings, rows.reset_index(drop=True), cfg.feature_service)
            progress.update(load, completed=2)
            features = [c for c in self._features(frame) if c != cfg.target]
            times = pd.DatetimeIndex(sorted(pd.unique(frame[TIMESTAMP])))
            if len(times) < 2:
                raise PersonaError(
                    f"labels need at least 2 distinct event_timestamp values for a time-based "
                    f"holdout, found {len(times)}"
                )
            cut = times[min(len(times) - 1, max(1, int(np.floor(0.8 * len(times)))))]
            train, holdout = (
                frame[frame[TIMESTAMP] < cut],
                frame[frame[TIMESTAMP] >= cut].reset_index(drop=True),
            )
            fitting = progress.add_task(f"fitting {cfg.target}", total=1)
            predictor, metrics_ = fit_target_model(
                train.reset_index(drop=True), holdout, features, cfg.target, cfg.task, cfg
            )
            progress.update(fitting, advance=1)
            metrics_.update(
                {
                    "train_rows": float(len(train)),
                    "holdout_rows": float(len(holdout)),
                    "labels_dropped_unknown_rows": float(dropped),
                }
            )
            window = {
                "data.train_start": str(train[TIMESTAMP].min()),
                "data.train_end": str(train[TIMESTAMP].max()),
                "data.holdout_start": str(cut),
                "data.holdout_end": str(holdout[TIMESTAMP].max()),
                "data.labels": str(cfg.labels_path),
            }
            predictor.metadata.update({**window, "features": features})
            gate = target_gate(cfg.target, cfg.task, cfg.gate)
            result = self._log_and_gate(
                predictor,
                metrics_,
                holdout,
                features,
                window,
                gate,
                model_name=f"{self.settings.registered_model}-{cfg.target}",
            )
        result.seconds = time.perf_counter() - started
        return result

    def _log_and_gate(
        self,
        predictor: PersonaPredictor,
        metrics_: dict[str, float],
        holdout: pd.DataFrame,
        features: list[str],
        window: dict[str, str],
        gate: GateConfig,
        fit: FitResult | None = None,
        model_name: str | None = None,
    ) -> TrainResult:
        import mlflow
        from mlflow.models import infer_signature

        from model.bundle import record_artifact_hash
        from model.registry import AliasMoved, configure_mlflow, ensure_experiment, move_alias

        settings, cfg = self.settings, self.config
        client = configure_mlflow(settings)
        model = model_name or settings.registered_model
        experiment_id = ensure_experiment(client, settings, cfg.experiment)
        champion_metrics, champion_version = self._champion_metrics(client, model, holdout)
        decision = decide_promotion(metrics_, champion_metrics or None, gate)
        if champion_version is not None and not champion_metrics:
            decision = GateDecision(
                False,
                CHALLENGER,
                f"champion v{champion_version} could not be evaluated on "
                "this holdout; promote by hand if intended",
            )
        lineage = {
            "feature_service": cfg.feature_service,
            "feature_list": json.dumps(features)[:7900],
            "code_version": git_sha(),
            "feast.project": settings.project,
            **(feast_lineage(settings, cfg.feature_service) if self._from_feast else {}),
            **window,
        }
        with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
            tmp_dir = Path(tmp)
            params = json.loads(cfg.model_dump_json())
            flat = {k: v for k, v in _flatten(params).items()}
            mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
            mlflow.set_tags(lineage)
            mlflow.log_metrics({k: v for k, v in metrics_.items() if np.isfinite(v)})
            if champion_metrics:
                mlflow.log_metrics(
                    {f"champion_{k}": v for k, v in champion_metrics.items() if np.isfinite(v)}
                )
            mlflow.set_tags(
                {
                    "gate.decision": decision.alias,
                    "gate.reason": decision.reason[:4000],
                    "gate.champion_version": champion_version or "",
                }
            )
            if fit is not None:
                self._log_persona_artifacts(fit, holdout, features, window, tmp_dir)
            else:
                ref = holdout[[ENTITY_KEY, TIMESTAMP, *features]].copy()
                ref = pd.concat(
                    [ref.reset_index(drop=True), predictor.predict(holdout).reset_index(drop=True)], axis=1
                )
                self._log_reference(_sample(ref, cfg.reference_rows, cfg.seed), tmp_dir)

            bundle_dir = predictor.save(tmp_dir / "bundle")
            example = _input_example(holdout, features)
            signature = infer_signature(example, predictor.predict(example))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(BUNDLE_ENTRY),
                artifacts={"bundle": str(bundle_dir)},
                signature=signature,
                input_example=example,
                registered_model_name=model,
                pip_requirements=_pip_requirements(),
            )
            version = str(info.registered_model_version)
            run_id = run.info.run_id
        for key, value in {**lineage, "run_id": run_id}.items():
            client.set_model_version_tag(model, version, key, str(value))
        record_artifact_hash(client, model, version)  # loaders refuse artifacts changed after this
        for key in (gate.primary.metric, *(g.metric for g in gate.guards)):
            if key in metrics_:
                client.set_model_version_tag(model, version, f"metric.{key}", f"{metrics_[key]:.6f}")
        if decision.promote:  # compare-and-set: only if the champion is still the one the gate beat
            try:
                move_alias(client, model, decision.alias, version, decision.reason, expect_from=champion_version)
            except AliasMoved as exc:
                decision = GateDecision(
                    promote=False,
                    alias="challenger",
                    reason=f"gated against v{champion_version} but the champion moved meanwhile ({exc}); "
                    "train again to compare with the new champion",
                )
                move_alias(client, model, decision.alias, version, decision.reason)
        else:
            move_alias(client, model, decision.alias, version, decision.reason)
        cards_html = catalog.persona_cards_html(settings) if fit is not None else None
        return TrainResult(run_id, model, version, decision, metrics_, champion_metrics, cards_html)

    def _log_reference(self, reference: pd.DataFrame, tmp_dir: Path) -> None:
        import mlflow

        path = tmp_dir / "reference.parquet"
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="reference")

    def _log_persona_artifacts(
        self,
        fit: FitResult,
        holdout: pd.DataFrame,
        features: list[str],
        window: dict[str, str],
        tmp_dir: Path,
    ) -> None:
        import mlflow

        from training.cards import write_cards
        from training.plots import calibration_figure, importance_figure, persona_figure, roc_figure

        cfg = self.config
        y = holdout["churned"].to_numpy(int)
        for fig, name in (
            (roc_figure(y, fit.roc_curves), "roc.png"),
            (calibration_figure(y, fit.predictions["churn_probability"].to_numpy()), "calibration.png"),
            (importance_figure(fit.importance), "feature_importance.png"),
            (persona_figure(fit.cards), "personas.png"),
        ):
            mlflow.log_figure(fig, f"plots/{name}")
        meta = {
            "feature_service": cfg.feature_service,
            **window,
            "k": len(fit.cards),
            "silhouette": round(fit.silhouettes.get(len(fit.cards), float("nan")), 3),
        }
        html_path, json_path = write_cards(fit.cards, meta, tmp_dir / "cards")
        mlflow.log_artifact(str(html_path), artifact_path="persona_cards")
        mlflow.log_artifact(str(json_path), artifact_path="persona_cards")
        write_cards(fit.cards, meta, self.settings.reports_dir)
        mlflow.log_dict(
            {"silhouette_by_k": {str(k): v for k, v in fit.silhouettes.items()}}, "personas/silhouette.json"
        )
        ref = pd.concat(
            [
                holdout[[ENTITY_KEY, TIMESTAMP, *features]].reset_index(drop=True),
                fit.predictions.reset_index(drop=True),
            ],
            axis=1,
        )
        self._log_reference(_sample(ref, cfg.reference_rows, cfg.seed), tmp_dir)


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _input_example(holdout: pd.DataFrame, features: list[str], rows: int = 5) -> pd.DataFrame:
    """A few holdout rows as the pyfunc takes them (see :func:`model.bundle.to_model_input`)."""
    from model.bundle import to_model_input

    return to_model_input(holdout.head(rows), features)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{pkg}=={version(pkg)}"
        for pkg in ("mlflow", "xgboost", "pandas", "numpy", "scikit-learn", "pydantic", "pyyaml")
    ]


def read_labels(path: Path) -> pd.DataFrame:
    """Read a labels file (parquet or CSV).

    Raises:
        PersonaError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"--labels {path}: file not found")
    try:
        return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:
        raise PersonaError(f"--labels {path}: cannot read it ({exc}); give a parquet or CSV file") from None
