"""The label-free refresh: personas and value tiers refitted on today's customers, the supervised models kept.

A drift alert cannot retrain churn and value until their labels mature (see
:mod:`monitoring.retrain_scope`), but what needs no labels can follow the customers now:

- **personas**: KMeans refitted on the latest snapshot of every customer, matched to the champion's
  personas (:func:`training.fit.stable_personas`) so a persona that is the same group keeps its id
  and name, and one that split, merged, appeared or vanished says so;
- **value tiers**: the expected-spend cut points recomputed from the champion's own spend
  predictions on those customers (the policy's quantiles), so "high value" means the top of today's
  customers;
- **churn calibration** on the rows whose labels matured after the champion's training window
  (:mod:`training.refresh_calibration`): a monotone map over the boosters' probabilities.

The churn, orders and spend boosters, the feature spec, the action policy and the text projection
are the champion's, unchanged: the candidate's boosters must give the champion's outputs on every
row (before any calibration map), or it is refused. The text projection stays pinned; a new one comes only with a
supervised retrain, since the boosters were trained on the pinned one.

The candidate goes through :func:`decide_refresh`, part by part: the personas (with the value
tiers) are taken only when they separate today's customers better than the champion's do
(silhouette on the same rows, in the same standardized space, by at least ``min_gain``), the
calibration only when it lowers the Brier score on held-out matured rows; with neither, or while a
skew replay holds promotion, the candidate stays a challenger. :func:`assemble` builds the version
from the parts taken. Everything here is
pure; :mod:`training.refresh_job` logs, registers and moves the alias.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_score

from model.actions import value_cutpoints
from model.bundle import PersonaPredictor
from model.calibration import CALIBRATION_KEY, without_calibration
from model.preprocess import cluster_matrix, fit_cluster_spec, nearest_center, persona_columns
from training.data import sample_rows
from training.fit import PERSONA_MATCHED_TO, PERSONA_NEXT_ID, stable_personas
from training.gate import CHALLENGER, CHAMPION, GateDecision
from training.persona_match import PersonaMatch
from training.personas import fit_personas, name_segments, persona_cards, trait_scores
from training.refresh_calibration import MAX_AUC_LOSS, MIN_BRIER_GAIN, calibration_verdict, fit_calibration

if TYPE_CHECKING:
    from training.config import PersonaParams

REFRESHED = ("personas", "value tiers", "churn calibration")
"""What a label-free refresh refits."""
SUPERVISED_OUTPUTS = ("churn_probability", "expected_orders", "expected_spend")
REFRESH_KEY = "refresh"  # bundle metadata and registry tag: "label_free" on a refreshed version
REFRESHED_FROM = "refreshed_from"  # the champion version whose supervised models it keeps
REFRESHED_AT = "refreshed_at"  # the snapshot its personas were fitted on
DEFAULT_MIN_GAIN = 0.01


@dataclass
class RefreshFit:
    """A refreshed candidate and what it was measured on (nothing logged yet)."""

    predictor: PersonaPredictor  # the new personas and value tiers (the champion's calibration)
    match: PersonaMatch | None
    metrics: dict[str, float]
    cards: list[dict]
    outputs_equal: bool
    calibration: dict | None = None  # a refitted churn map (None: none fitted)
    calibration_note: str = ""  # why none was fitted


@dataclass(frozen=True)
class RefreshDecision:
    """The refresh gate's verdict and the parts it takes.

    Attributes:
        promote / alias / reason: as :class:`training.gate.GateDecision`.
        personas: take the new personas and value tiers.
        calibration: take the refitted churn calibration.
    """

    promote: bool
    alias: str
    reason: str
    personas: bool = False
    calibration: bool = False

    def gate(self) -> GateDecision:
        """As the registry's alias move takes it."""
        return GateDecision(self.promote, self.alias, self.reason)


