"""A self-contained Bento: the champion's files in BentoML's model store, the serving lock, the code.

Why: a Bento that pulls its model from MLflow at start cannot serve while the registry is down,
and one whose environment pins only the direct packages resolves differently on every build. So
``persona bento build`` (:func:`build`):

1. imports the registry's ``champion`` into BentoML's model store as ``persona-champion``
   (:func:`import_champion`): the version's MLflow files, checked first (Persona's loader, digest,
   signature), with the registry tags the same checks need again at serve time;
2. builds ``serving/bentofile.yaml``, which names that model and installs ``serving/requirements.lock``
   (every package pinned, resolved with ``requirements.lock`` as constraints).

The served Bento then loads its packaged champion first (:func:`packaged_model`) and needs only the
online store; the champion watcher still swaps in a newer champion whenever the registry answers.
Nothing runs at import.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PersonaError
from core.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from core.settings import Settings

BENTO_MODEL = "persona-champion"  # the name in BentoML's model store; serving/bentofile.yaml names it too
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


def import_champion(settings: Settings) -> str:
    """Copy the registry's champion into BentoML's model store (checked before it is kept).

    Returns:
        The BentoML model tag (``persona-champion:<generated>``).

    Raises:
        PersonaError: no champion is registered, or the registry does not answer.
        UntrustedModelError: the version fails Persona's checks (nothing is imported).
    """
    import shutil

    import bentoml

    from core.settings import environ_defaults
    from model.registry import configure_mlflow
    from model.trust import check_downloaded, download_version
    from serving.registry_access import MLFLOW_HTTP_DEFAULTS, RegistryUnavailable, resolve_alias

    client = configure_mlflow(settings)
    name = settings.registered_model
    try:
        with environ_defaults(MLFLOW_HTTP_DEFAULTS):  # an unreachable registry answers in seconds, not minutes
            version = resolve_alias(client, name, settings.tracking_uri)
    except RegistryUnavailable as exc:
        raise PersonaError(f"{exc}; building a Bento needs the registry (PERSONA_MLFLOW_TRACKING_URI)") from None
    if version is None:
        raise PersonaError(f"no champion of {name!r} to package: run `persona train` (or `persona promote`) first")
    tags = {str(k): str(v) for k, v in (client.get_model_version(name, version).tags or {}).items()}
    with tempfile.TemporaryDirectory(prefix="persona-bento-") as tmp:
        local = download_version(name, version, Path(tmp) / MODEL_FOLDER)
        check_downloaded(local, tags, settings, name, version)
        labels = {"registered_model": name, "version": version}
        with bentoml.models.create(BENTO_MODEL, labels=labels, metadata={"tags": tags}) as model:
            shutil.copytree(local, Path(model.path) / MODEL_FOLDER)
    return str(model.tag)


def build(settings: Settings) -> tuple[str, str]:
    """Import the champion and build the Bento from ``serving/bentofile.yaml``.

    Returns:
        (Bento tag, BentoML model tag).
    """
    from bentoml import bentos

    model_tag = import_champion(settings)
    bento = bentos.build_bentofile(str(BENTOFILE), build_ctx=str(PROJECT_ROOT))
    return str(bento.tag), model_tag


def in_bento(service_file: Path) -> bool:
    """Whether ``service_file`` (``serving/service.py``) runs from a built Bento (``<bento>/src/serving/``)."""
    return (service_file.resolve().parents[2] / "bento.yaml").is_file()


def packaged_model() -> PackagedModel:
    """The champion packaged in this Bento's model store.

    Raises:
        PersonaError: the Bento holds no ``persona-champion`` (built without ``persona bento build``).
    """
    import bentoml

    try:
        model = bentoml.models.get(f"{BENTO_MODEL}:latest")
    except bentoml.exceptions.NotFound:
        raise PersonaError(f"this Bento holds no {BENTO_MODEL} model: build it with `persona bento build`") from None
    labels = model.info.labels
    return PackagedModel(
        directory=Path(model.path) / MODEL_FOLDER,
        registered_model=str(labels["registered_model"]),
        version=str(labels["version"]),
        tags=_tags(model.info.metadata.get("tags")),
    )


def _tags(value: object) -> dict[str, str]:
    """The registry tags stored in a BentoML model's metadata (a mapping of strings)."""
    if not isinstance(value, dict):
        raise PersonaError(f"the Bento's {BENTO_MODEL} model carries no registry tags: "
                           "rebuild it with `persona bento build`")
    return {str(k): str(v) for k, v in value.items()}
