"""A self-contained Bento: the champion's files in BentoML's model store, the serving lock, the code.

Why: a Bento that pulls its model from MLflow at start cannot serve while the registry is down,
and one whose environment pins only the direct packages resolves differently on every build. So
``persona bento build`` (:func:`build`):

1. imports the registry's ``champion`` into BentoML's model store as ``persona-champion``
   (:func:`import_champion`): the version's MLflow files, checked first (Persona's loader, digest,
   signature), with the registry tags the same checks need again at serve time; and the uplift
   model's ``champion``, when one is registered, as ``persona-uplift`` (:func:`import_uplift_champion`);
2. builds ``serving/bentofile.yaml``, which names the churn champion and installs
   ``serving/requirements.lock`` (every package pinned, resolved with ``requirements.lock`` as
   constraints), adding ``persona-uplift`` to its models when it was imported.

The served Bento then loads its packaged champions first (:func:`packaged_model`,
:func:`packaged_uplift`) and needs only the online store; the champion watchers still swap in a
newer champion of either model whenever the registry answers. Nothing runs at import.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PersonaError
from core.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from collections.abc import Mapping

    from core.settings import Settings

BENTO_MODEL = "persona-champion"  # the name in BentoML's model store; serving/bentofile.yaml names it too
BENTO_UPLIFT_MODEL = "persona-uplift"  # the uplift champion's, added to the Bento's models when one is registered
BENTOFILE = PROJECT_ROOT / "serving" / "bentofile.yaml"
MODEL_FOLDER = "mlflow"  # the MLflow model's files inside the BentoML model's folder


@dataclass(frozen=True)
class PackagedModel:
    """A registered version as packaged in a BentoML model store.

    Attributes:
        directory: the MLflow model's files.
        registered_model: the MLflow registered model's name.
        version: its version number.
        tags: the version's registry tags (digest and signature among them).
    """

    directory: Path
    registered_model: str
    version: str
    tags: dict[str, str]


@dataclass(frozen=True)
class BuiltBento:
    """What ``persona bento build`` made.

    Attributes:
        bento: the Bento's tag (``persona:<generated>``).
        model: the packaged churn champion's BentoML model tag.
        uplift: the packaged uplift champion's, or None when no uplift champion is registered.
    """

    bento: str
    model: str
    uplift: str | None


def import_champion(settings: Settings) -> str:
    """Copy the registry's champion into BentoML's model store (checked before it is kept).

    Returns:
        The BentoML model tag (``persona-champion:<generated>``).

    Raises:
        PersonaError: no champion is registered, or the registry does not answer.
        UntrustedModelError: the version fails Persona's checks (nothing is imported).
    """
    name = settings.registered_model
    tag = _import_alias(settings, name, BENTO_MODEL)
    if tag is None:
        raise PersonaError(f"no champion of {name!r} to package: run `persona train` (or `persona promote`) first")
    return tag


def import_uplift_champion(settings: Settings) -> str | None:
    """Copy the uplift model's champion into BentoML's model store, when one is registered.

    Returns:
        The BentoML model tag (``persona-uplift:<generated>``), or None without an uplift champion.

    Raises:
        PersonaError: the registry does not answer.
        UntrustedModelError: the version fails Persona's checks (nothing is imported).
    """
    from model.uplift import uplift_model_name

    return _import_alias(settings, uplift_model_name(settings.registered_model), BENTO_UPLIFT_MODEL)


def _import_alias(settings: Settings, name: str, bento_name: str) -> str | None:
    """Import ``name``'s champion as ``bento_name`` (its files and registry tags); None when it has none."""
    import shutil

    import bentoml

    from core.settings import environ_defaults
    from model.registry import configure_mlflow
    from model.trust import check_downloaded, download_version
    from serving.registry_access import MLFLOW_HTTP_DEFAULTS, RegistryUnavailable, resolve_alias

    client = configure_mlflow(settings)
    try:
        with environ_defaults(MLFLOW_HTTP_DEFAULTS):  # an unreachable registry answers in seconds, not minutes
            version = resolve_alias(client, name, settings.tracking_uri)
    except RegistryUnavailable as exc:
        raise PersonaError(f"{exc}; building a Bento needs the registry (PERSONA_MLFLOW_TRACKING_URI)") from None
    if version is None:
        return None
    tags = {str(k): str(v) for k, v in (client.get_model_version(name, version).tags or {}).items()}
    with tempfile.TemporaryDirectory(prefix="persona-bento-") as tmp:
        local = download_version(name, version, Path(tmp) / MODEL_FOLDER)
        check_downloaded(local, tags, settings, name, version)
        labels = {"registered_model": name, "version": version}
        with bentoml.models.create(bento_name, labels=labels, metadata={"tags": tags}) as model:
            shutil.copytree(local, Path(model.path) / MODEL_FOLDER)
    return str(model.tag)