def silhouette_on(matrix: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Silhouette of ``labels`` over ``matrix`` (-1 when there is only one group)."""
    if len(np.unique(labels)) < 2 or len(matrix) < 3:
        return -1.0
    return float(silhouette_score(matrix, labels, random_state=seed))


def fit_refresh(
    champion: PersonaPredictor,
    rows: pd.DataFrame,
    params: PersonaParams,
    seed: int = 7,
    base_version: str | None = None,
    snapshot_at: pd.Timestamp | None = None,
    matured: pd.DataFrame | None = None,
) -> RefreshFit:
    """Refit personas and value tiers on ``rows`` (today's customers) around the champion's supervised models.

    Args:
        champion: the champion bundle (a persona bundle).
        rows: the latest snapshot's features of every customer (at least the champion's feature columns).
        params: KMeans settings (k range, samples, the margin to leave the champion's k).
        seed: sampling and KMeans seed.
        base_version: the champion's version (recorded in the candidate's metadata).
        snapshot_at: the snapshot ``rows`` are from (recorded).
        matured: rows after the champion's training window whose labels matured (features,
            ``customer_id``, ``churned``), for the calibration; None: calibration kept.

    Raises:
        ValueError: the champion is not a persona bundle, or ``rows`` lack its feature columns.
    """
    if champion.kind != "persona" or champion.centers is None or champion.policy is None:
        raise ValueError("a label-free refresh needs a persona bundle with personas and an action policy")
    champion.check_columns(rows)
    features = champion.feature_columns
    fit_rows = sample_rows(rows, params.fit_sample, seed).reset_index(drop=True)
    spec = fit_cluster_spec(fit_rows, persona_columns(features))
    matrix = cluster_matrix(fit_rows, spec)
    fitted = fit_personas(matrix, params.k_min, params.k_max, seed, params.silhouette_sample,
                          prefer_k=len(champion.centers), prefer_margin=params.keep_k_margin)
    segments = nearest_center(matrix, fitted.centers)
    before = champion.predict(fit_rows)
    traits = trait_scores(fit_rows, segments)
    # no labels: a persona's churn qualifier comes from the champion's churn model instead
    churn_by_segment = before["churn_probability"].groupby(segments).mean()
    names = name_segments(traits, churn_by_segment, traits.get("recency_days"))
    match = stable_personas(champion, fit_rows, segments, fitted.centers, names)
    all_spend = champion.predict(rows)["expected_spend"].to_numpy()
    candidate = dataclasses.replace(
        champion,
        cluster=spec,
        centers=fitted.centers,
        persona_names=match.names if match else names,
        persona_ids=match.ids if match else (),
        spend_cuts=value_cutpoints(all_spend, champion.policy),
        metadata={**champion.metadata, PERSONA_NEXT_ID: match.next_id if match else len(fitted.centers),
                  PERSONA_MATCHED_TO: base_version, REFRESH_KEY: "label_free", REFRESHED_FROM: base_version,
                  REFRESHED_AT: None if snapshot_at is None else pd.Timestamp(snapshot_at).isoformat()},
    )
    after = candidate.predict(fit_rows)
    equal = boosters_agree(champion, candidate, fit_rows)
    # both clusterings scored on the same sample in today's standardized space
    sample = np.random.default_rng(seed).choice(len(fit_rows), size=min(len(fit_rows), params.silhouette_sample),
                                                replace=False)
    metrics = {
        "persona_k": float(len(fitted.centers)),
        "persona_silhouette": silhouette_on(matrix[sample], after["segment"].to_numpy()[sample], seed),
        "champion_persona_silhouette": silhouette_on(matrix[sample], before["segment"].to_numpy()[sample], seed),
        "refresh_rows": float(len(rows)),
        "persona_fit_rows": float(len(fit_rows)),
        "spend_cut_low": float(candidate.spend_cuts[0]),
        "spend_cut_high": float(candidate.spend_cuts[1]),
        "champion_spend_cut_low": float(champion.spend_cuts[0]),
        "champion_spend_cut_high": float(champion.spend_cuts[1]),
    }
    described = pd.concat([fit_rows.drop(columns=[c for c in after.columns if c in fit_rows.columns]),
                           after.drop(columns=["segment"])], axis=1)
    cards = persona_cards(described, after["segment"].to_numpy(), candidate.persona_names, {},
                          trait_scores(described, after["segment"].to_numpy()))
    if match is not None:
        for card in cards:
            change = match.change_of(card["segment"])
            card["change"] = change.to_dict() if change else None
    calibration, calibration_metrics, note = fit_calibration(champion, matured, seed)
    metrics.update(calibration_metrics)
    return RefreshFit(candidate, match, metrics, cards, equal, calibration, note)


def boosters_agree(champion: PersonaPredictor, candidate: PersonaPredictor, rows: pd.DataFrame) -> bool:
    """Whether both bundles' boosters give the same churn, orders and spend on every row (before calibration)."""
    raw = [dataclasses.replace(b, metadata=without_calibration(b.metadata)).predict(rows)
           for b in (champion, candidate)]
    return all(np.array_equal(raw[0][c].to_numpy(), raw[1][c].to_numpy()) for c in SUPERVISED_OUTPUTS)


