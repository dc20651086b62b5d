"""The registered model: one pyfunc bundling churn, value, personas and actions.

:class:`PersonaPredictor` is the plain predictor (feature frame in, predictions out) that the
training job evaluates, ``persona score`` runs and serving wraps. :class:`PersonaBundle` is the
thin MLflow pyfunc around it. Everything is stored without pickle: XGBoost models as JSON,
encoders, cluster centers, persona names and the action policy in ``bundle.json``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import mlflow.pyfunc
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.pyfunc.model import PythonModel

from core.contract import PREDICTION_COLUMNS
from model.actions import ActionPolicy, assign_actions
from model.calibration import calibrate_churn
from model.preprocess import (
    P_ALIVE,
    ClusterSpec,
    FeatureSpec,
    cluster_matrix,
    model_matrix,
    nearest_center,
    p_alive_of,
    served_orders,
)
from model.signing import UntrustedModelError
from model.trust import (
    ARTIFACT_HASH_TAG,
    ArtifactIntegrityError,
    artifact_digest,
    record_artifact_hash,
    verify_artifacts,
)

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from core.settings import Settings
    from model.uplift import UpliftPredictor

# Re-exported: where callers have always found them.
__all__ = [
    "ARTIFACT_HASH_TAG",
    "ArtifactIntegrityError",
    "PersonaBundle",
    "PersonaPredictor",
    "UntrustedModelError",
    "artifact_digest",
    "load_predictor",
    "record_artifact_hash",
    "to_model_input",
    "verify_artifacts",
]

# The models-from-code entry point MLflow copies into every logged model and runs on load.
BUNDLE_ENTRY = Path(__file__).with_name("bundle_entry.py")

BUNDLE_FILE = "bundle.json"
OUTPUT_COLUMNS = PREDICTION_COLUMNS
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


@dataclass
class PersonaPredictor:
    """Churn probability, expected orders and spend, segment, persona and action per row.

    Attributes:
        kind: ``"persona"`` (churn + value + personas + actions) or ``"target"`` (a custom label).
        features: input columns, their order, category levels and medians.
        models: XGBoost boosters by name (``churn``, ``orders``, ``spend``; or ``target``).
        cluster: clustering space (persona bundles only).
        centers: KMeans centers in that space.
        persona_names: persona id -> persona name.
        persona_ids: the stable persona id of each center (empty: the center's index). A retrain
            matched to its champion keeps the champion's ids for the same groups
            (:mod:`training.persona_match`), so ``segment`` means the same persona across versions.
        policy: the validated action policy.
        spend_cuts: absolute expected-spend cut points for the value tier.
        target / task: the custom label's column and task (target bundles only).
        metadata: lineage copied into ``bundle.json`` (feature service, data window, ...).
    """

    kind: Literal["persona", "target"]
    features: FeatureSpec
    models: dict[str, xgb.Booster]
    cluster: ClusterSpec | None = None
    centers: np.ndarray | None = None
    persona_names: dict[int, str] = field(default_factory=dict)
    persona_ids: tuple[int, ...] = ()
    policy: ActionPolicy | None = None
    spend_cuts: tuple[float, float] = (float("inf"), float("inf"))
    target: str | None = None
    task: str | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Prediction is cheap per row; one OpenMP thread avoids spin-waits on a shared machine.
        for booster in self.models.values():
            booster.set_param({"nthread": 1})

    @property
    def feature_columns(self) -> list[str]:
        """Input feature columns in model order (the serving contract)."""
        return list(self.features.columns)

    def _predict_model(self, name: str, matrix: np.ndarray) -> np.ndarray:
        if len(matrix) == 0:
            return np.zeros(0)
        return np.asarray(self.models[name].inplace_predict(matrix), dtype=float)

    def check_columns(self, frame: pd.DataFrame) -> None:
        """Raise ``ValueError`` naming the feature columns missing from ``frame``."""
        missing = [c for c in self.features.columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"feature frame lacks columns {missing}; the model expects {self.feature_columns}"
            )

    @property
    def segment_ids(self) -> np.ndarray:
        """The persona id of each center (int64), the center's index when none were recorded."""
        count = 0 if self.centers is None else len(self.centers)
        return np.asarray(self.persona_ids if self.persona_ids else range(count), dtype=np.int64)

    def segments(self, frame: pd.DataFrame) -> np.ndarray:
        """Persona id (of the nearest KMeans center) per row."""
        assert self.cluster is not None
        assert self.centers is not None
        return self.segment_ids[nearest_center(cluster_matrix(frame, self.cluster), self.centers)]

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict for a feature frame (extra columns ignored, NaN allowed).

        Returns:
            Persona bundles: ``churn_probability, expected_orders, expected_spend, segment, persona,
            action``, then ``p_alive`` (BG/NBD's P(alive)) when the bundle carries a lifetime model;
            target bundles: ``prediction``. Same row order and index as ``frame``.
        """
        self.check_columns(frame)
        matrix = model_matrix(frame, self.features).astype(np.float32)
        if self.kind == "target":
            return pd.DataFrame({"prediction": self._predict_model("target", matrix)}, index=frame.index)
        churn = calibrate_churn(self.metadata, np.clip(self._predict_model("churn", matrix), 0.0, 1.0))
        orders = served_orders(np.clip(self._predict_model("orders", matrix), 0.0, None), matrix, self.features)
        spend = np.clip(self._predict_model("spend", matrix), 0.0, None)
        segments = self.segments(frame)
        personas = np.array(
            [self.persona_names.get(int(s), f"segment {int(s)}") for s in segments], dtype=object
        )
        assert self.policy is not None
        actions = assign_actions(personas, churn, spend, self.policy, self.spend_cuts)
        out = pd.DataFrame(
            {
                "churn_probability": churn,
                "expected_orders": orders,
                "expected_spend": spend,
                "segment": segments.astype("int64"),
                "persona": personas.astype(str),
                "action": actions.astype(str),
            },
            index=frame.index,
        )
        if self.features.lifetime is not None:
            out[P_ALIVE] = p_alive_of(matrix, self.features)
        return out

    # ---- storage (no pickle) ----
    def save(self, directory: Path) -> Path:
        """Write ``bundle.json`` and one XGBoost JSON file per model into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, booster in self.models.items():
            booster.save_model(str(directory / f"{name}.json"))
        doc = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "features": self.features.to_dict(),
            "models": sorted(self.models),
            "cluster": self.cluster.to_dict() if self.cluster else None,
            "centers": self.centers.tolist() if self.centers is not None else None,
            "persona_names": {str(k): v for k, v in self.persona_names.items()},
            "persona_ids": [int(i) for i in self.persona_ids],
            "policy": self.policy.model_dump(mode="json") if self.policy else None,
            "spend_cuts": list(self.spend_cuts),
            "target": self.target,
            "task": self.task,
            "metadata": self.metadata,
        }
        (directory / BUNDLE_FILE).write_text(json.dumps(doc, indent=1, default=str))
        return directory

    @classmethod
    def load(cls, directory: Path) -> PersonaPredictor:
        """Read a bundle written by :meth:`save`."""
        directory = Path(directory)
        doc = json.loads((directory / BUNDLE_FILE).read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory / BUNDLE_FILE}: unsupported format_version {doc.get('format_version')}"
            )
        models = {}
        for name in doc["models"]:
            booster = xgb.Booster()
            booster.load_model(str(directory / f"{name}.json"))
            models[name] = booster
        return cls(
            kind=doc["kind"],
            features=FeatureSpec.from_dict(doc["features"]),
            models=models,
            cluster=ClusterSpec.from_dict(doc["cluster"]) if doc["cluster"] else None,
            centers=np.asarray(doc["centers"], dtype=float) if doc["centers"] is not None else None,
            persona_names={int(k): v for k, v in doc["persona_names"].items()},
            persona_ids=tuple(int(i) for i in doc.get("persona_ids") or ()),
            policy=ActionPolicy.model_validate(doc["policy"]) if doc["policy"] else None,
            spend_cuts=(float(doc["spend_cuts"][0]), float(doc["spend_cuts"][1])),
            target=doc.get("target"),
            task=doc.get("task"),
            metadata=doc.get("metadata") or {},
        )