def build(settings: Settings) -> BuiltBento:
    """Import the champions and build the Bento from ``serving/bentofile.yaml`` (plus the uplift model, if any)."""
    import yaml
    from bentoml import bentos

    model_tag = import_champion(settings)
    uplift_tag = import_uplift_champion(settings)
    config = yaml.safe_load(BENTOFILE.read_text())
    if uplift_tag is not None:
        config["models"] = [*config["models"], f"{BENTO_UPLIFT_MODEL}:latest"]
    with tempfile.TemporaryDirectory(prefix="persona-bentofile-") as tmp:
        bentofile = Path(tmp) / "bentofile.yaml"  # the same build file, naming what was imported
        bentofile.write_text(yaml.safe_dump(config, sort_keys=False))
        bento = bentos.build_bentofile(str(bentofile), build_ctx=str(PROJECT_ROOT))
    return BuiltBento(str(bento.tag), model_tag, uplift_tag)


def in_bento(service_file: Path) -> bool:
    """Whether ``service_file`` (``serving/service.py``) runs from a built Bento (``<bento>/src/serving/``)."""
    return _manifest(service_file).is_file()


def _manifest(service_file: Path) -> Path:
    return service_file.resolve().parents[2] / "bento.yaml"


def bento_models(service_file: Path) -> dict[str, str]:
    """The models the running Bento was built with, name -> full tag (from its ``bento.yaml``).

    Served from the local Bento store, BentoML resolves models in the global model store, where
    ``:latest`` may be a later import than the one this Bento packaged, or one it never packaged;
    the exact tags of its manifest are what it was built with.
    """
    import yaml

    manifest = yaml.safe_load(_manifest(service_file).read_text()) or {}
    tags = [str(model["tag"]) for model in manifest.get("models") or [] if isinstance(model, dict)]
    return {tag.split(":")[0]: tag for tag in tags}


def packaged_model(models: Mapping[str, str] | None = None) -> PackagedModel:
    """The churn champion packaged in this Bento (``models``: :func:`bento_models`; default ``:latest``).

    Raises:
        PersonaError: the Bento holds no ``persona-champion`` (built without ``persona bento build``).
    """
    packaged = _packaged(BENTO_MODEL, models)
    if packaged is None:
        raise PersonaError(f"this Bento holds no {BENTO_MODEL} model: build it with `persona bento build`")
    return packaged


def packaged_uplift(models: Mapping[str, str] | None = None) -> PackagedModel | None:
    """The uplift champion packaged in this Bento; None when it was built without one."""
    if models is not None and BENTO_UPLIFT_MODEL not in models:
        return None
    return _packaged(BENTO_UPLIFT_MODEL, models)


def _stored_model(tag: str) -> Any:
    """The BentoML model of ``tag`` in the model store, or None."""
    import bentoml

    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return None


def _packaged(bento_name: str, models: Mapping[str, str] | None) -> PackagedModel | None:
    model = _stored_model((models or {}).get(bento_name, f"{bento_name}:latest"))
    if model is None:
        return None
    labels = model.info.labels
    return PackagedModel(
        directory=Path(model.path) / MODEL_FOLDER,
        registered_model=str(labels["registered_model"]),
        version=str(labels["version"]),
        tags=_tags(model.info.metadata.get("tags"), bento_name),
    )


def _tags(value: object, bento_name: str) -> dict[str, str]:
    """The registry tags stored in a BentoML model's metadata (a mapping of strings)."""
    if not isinstance(value, dict):
        raise PersonaError(f"the Bento's {bento_name} model carries no registry tags: "
                           "rebuild it with `persona bento build`")
    return {str(k): str(v) for k, v in value.items()}
