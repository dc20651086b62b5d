"""The lineage step: one MLflow run holding everything needed to trust and reproduce a model.

A readable run name (:func:`run_name`), the train and holdout sets as inputs with their digests
(:func:`log_datasets`), params (the config), tags (data window, code version, Feast lineage, the
gate's verdict), metrics (the candidate's and the champion's), the report and the logged model, not yet
registered.

The model is logged with its own code (:func:`bundle_code_paths`), so ``mlflow.pyfunc.load_model``
works wherever the locked dependencies are installed, without a Persona checkout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import core
import model
from core.settings import PROJECT_ROOT
from model.bundle import BUNDLE_ENTRY

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from training.config import TrainConfig
    from training.data import Split
    from training.gate import GateDecision

logger = logging.getLogger(__name__)

# Packages a logged bundle's entry point imports (model.bundle needs model.* and core.*).
BUNDLE_PACKAGES = (model, core)
REQUIREMENTS = ("mlflow", "xgboost", "pandas", "numpy", "scikit-learn", "pydantic", "pyyaml")


@dataclass(frozen=True)
class LoggedRun:
    """A finished MLflow run and the model logged in it.

    Attributes:
        run_id: the MLflow run.
        model_uri: the logged model (``models:/m-...``), ready to register.
        tags: lineage tags, copied onto the registered version too.
    """

    run_id: str
    model_uri: str
    tags: dict[str, str]


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


def lineage_tags(settings: Settings, config: TrainConfig, split: Split, from_feast: bool) -> dict[str, str]:
    """Feature service and list, code version, Feast lineage (when built from Feast) and data window."""
    return {
        "feature_service": config.feature_service,
        "feature_list": json.dumps(split.features)[:7900],
        "code_version": git_sha(),
        "feast.project": settings.project,
        **(feast_lineage(settings, config.feature_service) if from_feast else {}),
        **split.window,
    }



def run_name(config: TrainConfig, split: Split, decision: GateDecision) -> str:
    """A name a person can read in MLflow's run list: the features, the data's end and the verdict.

    MLflow's own names are random words (``bold-owl-42``) that say nothing of what a run was.
    """
    as_of = split.window.get("data.as_of") or split.window.get("data.holdout_end", "")
    verdict = "promoted" if decision.promote else decision.alias
    return f"{config.feature_service} to {as_of[:10]} {verdict}"


def log_datasets(split: Split) -> dict[str, str]:
    """Log the train and holdout sets as the run's inputs (name, schema, row count, digest).

    So MLflow's UI shows what each run was trained and evaluated on, and two runs on the same rows
    show the same digest.

    Returns:
        The digest of each logged set by name.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    digests = {}
    for name, frame, context in (("train", split.train, "training"), ("holdout", split.holdout, "evaluation")):
        dataset = from_pandas(frame, name=name)
        mlflow.log_input(dataset, context=context)
        digests[name] = dataset.digest
    return digests


def input_example(holdout: pd.DataFrame, features: list[str], rows: int = 5) -> pd.DataFrame:
    """A few holdout rows as the pyfunc takes them (see :func:`model.bundle.to_model_input`)."""
    from model.bundle import to_model_input

    return to_model_input(holdout.head(rows), features)


def pip_requirements() -> list[str]:
    """The bundle's runtime dependencies, pinned to the versions it was trained with."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in REQUIREMENTS]


def bundle_code_paths(target: Path) -> list[str]:
    """Copies of the packages the bundle imports (without bytecode caches), for ``code_paths``."""
    paths = []
    for package in BUNDLE_PACKAGES:
        source = Path(package.__file__).parent  # type: ignore[arg-type]
        copy = target / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        paths.append(str(copy))
    return paths


def log(
    settings: Settings,
    config: TrainConfig,
    experiment_id: str,
    predictor: PersonaPredictor,
    metrics: dict[str, float],
    split: Split,
    tags: dict[str, str],
    decision: GateDecision,
    champion: tuple[dict[str, float] | None, str | None],
    report: Callable[[Path], None],
    params: dict[str, str] | None = None,
) -> LoggedRun:
    """Log one run: params, lineage tags, metrics (and the champion's), the gate, the report, the model.

    Args:
        settings: Persona settings.
        config: the run configuration (logged as params).
        experiment_id: the MLflow experiment.
        predictor: the fitted bundle.
        metrics: its holdout metrics.
        split: the data it was trained and evaluated on.
        tags: lineage tags (see :func:`lineage_tags`).
        decision: the gate's verdict (tagged; the alias moves after registration).
        champion: the champion's metrics on the same holdout and its version.
        report: logs the run's report artifacts into a temporary folder it is given.
        params: params the fit decided (beside the configuration's), e.g. how the orders weight was chosen.
    """
    import mlflow

    champion_metrics, champion_version = champion
    name = run_name(config, split, decision)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run, tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        mlflow.log_params({**config.logged_params(), **(params or {})})  # only what applied to this run
        log_datasets(split)
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        if champion_metrics:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion_metrics.items() if np.isfinite(v)})
        mlflow.set_tags(
            {
                "gate.decision": decision.alias,
                "gate.reason": decision.reason[:4000],
                "gate.champion_version": champion_version or "",
            }
        )
        report(tmp_dir)
        return LoggedRun(run.info.run_id, log_bundle(predictor, split.holdout, split.features, tmp_dir), tags)


def log_bundle(predictor: PersonaPredictor, rows: pd.DataFrame, features: list[str], tmp_dir: Path) -> str:
    """Log ``predictor`` with its own code as the active run's ``model``; the logged model's URI.

    Args:
        predictor: the bundle.
        rows: rows to take the input example from (a few, as the pyfunc takes them).
        features: the bundle's feature columns.
        tmp_dir: a scratch folder for the saved bundle and the code copies.
    """
    import mlflow
    from mlflow.models import infer_signature

    bundle_dir = predictor.save(tmp_dir / "bundle")
    example = input_example(rows, features)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(BUNDLE_ENTRY),
        artifacts={"bundle": str(bundle_dir)},
        code_paths=bundle_code_paths(tmp_dir / "code"),
        signature=infer_signature(example, predictor.predict(example)),
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    return info.model_uri
