"""What must hold before Persona lets MLflow load a registered version's code.

``mlflow.pyfunc.load_model`` runs code from the model's own files: the entry point of a
models-from-code model, or ``pickle`` for others. So every check happens on the downloaded files
*before* that call (:func:`check_downloaded`):

1. the loader is Persona's bundle: only the ``python_function`` flavour, MLflow's models-from-code
   loader, an entry point ``bundle_entry.py`` whose text is Persona's, no pickled model anywhere;
2. the files' sha256 matches the digest recorded at registration (:data:`ARTIFACT_HASH_TAG`);
3. the version's signature (:mod:`model.signing`) verifies under Persona's key: the digest tag
   alone proves nothing, whoever can change the files can usually change tags too.

A version registered before signing existed has no signature; it is refused, except in the local
profile with ``PERSONA_ALLOW_UNSIGNED_MODELS=true`` (checks 1 and 2 still apply; a warning says so).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from model.signing import SIGNATURE_TAG, UntrustedModelError, sign, signing_key, verify

if TYPE_CHECKING:
    from core.settings import Settings
    from model.signing import SigningKey

# Model version tag: sha256 of the version's artifact files as stored at registration.
ARTIFACT_HASH_TAG = "persona.artifact_sha256"
# Written by MLflow into every download of a ``models:/`` URI; not part of what was registered.
_DOWNLOAD_ONLY_FILES = frozenset({"registered_model_meta"})

ENTRY_FILE = "bundle_entry.py"
CODE_MODEL_LOADER = "mlflow.pyfunc.loaders.code_model"
# Entry points Persona has logged: the current one, and the one before the bundle moved to model/.
_PRE_MOVE_ENTRY = (
    "import mlflow.models\nfrom training.bundle import PersonaBundle\nmlflow.models.set_model(PersonaBundle())"
)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".cloudpickle", ".joblib")

logger = logging.getLogger(__name__)


class ArtifactIntegrityError(UntrustedModelError):
    """A registered version's artifact files differ from what was registered (message names both hashes)."""