def assemble(champion: PersonaPredictor, fit: RefreshFit, decision: RefreshDecision) -> PersonaPredictor:
    """The version to register: the parts the gate took on the champion, or every refitted part for a challenger."""
    take_personas = decision.personas or not decision.promote
    take_calibration = (decision.calibration or not decision.promote) and fit.calibration is not None
    base = fit.predictor if take_personas else dataclasses.replace(
        champion, metadata={**champion.metadata, **{k: fit.predictor.metadata[k] for k in
                                                    (REFRESH_KEY, REFRESHED_FROM, REFRESHED_AT)}})
    metadata = without_calibration(base.metadata) if take_calibration else dict(base.metadata)
    if take_calibration:
        metadata[CALIBRATION_KEY] = fit.calibration
    return dataclasses.replace(base, metadata=metadata)


def decide_refresh(
    metrics: dict[str, float],
    outputs_equal: bool,
    champion_version: str,
    min_gain: float = DEFAULT_MIN_GAIN,
    skew: str | None = None,
    min_brier_gain: float = MIN_BRIER_GAIN,
    max_auc_loss: float = MAX_AUC_LOSS,
) -> RefreshDecision:
    """The refresh's gate, part by part: personas when today's customers separate better, calibration when it helps.

    Args:
        metrics: from :func:`fit_refresh` (``persona_silhouette``, ``champion_persona_silhouette``
            and, when a calibration was fitted, ``calibration_*``).
        outputs_equal: the candidate's boosters give the champion's outputs on every row.
        champion_version: the version it would replace.
        min_gain: silhouette gain over the champion's personas needed to take the new ones (a gain
            of exactly ``min_gain`` does).
        skew: why a skew replay holds promotion (``training.gate.skew_hold``), None when it does not.
        min_brier_gain: Brier score the calibration must gain on held-out matured rows.
        max_auc_loss: ROC AUC the calibration may cost there.
    """
    if not outputs_equal:
        return RefreshDecision(False, CHALLENGER, "refused: the refresh changed churn or value outputs, "
                               "which only a supervised retrain may change")
    new, old = metrics["persona_silhouette"], metrics["champion_persona_silhouette"]
    gain = new - old
    personas = bool(np.isfinite(gain) and gain >= min_gain)
    verdict = (f"personas on today's customers: silhouette {new:.3f} vs v{champion_version}'s {old:.3f} "
               f"(gain {gain:+.3f}, needs {min_gain:+.3f})" + ("" if personas else ": the champion's still fit"))
    calibration, calibration_text = calibration_verdict(metrics, min_brier_gain, max_auc_loss)
    if "calibration_brier_after" in metrics:
        verdict += f"; {calibration_text}"
    if not (personas or calibration):
        return RefreshDecision(False, CHALLENGER, verdict)
    if skew:
        return RefreshDecision(False, CHALLENGER, f"{verdict}; held back: {skew}")
    return RefreshDecision(True, CHAMPION, f"{verdict}; churn and value boosters unchanged from v{champion_version}",
                           personas=personas, calibration=calibration)


def reference_of(candidate: PersonaPredictor, reference: pd.DataFrame) -> pd.DataFrame:
    """The champion's drift reference re-described by the candidate (same rows and features, new personas)."""
    features = candidate.feature_columns
    keys = [c for c in ("customer_id", "event_timestamp") if c in reference.columns]
    rows = reference[[*keys, *features]].reset_index(drop=True)
    return pd.concat([rows, candidate.predict(rows).reset_index(drop=True)], axis=1)