class PersonaBundle(PythonModel):
    """MLflow pyfunc shell: loads the bundle directory artifact and delegates to the predictor.

    One entry point for every Persona model, so every registered version passes the same trust
    checks: a bundle directory holding ``uplift.json`` is an uplift model (:mod:`model.uplift`).
    """

    predictor: PersonaPredictor | None = None
    uplift: UpliftPredictor | None = None

    def load_context(self, context) -> None:
        """Read the fitted state from the ``bundle`` artifact (JSON + XGBoost JSON, no pickle)."""
        from model.uplift import UPLIFT_FILE, UpliftPredictor

        directory = Path(context.artifacts["bundle"])
        if (directory / UPLIFT_FILE).exists():
            self.uplift = UpliftPredictor.load(directory)
        else:
            self.predictor = PersonaPredictor.load(directory)

    # The DataFrame hint tells MLflow there is no schema to infer from it (without a hint MLflow
    # warns on every import); input is still accepted as MLflow hands it over.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        """Delegate to :meth:`PersonaPredictor.predict`, taking whatever tabular input MLflow passes."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if self.uplift is not None:
            return self.uplift.predict(frame)
        assert self.predictor is not None, "load_context was not called"
        return self.predictor.predict(frame)


def to_model_input(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The pyfunc's input: ``columns`` in order, numbers as float64, other values as str or None.

    The registered signature declares every numeric feature as double (so missing values are
    allowed); MLflow will not silently turn int64 into float64, so callers of the pyfunc cast here.
    """
    out = frame[columns].reset_index(drop=True).copy()
    for col in columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].astype("float64")
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _unwrap(model, model_uri: str) -> PersonaPredictor:
    bundle = model.unwrap_python_model()
    if not isinstance(bundle, PersonaBundle) or bundle.predictor is None:
        raise ValueError(f"{model_uri} is not a Persona bundle")
    return bundle.predictor


def load_predictor(model_uri: str, settings: Settings | None = None) -> PersonaPredictor:
    """Load the plain predictor behind a registered version (``models:/name/3``, ``models:/name@champion``).

    The version is resolved, downloaded once and checked before MLflow runs any of its code
    (:func:`model.trust.check_downloaded`: Persona's loader, the artifact digest, the signature
    under Persona's key); then it is loaded from those same files. Anything that is not a
    registered version (``runs:/``, a path, an unregistered logged model) carries no signature
    and is refused.

    Args:
        model_uri: a ``models:/`` URI of a registered version.
        settings: where the signing key comes from (default: the active job's settings).

    Raises:
        UntrustedModelError: the version fails a check (``ArtifactIntegrityError`` for a digest mismatch).
        PersonaError: no signing key is configured.
        ValueError: the URI is not a registered version.
    """
    return _unwrap(load_trusted(model_uri, settings), model_uri)


def load_trusted(model_uri: str, settings: Settings | None = None) -> PyFuncModel:
    """The pyfunc of a registered version, loaded only after every trust check (see :func:`load_predictor`)."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    from model.trust import check_downloaded, download_version

    if settings is None:
        from core.runtime import active_settings

        settings = active_settings()
    if not model_uri.startswith("models:/"):
        raise UntrustedModelError(f"{model_uri} is not a registered version; Persona loads only signed, "
                                  "registered versions (models:/<name>/<version>)")
    client = MlflowClient()
    resolved = get_model_name_and_version(client, model_uri)
    if len(resolved) != 2:  # models:/m-<id>: a logged model that was never registered
        raise UntrustedModelError(f"{model_uri} is a logged model that was never registered; refusing to load it")
    name, version = resolved[0], str(resolved[1])
    tags = dict(client.get_model_version(name, version).tags or {})
    with tempfile.TemporaryDirectory(prefix="persona-model-") as tmp:
        local = download_version(name, version, Path(tmp) / "model")
        check_downloaded(local, tags, settings, name, version)
        return mlflow.pyfunc.load_model(str(local))


def load_packaged(
    directory: Path, tags: dict[str, str], settings: Settings, name: str, version: str
) -> PersonaPredictor:
    """The predictor of a version's files packaged elsewhere (a Bento's model store), after the same checks.

    The files carry the version's registry tags with them, so Persona's loader, the digest and the
    signature are checked exactly as for a download (:func:`model.trust.check_downloaded`).

    Raises:
        UntrustedModelError: a check failed.
    """
    from model.trust import check_downloaded

    check_downloaded(directory, tags, settings, name, version)
    return _unwrap(mlflow.pyfunc.load_model(str(directory)), f"{name} v{version} ({directory})")