def artifact_digest(directory: Path) -> str:
    """sha256 over every file under ``directory``: sorted relative paths, each with its bytes.

    Each file contributes its POSIX relative path, a NUL, its size (8 bytes) and its content, so
    moving bytes between files or renaming one changes the digest; the order files are found in
    does not. MLflow's download-only ``registered_model_meta`` at the top level is left out.
    """
    directory = Path(directory)
    files = sorted(
        (path.relative_to(directory).as_posix(), path)
        for path in directory.rglob("*")
        if path.is_file() and path.relative_to(directory).as_posix() not in _DOWNLOAD_ONLY_FILES
    )
    digest = hashlib.sha256()
    for relative, path in files:
        digest.update(relative.encode("utf8") + b"\0")
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _known_entries() -> set[str]:
    current = Path(__file__).with_name(ENTRY_FILE).read_text()
    return {_normalize(current), _normalize(_PRE_MOVE_ENTRY)}


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def check_loader(directory: Path, where: str) -> None:
    """Refuse a model whose loader is not Persona's bundle (reads files only, imports nothing).

    Args:
        directory: the downloaded model (holding ``MLmodel``).
        where: ``<model> v<version>``, for messages.

    Raises:
        UntrustedModelError: another flavour or loader, a pickled model, or a foreign entry point.
    """
    directory = Path(directory)
    refuse = f"{where} is not a Persona bundle; refusing to load it"
    try:
        doc = yaml.safe_load((directory / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UntrustedModelError(f"{refuse}: unreadable MLmodel ({exc.__class__.__name__})") from None
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not isinstance(flavors, dict) or set(flavors) != {"python_function"}:
        found = sorted(flavors) if isinstance(flavors, dict) else None
        raise UntrustedModelError(f"{refuse}: flavours {found}, expected only python_function")
    pyfunc = flavors["python_function"]
    if not isinstance(pyfunc, dict) or pyfunc.get("loader_module") != CODE_MODEL_LOADER:
        module = pyfunc.get("loader_module") if isinstance(pyfunc, dict) else None
        raise UntrustedModelError(f"{refuse}: loader {module!r}, expected {CODE_MODEL_LOADER}")
    if "python_model" in pyfunc or "model_code_path" not in pyfunc:
        raise UntrustedModelError(f"{refuse}: a pickled python_model, not the models-from-code entry point")
    if Path(str(pyfunc["model_code_path"])).name != ENTRY_FILE:
        raise UntrustedModelError(f"{refuse}: entry point {pyfunc['model_code_path']!r}, expected {ENTRY_FILE}")
    pickled = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                     if p.suffix.lower() in _PICKLE_SUFFIXES)
    if pickled:
        raise UntrustedModelError(f"{refuse}: pickled files {pickled[:3]}")
    entry = directory / ENTRY_FILE
    if not entry.is_file() or _normalize(entry.read_text(errors="replace")) not in _known_entries():
        raise UntrustedModelError(f"{refuse}: {ENTRY_FILE} is not Persona's entry point")


def verify_artifacts(directory: Path, expected: str | None, model: str, version: str) -> str:
    """Check downloaded artifacts against the digest recorded at registration.

    ``expected`` None (registered before digests were recorded) passes with a warning; only the
    local profile's explicit opt-in for unsigned versions reaches that case (:func:`check_downloaded`).

    Returns:
        The digest of ``directory``.

    Raises:
        ArtifactIntegrityError: the digests differ (the message names version, expected and actual).
    """
    actual = artifact_digest(directory)
    if expected is None:
        logger.warning(
            "%s v%s has no %s tag (registered before artifact hashes were recorded); loading it unverified",
            model, version, ARTIFACT_HASH_TAG,
        )
    elif actual != expected:
        raise ArtifactIntegrityError(
            f"{model} v{version}: artifact sha256 mismatch: registered {expected}, downloaded {actual}; "
            "the stored model files changed after registration, refusing to load them"
        )
    return actual


def check_downloaded(directory: Path, tags: dict[str, str], settings: Settings, model: str, version: str) -> str:
    """All checks before loading a downloaded version (see module docstring).

    Returns:
        The artifacts' digest.

    Raises:
        UntrustedModelError: the loader, the digest or the signature is wrong, or it is unsigned
            (and unsigned versions are not allowed here).
        PersonaError: no signing key is configured (see :func:`model.signing.signing_key`).
    """
    where = f"{model} v{version}"
    check_loader(directory, where)
    signature = tags.get(SIGNATURE_TAG)
    if signature is None and settings.allow_unsigned_models and settings.profile == "local":
        logger.warning(
            "%s is not signed; loading it because PERSONA_ALLOW_UNSIGNED_MODELS=true (local profile only)", where
        )
        return verify_artifacts(directory, tags.get(ARTIFACT_HASH_TAG), model, version)
    digest = verify_artifacts(directory, tags.get(ARTIFACT_HASH_TAG) or "(none recorded)", model, version)
    verify(signature, signing_key(settings), model, version, digest)
    return digest


def download_version(model: str, version: str, target: Path) -> Path:
    """Download a registered version's files into ``target`` (nothing is loaded)."""
    import mlflow.artifacts

    target.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/{version}", dst_path=str(target)))


def record_and_sign(client, settings: Settings, model: str, version: str) -> str:
    """Hash the stored artifacts of a version just registered, tag the digest and sign it.

    The files are checked to be a Persona bundle first: Persona never signs foreign code. In the
    local profile the signing key is created on first use (see :func:`model.signing.signing_key`).

    Returns:
        The sha256 hex digest (tag :data:`ARTIFACT_HASH_TAG`).

    Raises:
        UntrustedModelError: the registered files are not a Persona bundle.
        PersonaError: no signing key (production profile).
    """
    key = signing_key(settings, create=True)
    with tempfile.TemporaryDirectory(prefix="persona-hash-") as tmp:
        local = download_version(model, str(version), Path(tmp) / "model")
        check_loader(local, f"{model} v{version}")
        digest = artifact_digest(local)
    client.set_model_version_tag(model, str(version), ARTIFACT_HASH_TAG, digest)
    client.set_model_version_tag(model, str(version), SIGNATURE_TAG, sign(key, model, str(version), digest))
    return digest


def record_artifact_hash(client, model: str, version: str) -> str:
    """Tag a version with the digest of its stored artifacts, without signing it (older callers).

    Returns:
        The sha256 hex digest (tag :data:`ARTIFACT_HASH_TAG`).
    """
    with tempfile.TemporaryDirectory(prefix="persona-hash-") as tmp:
        digest = artifact_digest(download_version(model, str(version), Path(tmp) / "model"))
    client.set_model_version_tag(model, str(version), ARTIFACT_HASH_TAG, digest)
    return digest


def verify_version(client, settings: Settings, model: str, version: str, key: SigningKey) -> str:
    """Download a version and run every check under ``key`` (nothing is loaded).

    Returns:
        The artifacts' digest.

    Raises:
        UntrustedModelError: it does not verify.
    """
    tags = dict(client.get_model_version(model, str(version)).tags or {})
    with tempfile.TemporaryDirectory(prefix="persona-verify-") as tmp:
        local = download_version(model, str(version), Path(tmp) / "model")
        check_loader(local, f"{model} v{version}")
        digest = verify_artifacts(local, tags.get(ARTIFACT_HASH_TAG) or "(none recorded)", model, str(version))
    verify(tags.get(SIGNATURE_TAG), key, model, str(version), digest)
    return digest
