"""The reference side of monitoring: the champion, what it was trained on, and past retrains.

Everything here reads MLflow; the job compares what it returns with the current window.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from core.errors import PersonaError
from training.config import TrainConfig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.settings import Settings

EXPERIMENT = "persona-monitoring"


class ChampionModel(Protocol):
    """What monitoring uses of a servable bundle (:class:`model.bundle.PersonaPredictor`)."""

    @property
    def feature_columns(self) -> Sequence[str]:
        """The model's feature columns."""
        ...

    @property
    def metadata(self) -> dict:
        """Lineage recorded with the bundle (feature service, data window, ...)."""
        ...

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions for feature rows."""
        ...


@dataclass
class Champion:
    """The current champion and what it was trained on."""

    model: str
    version: str
    run_id: str
    predictor: ChampionModel
    reference: pd.DataFrame
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    @property
    def features(self) -> list[str]:
        """The model's feature columns."""
        return list(self.predictor.feature_columns)

    @property
    def feature_service(self) -> str:
        """The Feast feature service it was trained on (recorded, else the training default)."""
        return str(self.predictor.metadata.get("feature_service") or self.tags.get("feature_service")
                   or TrainConfig.model_fields["feature_service"].default)

    @property
    def holdout_end(self) -> pd.Timestamp | None:
        """End of its holdout period: later snapshots are unseen data (None when unknown)."""
        value = self.tags.get("data.holdout_end") or self.predictor.metadata.get("data.holdout_end")
        try:
            return pd.Timestamp(value).tz_convert("UTC") if value else None
        except (ValueError, TypeError):
            return None

    def horizon_days(self, default: int) -> int:
        """The label horizon it was trained with (``default`` when not recorded)."""
        try:
            return int(self.params.get("horizon_days", default))
        except (TypeError, ValueError):
            return default


def load_champion(settings: Settings) -> Champion:
    """The champion version, its predictor, training metrics and reference data.

    Raises:
        PersonaError: no champion, not a persona bundle, no reference data logged, or the text
            features are in another projection than the champion was trained on.
    """
    import mlflow

    from features.text_version import require_text_version
    from model.bundle import load_predictor
    from model.registry import CHAMPION, alias_version, configure_mlflow
    from training.train import REFERENCE_ARTIFACT

    client = configure_mlflow(settings)
    model = settings.registered_model
    version = alias_version(client, model, CHAMPION)
    if version is None:
        raise PersonaError(f"model {model!r} has no champion yet; run `persona train` before "
                           "`persona monitor`")
    model_version = client.get_model_version(model, version)
    run = client.get_run(model_version.run_id)
    try:
        predictor = load_predictor(f"models:/{model}/{version}", settings)
    except Exception as exc:
        raise PersonaError(f"cannot load champion {model} v{version}: {exc}") from None
    if predictor.kind != "persona":
        raise PersonaError(f"champion {model} v{version} is a custom-target model; monitoring needs a "
                           "persona bundle (train one with `persona train`)")
    require_text_version(settings, f"champion {model} v{version}", predictor.metadata)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=model_version.run_id,
                                                       artifact_path=REFERENCE_ARTIFACT, dst_path=tmp)
            reference = pd.read_parquet(path)
        except Exception:
            raise PersonaError(f"champion {model} v{version} (run {model_version.run_id}) has no "
                               f"{REFERENCE_ARTIFACT} artifact; retrain with `persona train`") from None
    return Champion(model, str(version), model_version.run_id, predictor, reference,
                    dict(run.data.metrics), dict(run.data.params), dict(run.data.tags))


def mlflow_last_retrain(settings: Settings) -> dt.datetime | None:
    """Start of the latest monitoring run that retrained, from MLflow (None if none)."""
    from model.registry import configure_mlflow

    client = configure_mlflow(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`retrain.status` = 'trained'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    started = runs[0].data.tags.get("retrain.started_at")
    if started:
        return dt.datetime.fromisoformat(started)
    return dt.datetime.fromtimestamp(runs[0].info.start_time / 1000, dt.UTC)
