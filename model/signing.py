"""Model signatures under a key the registry never holds.

The registry keeps each version's artifact digest and a signature tag, but anyone who can write
artifacts can usually write tags too. A signature is an HMAC-SHA256, under Persona's signing key,
over the model name, the version and the artifact digest: rewriting the digest tag to match
changed files does not produce a matching signature without the key.

The key comes from ``PERSONA_MODEL_SIGNING_KEY``, else from the key file under the home
(:func:`core.catalog.model_signing_key`). The local profile creates that file (mode 0600) the
first time a version is registered; the production profile never creates one: its key must be
given. The tag names the key's id (a hash of the key, not the key), so after a rotation a version
signed under the removed key says so instead of a bare mismatch.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings

SIGNATURE_TAG = "persona.signature"  # model version tag: "<scheme>:<key id>:<hex hmac>"
SCHEME = "hmac-sha256-v1"
KEY_ENV = "PERSONA_MODEL_SIGNING_KEY"
MIN_KEY_CHARS = 32
LOADER = "persona-bundle"  # what a signature vouches for: a Persona bundle, loaded by its entry point


class UntrustedModelError(ValueError):
    """A registered version Persona will not load (message names the version and the reason)."""


class SigningKeyMissing(PersonaError):
    """No signing key is configured where one is needed."""


@dataclass(frozen=True)
class SigningKey:
    """A signing key and where it came from (the secret never appears in messages).

    Attributes:
        secret: the key bytes.
        source: ``PERSONA_MODEL_SIGNING_KEY`` or the key file's path.
    """

    secret: bytes
    source: str

    @property
    def key_id(self) -> str:
        """A short public name for the key: a hash of it, which does not reveal it."""
        return hashlib.sha256(b"persona-model-signing-key\0" + self.secret).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SigningKey(id={self.key_id}, source={self.source})"


def parse_key(text: str, source: str) -> SigningKey:
    """A key from its text form (surrounding whitespace ignored).

    Raises:
        PersonaError: the key is shorter than :data:`MIN_KEY_CHARS` characters.
    """
    value = text.strip()
    if len(value) < MIN_KEY_CHARS:
        raise PersonaError(
            f"model signing key from {source} is {len(value)} characters; use at least {MIN_KEY_CHARS} "
            "random characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return SigningKey(value.encode("utf8"), source)


def new_key_text() -> str:
    """A fresh random key (256 bits, hex)."""
    return secrets.token_hex(32)


def write_key_file(path: Path, text: str, *, replace: bool) -> None:
    """Write a key file readable by its owner only (0600), atomically.

    Args:
        path: where.
        text: the key.
        replace: overwrite an existing file; otherwise raise ``FileExistsError`` if one exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if another process created it first
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_key_file(path: Path) -> SigningKey:
    """The key in ``path``, refused if others can read the file."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PersonaError(
            f"model signing key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`"
        )
    return parse_key(path.read_text(), str(path))


def signing_key(settings: Settings, create: bool = False) -> SigningKey:
    """This profile's signing key.

    Args:
        settings: Persona settings (``model_signing_key``, the home).
        create: in the local profile, create the key file when there is none (registration does;
            loading never does: a missing key refuses every signed version instead).

    Raises:
        SigningKeyMissing: no key given (prod), or none created yet (local, ``create`` False).
        PersonaError: the key is too short, or its file is readable by others.
    """
    if settings.model_signing_key is not None:
        return parse_key(settings.model_signing_key.get_secret_value(), KEY_ENV)
    path = catalog.model_signing_key(settings)
    if path.exists():
        return read_key_file(path)
    if settings.profile != "local":
        raise SigningKeyMissing(
            f"no model signing key: set {KEY_ENV} (the production profile never creates one; "
            "the same key must be given to training, scoring and serving)"
        )
    if not create:
        raise SigningKeyMissing(
            f"no model signing key at {path}: it is created when `persona train` registers a version; "
            f"or set {KEY_ENV}"
        )
    with contextlib.suppress(FileExistsError):  # a concurrent registration created it: use theirs
        write_key_file(path, new_key_text(), replace=False)
    return read_key_file(path)


def _message(model: str, version: str, digest: str) -> bytes:
    doc = {"scheme": SCHEME, "loader": LOADER, "model": model, "version": str(version), "artifact_sha256": digest}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf8")


def sign(key: SigningKey, model: str, version: str, digest: str) -> str:
    """The signature tag value for ``model`` v``version`` whose artifacts hash to ``digest``."""
    mac = hmac.new(key.secret, _message(model, version, digest), hashlib.sha256).hexdigest()
    return f"{SCHEME}:{key.key_id}:{mac}"


def verify(tag: str | None, key: SigningKey, model: str, version: str, digest: str) -> None:
    """Check a signature tag against the files' digest, under ``key``.

    Raises:
        UntrustedModelError: no signature, an unknown scheme, another key, or a mismatch.
    """
    where = f"{model} v{version}"
    if not tag:
        raise UntrustedModelError(
            f"{where} is not signed (registered outside Persona or before model signing); refusing to load "
            "it: register it again with `persona train`"
        )
    scheme, _, rest = tag.partition(":")
    key_id, _, mac = rest.partition(":")
    if scheme != SCHEME or not key_id or not mac:
        raise UntrustedModelError(f"{where}: unreadable {SIGNATURE_TAG} tag; refusing to load it")
    if key_id != key.key_id:
        raise UntrustedModelError(
            f"{where} is signed with key {key_id}, not the current key {key.key_id} (from {key.source}); "
            "refusing to load it: was the key rotated without re-signing, or the tag forged?"
        )
    expected = sign(key, model, version, digest).rpartition(":")[2]
    if not hmac.compare_digest(expected, mac):
        raise UntrustedModelError(
            f"{where}: signature mismatch for artifact sha256 {digest}: the stored files or tags changed "
            "after registration; refusing to load it"
        )
