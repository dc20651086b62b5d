"""``persona campaign monitor``: the uplift champion watched like the other models.

Three readings, each a pure function of :mod:`monitoring.uplift` fed here from Feast and the
ingested campaigns:

1. prediction drift: the champion's uplift per offer on every customer at the latest snapshot
   against the same customers' at the snapshot before its held-out campaign (what the gate saw);
2. persona-level shift: the same two sets of predictions averaged per persona (the persona
   champion's, on the same snapshots);
3. realized against predicted: every matured exposure of a campaign the champion did not learn
   from, binned by the uplift it predicted before the contact, with treated minus control
   conversion per bin.

It writes ``uplift.json`` under the monitoring reports and returns what it found; deciding to
retrain stays with ``persona train --uplift`` and its gate.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core import catalog
from core.contract import CAMPAIGN_KEY, ENTITY_KEY, TIMESTAMP
from core.errors import PersonaError
from model.uplift import uplift_column
from monitoring.uplift import persona_uplift_shift, realized_vs_predicted, uplift_drift

if TYPE_CHECKING:

    from core.settings import Settings
    from model.uplift import UpliftPredictor

logger = logging.getLogger(__name__)


@dataclass
class UpliftMonitorResult:
    """What the uplift monitor found."""

    version: str
    reference_at: str
    current_at: str
    drift: pd.DataFrame
    personas: pd.DataFrame
    realized: dict[str, pd.DataFrame] = field(default_factory=dict)
    path: Path | None = None

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"uplift champion v{self.version}: {self.reference_at} -> {self.current_at}"]
        for row in self.drift.itertuples():
            lines.append(f"  {row.column}: mean {row.reference_mean:+.4f} -> {row.current_mean:+.4f}, PSI "
                         f"{row.psi:.3f}{' DRIFTED' if row.drifted else ''}")
        if len(self.personas):
            top = self.personas.iloc[0]
            lines.append(f"  largest persona move: {top['persona']} {top['column']} {top['change']:+.4f}")
        for offer, bins in self.realized.items():
            covered = int(bins["covers"].sum())
            lines.append(f"  realized vs predicted ({offer}): {covered}/{len(bins)} bins hold their prediction")
        if not self.realized:
            lines.append("  realized vs predicted: no matured campaign the champion did not learn from yet")
        if self.path is not None:
            lines.append(f"  report {self.path}")
        return "\n".join(lines)


def _snapshot(settings: Settings, at: pd.Timestamp | None) -> pd.DataFrame:
    from features.build import entity_snapshots

    snapshots = entity_snapshots(settings)
    if at is not None:
        snapshots = snapshots[pd.to_datetime(snapshots[TIMESTAMP], utc=True) <= at]
    if snapshots.empty:
        raise PersonaError("no feature snapshot to monitor the uplift model on; run `persona features build`")
    return snapshots[snapshots[TIMESTAMP] == snapshots[TIMESTAMP].max()].reset_index(drop=True)


def _predict(settings: Settings, predictor: UpliftPredictor, entities: pd.DataFrame) -> pd.DataFrame:
    from features.dataset import build_training_set
    from model.bundle import load_predictor
    from model.registry import CHAMPION

    service = str(predictor.metadata.get("feature_service", "churn_model_v1"))
    features = build_training_set(settings, entities, service)
    out = predictor.predict(features).assign(**{ENTITY_KEY: features[ENTITY_KEY].to_numpy(),
                                                TIMESTAMP: features[TIMESTAMP].to_numpy()})
    try:  # the persona of each customer, from the persona champion on its own features
        personas = load_predictor(f"models:/{settings.registered_model}@{CHAMPION}", settings)
        own = str(personas.metadata.get("feature_service") or service)
        rows = features if own == service else build_training_set(settings, entities, own)
        out["persona"] = personas.predict(rows)["persona"].to_numpy()
    except Exception as exc:  # no persona champion: drift and realized uplift still stand
        logger.info("uplift monitoring without personas: %s", exc)
    return out


def uplift_champion_version(settings: Settings) -> str | None:
    """The registered uplift champion's version, or None when there is none."""
    from campaign.train import uplift_model_name
    from model.registry import CHAMPION, alias_version, configure_mlflow

    return alias_version(configure_mlflow(settings), uplift_model_name(settings), CHAMPION)


def monitor_uplift(settings: Settings) -> UpliftMonitorResult:
    """Run the three readings (see the module docstring) and write ``uplift.json``.

    Raises:
        PersonaError: no uplift champion, or no feature snapshot.
    """
    from campaign.data import matured_outcomes, read_table
    from campaign.train import uplift_model_name
    from model.uplift import load_uplift

    name = uplift_model_name(settings)
    version = uplift_champion_version(settings)
    if version is None:
        raise PersonaError(f"no uplift champion ({name}); run `persona train --uplift` first")
    predictor = load_uplift(f"models:/{name}/{version}", settings)
    campaigns = read_table(settings, "campaigns")
    held = campaigns[campaigns[CAMPAIGN_KEY].isin(predictor.metadata.get("holdout_campaigns") or [])]
    reference_at = pd.to_datetime(held["start"], utc=True).min() if len(held) else None
    reference = _predict(settings, predictor, _snapshot(settings, reference_at))
    current = _predict(settings, predictor, _snapshot(settings, None))
    columns = [uplift_column("conversion", o) for o in predictor.offers]
    drift = uplift_drift(reference, current, columns)
    personas = (persona_uplift_shift(reference, current, columns) if "persona" in reference and "persona" in current
                else pd.DataFrame())
    realized: dict[str, pd.DataFrame] = {}
    learned = set(predictor.metadata.get("train_campaigns") or [])
    matured = matured_outcomes(settings)
    fresh = matured[~matured[CAMPAIGN_KEY].astype(str).isin(learned)]
    if len(fresh):
        from features.dataset import build_training_set

        rows = build_training_set(settings, fresh, str(predictor.metadata.get("feature_service", "churn_model_v1")))
        predicted = predictor.predict(rows)
        for offer in predictor.offers:
            mine = (rows["offer"] == offer).to_numpy()
            if mine.any():
                frame = rows[mine].assign(predicted=predicted[uplift_column("conversion", offer)].to_numpy()[mine])
                realized[offer] = realized_vs_predicted(frame, "predicted")
    path = catalog.monitoring_reports(settings) / "uplift.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = UpliftMonitorResult(str(version), str(reference[TIMESTAMP].max()), str(current[TIMESTAMP].max()), drift,
                                 personas, realized, path)
    path.write_text(json.dumps({
        "model": name, "version": str(version), "reference_at": result.reference_at, "current_at": result.current_at,
        "drift": drift.to_dict(orient="records"), "personas": personas.to_dict(orient="records"),
        "realized_vs_predicted": {o: b.to_dict(orient="records") for o, b in realized.items()},
    }, indent=1, default=str))
    return result


__all__ = ["UpliftMonitorResult", "monitor_uplift", "uplift_champion_version"]
