"""The fit step: churn, value, baseline and persona models, evaluated on the holdout (no I/O).

``fit_persona_bundle`` and ``fit_target_model`` take labelled frames and return a
:class:`~model.bundle.PersonaPredictor` with its holdout metrics; nothing here touches
MLflow, Feast or the disk, so notebooks and tests call them as they are.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.errors import PersonaError
from core.progress import silent
from model.actions import ActionPolicy, value_cutpoints
from model.bundle import PersonaPredictor
from model.lifetime import LIFETIME_INPUTS
from model.preprocess import (
    TEXT_PROJECTION_PREFIX,
    ClusterSpec,
    FeatureSpec,
    cluster_matrix,
    fit_cluster_spec,
    fit_feature_spec,
    model_matrix,
    nearest_center,
    persona_columns,
)
from training import metrics as M
from training.btyd import fit_lifetime
from training.data import ENTITY_KEY, is_text_feature, sample_rows
from training.evaluate import (
    btyd_holdout_predictions,
    oracle_metrics,
    persona_metrics,
    target_metrics,
    value_baseline_metrics,
)
from training.models import (
    CHURN_MONOTONE,
    OBJECTIVES,
    VALUE_MONOTONE,
    feature_importance,
    fit_calibrator,
    fit_logreg,
    fit_xgb,
    predict_xgb,
    rfm_score,
)
from training.orders_weight import OrdersWeightChoice, choose_orders_weight
from training.persona_match import PersonaMatch, centroids_in, match_personas
from training.personas import fit_personas, name_segments, persona_cards, segment_terms, trait_scores

if TYPE_CHECKING:
    from core.progress import ProgressEvent
    from training.config import TrainConfig

BASELINE_ROWS = 60_000
PERSONA_NEXT_ID = "persona_next_id"  # bundle metadata: the first persona id never given out
PERSONA_MATCHED_TO = "persona_matched_to"  # bundle metadata: the champion version personas were matched to
# The named steps of a persona fit, in order (progress notes and ``seconds_<step>`` metrics).
FIT_STEPS = 8


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
    # the BTYD baseline per holdout row (expected_orders, expected_spend, p_alive); None without transactions
    value_baseline: pd.DataFrame | None = None
    # how the personas map to the previous champion's (None: no champion to match)
    persona_match: PersonaMatch | None = None
    # BG/NBD's weight in the served expected orders and how it was chosen (None: no BG/NBD in the bundle)
    orders_weight: OrdersWeightChoice | None = None


def fit_persona_bundle(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    config: TrainConfig,
    policy: ActionPolicy,
    reviews: pd.DataFrame | None = None,
    on_progress: ProgressEvent = silent,
    transactions: pd.DataFrame | None = None,
    previous: PersonaPredictor | None = None,
    previous_same_text: bool = True,
    time_split: bool = True,
) -> FitResult:
    """Fit churn, value, baseline and persona models and evaluate them on the holdout.

    Args:
        train: labelled training rows (features + ``churned``, ``future_orders``, ``future_spend``).
        holdout: labelled holdout rows (later snapshots than ``train``).
        features: feature columns, in model order.
        config: the run configuration.
        policy: validated action policy.
        reviews: ``customer_id``, ``event_timestamp``, ``text`` for persona terms (optional).
        on_progress: told ``(step, FIT_STEPS, name)`` as each named step starts.
        transactions: ``customer_id``, ``event_timestamp``, ``amount`` up to the holdout's
            labels; when given, the BTYD value baseline (BG/NBD + Gamma-Gamma, P(alive)) is
            fitted on the holdout's calibration window and logged beside the value model.
        previous: the champion; the new clusters take its persona ids and names where they are
            the same groups (:func:`stable_personas`).
        previous_same_text: whether the rows' text features are in the champion's projection.
        time_split: whether ``train`` and ``holdout`` are split by time; only then is BG/NBD's
            weight in the served expected orders searched on an inner time split
            (:func:`~training.orders_weight.choose_orders_weight`).
    """
    timings: dict[str, float] = {}
    started, current, done = time.perf_counter(), "prepare", 0

    def step(name: str) -> None:
        nonlocal started, current, done
        now = time.perf_counter()
        timings[f"seconds_{current.replace(' ', '_').replace('-', '_')}"] = now - started
        started, current, done = now, name, done + 1
        on_progress(done, FIT_STEPS, name)

    seed, xgbp = config.seed, config.xgb
    classic = fit_feature_spec(train, features)  # the baselines' inputs
    lifetime = fit_lifetime(train, config.horizon_days, seed=seed) if xgbp.btyd_features else None
    if lifetime is not None and not _has_lifetime_inputs(classic):
        lifetime = None
    weight = None if lifetime is None else choose_orders_weight(train, features, config, time_split)
    if lifetime is not None and weight is not None:
        lifetime = dataclasses.replace(lifetime, orders_weight=weight.weight)
    spec = classic.with_lifetime(lifetime)
    x_train, x_hold = model_matrix(train, spec), model_matrix(holdout, spec)
    names = spec.matrix_names
    y_train, y_hold = train["churned"].to_numpy(int), holdout["churned"].to_numpy(int)
    if len(np.unique(y_train)) < 2:
        raise PersonaError("the training rows hold only one churn class; use more history or another --as-of")

    step("churn model")
    churn = fit_xgb(x_train, y_train, OBJECTIVES["churn"], xgbp, seed, names, CHURN_MONOTONE)
    step("value models")
    orders = fit_xgb(
        x_train, train["future_orders"].to_numpy(float), OBJECTIVES["orders"], xgbp, seed, names, VALUE_MONOTONE,
        variance_power=xgbp.orders_tweedie_variance_power,
    )
    spend = fit_xgb(
        x_train, train["future_spend"].to_numpy(float), OBJECTIVES["spend"], xgbp, seed, names, VALUE_MONOTONE
    )

    step("baselines")
    baseline_rows = sample_rows(train, BASELINE_ROWS, seed)  # a baseline needs no more
    logreg = fit_logreg(
        model_matrix(baseline_rows, classic, impute=True), baseline_rows["churned"].to_numpy(int), seed
    )
    p_logreg = logreg.predict_proba(model_matrix(holdout, classic, impute=True))[:, 1]
    calibrate = fit_calibrator(rfm_score(train), y_train)
    p_rfm = calibrate(rfm_score(holdout))

    step("personas")
    cluster_cols = persona_columns(features)
    fit_rows = sample_rows(train, config.personas.fit_sample, seed)
    cluster_spec = fit_cluster_spec(fit_rows, cluster_cols)
    pfit = fit_personas(
        cluster_matrix(fit_rows, cluster_spec),
        config.personas.k_min,
        config.personas.k_max,
        seed,
        config.personas.silhouette_sample,
        prefer_k=len(previous.centers) if previous is not None and previous.centers is not None else None,
        prefer_margin=config.personas.keep_k_margin,
    )
    seg_fit = nearest_center(cluster_matrix(fit_rows, cluster_spec), pfit.centers)
    traits = trait_scores(fit_rows, seg_fit)
    churn_by_seg = fit_rows["churned"].groupby(seg_fit).mean()
    recency_z = traits.get("recency_days")
    persona_names = name_segments(traits, churn_by_seg, recency_z)
    match = stable_personas(previous, fit_rows, seg_fit, pfit.centers, persona_names, previous_same_text)

    spend_cuts = value_cutpoints(predict_xgb(spend, x_hold), policy)
    predictor = PersonaPredictor(
        kind="persona",
        features=spec,
        models={"churn": churn, "orders": orders, "spend": spend},
        cluster=cluster_spec,
        centers=pfit.centers,
        persona_names=match.names if match else persona_names,
        persona_ids=match.ids if match else (),
        policy=policy,
        spend_cuts=spend_cuts,
        metadata={"feature_service": config.feature_service,
                  PERSONA_NEXT_ID: match.next_id if match else len(pfit.centers)},
    )

    step("evaluating")
    predictions = predictor.predict(holdout)
    metrics = persona_metrics(holdout, predictions)
    metrics.update(M.prefixed("baseline_logreg", M.classification_metrics(y_hold, p_logreg)))
    metrics.update(M.prefixed("baseline_rfm", M.classification_metrics(y_hold, p_rfm)))
    value_baseline = (
        None if transactions is None else btyd_holdout_predictions(holdout, transactions, config.horizon_days)
    )
    if value_baseline is not None:
        metrics.update(value_baseline_metrics(holdout, predictions, value_baseline))
    constant_spend = np.full(len(holdout), float(train["future_spend"].mean()))
    metrics.update(
        M.prefixed("baseline_constant_spend", M.regression_metrics(holdout["future_spend"], constant_spend))
    )
    if weight is not None:
        metrics.update(weight.metrics())
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
        bspec = bspec.with_lifetime(spec.lifetime if _has_lifetime_inputs(bspec) else None)
        b_churn = fit_xgb(
            model_matrix(train, bspec), y_train, OBJECTIVES["churn"], xgbp, seed, bspec.matrix_names, CHURN_MONOTONE
        )
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
        described, predictions["segment"].to_numpy(), predictor.persona_names, terms, described_traits
    )
    if match is not None:
        for card in cards:
            change = match.change_of(card["segment"])
            card["change"] = change.to_dict() if change else None
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
        value_baseline=value_baseline,
        persona_match=match,
        orders_weight=weight,
    )


def _has_lifetime_inputs(spec: FeatureSpec) -> bool:
    return all(c in spec.numeric for c in LIFETIME_INPUTS)


def stable_personas(
    previous: PersonaPredictor | None,
    rows: pd.DataFrame,
    labels: np.ndarray,
    centers: np.ndarray,
    names: dict[int, str],
    same_text: bool = True,
) -> PersonaMatch | None:
    """Match the new clusters to the previous champion's personas on the same rows (None: nothing to match).

    Both sides are compared in the champion's standardized clustering space: its centers, and the
    new clusters' centroids over ``rows`` (see :mod:`training.persona_match`). When ``rows`` hold
    text features of another projection than the champion's (``same_text`` False), its text axes
    mean something else: the comparison then leaves them out.
    """
    if previous is None or previous.kind != "persona" or previous.cluster is None or previous.centers is None:
        return None
    spec, old_centers = previous.cluster, np.asarray(previous.centers, float)
    if not same_text:
        keep = [j for j, c in enumerate(spec.columns) if not c.startswith(TEXT_PROJECTION_PREFIX)]
        spec = ClusterSpec(
            columns=tuple(spec.columns[j] for j in keep),
            log_columns=tuple(c for c in spec.log_columns if not c.startswith(TEXT_PROJECTION_PREFIX)),
            medians=tuple(spec.medians[j] for j in keep),
            mean=tuple(spec.mean[j] for j in keep),
            scale=tuple(spec.scale[j] for j in keep),
        )
        old_centers = old_centers[:, keep]
    shared = cluster_matrix(rows, spec)
    old_of_row = previous.segment_ids[nearest_center(shared, old_centers)]
    next_id = previous.metadata.get(PERSONA_NEXT_ID)
    return match_personas(
        old_centers, previous.segment_ids.tolist(), previous.persona_names,
        centroids_in(shared, labels, len(centers)), old_of_row, labels, names,
        next_id=int(next_id) if next_id is not None else None,
    )



def fit_target_model(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    features: list[str],
    target: str,
    task: str,
    config: TrainConfig,
) -> tuple[PersonaPredictor, dict[str, float]]:
    """Fit and evaluate one XGBoost model for a custom label column, beside the run's baselines.

    The baselines (``baseline_logreg_<target>_*`` and ``baseline_majority_<target>_*`` for a
    classifier, ``baseline_constant_<target>_*`` for a regression) are what the gate requires
    the model to beat.
    """
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
    metrics = target_metrics(predictor, holdout)
    y_hold = holdout[target].to_numpy(float)
    if task == "classification":
        rows = sample_rows(train, BASELINE_ROWS, config.seed)
        logreg = fit_logreg(model_matrix(rows, spec, impute=True), rows[target].to_numpy(int), config.seed)
        p_logreg = logreg.predict_proba(model_matrix(holdout, spec, impute=True))[:, 1]
        majority = np.full(len(holdout), float(np.mean(y)))
        metrics.update(M.prefixed(f"baseline_logreg_{target}", M.classification_metrics(y_hold, p_logreg)))
        metrics.update(M.prefixed(f"baseline_majority_{target}", M.classification_metrics(y_hold, majority)))
    else:
        constant = np.full(len(holdout), float(np.mean(y)))
        metrics.update(M.prefixed(f"baseline_constant_{target}", M.regression_metrics(y_hold, constant)))
    return predictor, metrics


def check_cv_folds(frame: pd.DataFrame, target: str, task: str, folds: int) -> None:
    """Refuse ``--cv-folds`` a labels table cannot fill: every fold needs a customer of each class.

    With fewer customers of a class than folds, stratified folds without that class get a NaN
    ROC AUC and the folds' mean is NaN; this says so before anything is fitted.

    Raises:
        PersonaError: one line naming ``--cv-folds``, the class that is short and the fix.
    """
    per_customer = frame.drop_duplicates(ENTITY_KEY, keep="last")
    if task != "classification":
        if len(per_customer) < folds:
            raise PersonaError(f"--cv-folds {folds} needs at least {folds} labelled customers; the labels hold "
                               f"{len(per_customer)}: lower --cv-folds")
        return
    counts = per_customer[target].value_counts()
    value, fewest = counts.idxmin(), int(counts.min())
    if fewest < folds:
        raise PersonaError(f"--cv-folds {folds} needs at least {folds} customers of each {target} value; the labels "
                           f"hold {fewest} with {target}={value:g}: lower --cv-folds or label more customers")


def cross_validate_target(
    frame: pd.DataFrame, features: list[str], target: str, task: str, config: TrainConfig, folds: int
) -> dict[str, float]:
    """Mean and spread of the primary metric over stratified customer folds (labels at one time).

    Returns:
        ``<target>_<metric>_cv_mean``, ``..._cv_std`` and ``cv_folds``.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    per_customer = frame.drop_duplicates(ENTITY_KEY, keep="last").reset_index(drop=True)
    ids, y = per_customer[ENTITY_KEY].to_numpy(), per_customer[target].to_numpy()
    if task == "classification":
        splits = StratifiedKFold(folds, shuffle=True, random_state=config.seed).split(ids, y)
        metric = "roc_auc"
    else:
        splits = KFold(folds, shuffle=True, random_state=config.seed).split(ids)
        metric = "mae"
    values = []
    for _, test_idx in splits:
        held = frame[ENTITY_KEY].isin(ids[test_idx])
        predictor, _ = fit_target_model(frame[~held], frame[held], features, target, task, config)
        values.append(M.prefixed(target, _primary(predictor, frame[held], task))[f"{target}_{metric}"])
    return {
        f"{target}_{metric}_cv_mean": float(np.mean(values)),
        f"{target}_{metric}_cv_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "cv_folds": float(len(values)),
    }


def _primary(predictor: PersonaPredictor, rows: pd.DataFrame, task: str) -> dict[str, float]:
    pred = predictor.predict(rows)["prediction"].to_numpy()
    y = rows[str(predictor.target)].to_numpy(float)
    return M.classification_metrics(y, pred) if task == "classification" else M.regression_metrics(y, pred)


