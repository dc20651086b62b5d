"""Rotating the model signing key: a new key, and new signatures for what verified under the old one.

Only versions that pass every check under the current key (:func:`model.trust.verify_version`)
are re-signed; anything else (unsigned, tampered, signed by another key) is listed and left as it
is, so a rotation never launders a version. Once the new key replaces the old one, signatures made
under the old key name a key id that is no longer current and are refused.

Order, so that a crash never loses the only key that verifies the registry: the new key is
written to a side file first, then versions are re-signed, then the side file replaces the key
file. A rotation cut short is finished by running it again with the same side file present.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError
from model.signing import (
    KEY_ENV,
    SIGNATURE_TAG,
    UntrustedModelError,
    new_key_text,
    parse_key,
    read_key_file,
    sign,
    signing_key,
    write_key_file,
)
from model.trust import verify_version

if TYPE_CHECKING:
    from core.progress import ProgressEvent
    from core.settings import Settings
    from model.signing import SigningKey


@dataclass
class Rotation:
    """What a rotation did, for the CLI.

    Attributes:
        old_key_id / new_key_id: the key ids before and after.
        key_file: where the new key is.
        resigned: ``(model, version)`` re-signed under the new key.
        refused: ``(model, version, reason)`` left alone because they did not verify.
        from_env: the old key came from ``PERSONA_MODEL_SIGNING_KEY`` (the operator must update it).
    """

    old_key_id: str
    new_key_id: str
    key_file: Path
    resigned: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    from_env: bool = False

    def lines(self) -> list[str]:
        """Summary lines (never the key itself)."""
        out = [f"signing key {self.old_key_id} -> {self.new_key_id} (new key in {self.key_file})",
               f"re-signed {len(self.resigned)} version(s)"
               + (": " + ", ".join(f"{m} v{v}" for m, v in self.resigned) if self.resigned else "")]
        out += [f"NOT re-signed {m} v{v}: {reason}" for m, v, reason in self.refused]
        if self.from_env:
            out.append(f"the old key came from {KEY_ENV}: set it to the contents of {self.key_file} (or unset it "
                       "to use that file) for every training, scoring and serving process")
        return out


def _pending_key_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".new")


def _new_key(pending: Path) -> SigningKey:
    """The key a cut-short rotation left, or a fresh one written to ``pending``."""
    if not pending.exists():
        with contextlib.suppress(FileExistsError):
            write_key_file(pending, new_key_text(), replace=False)
    return read_key_file(pending)


def _all_versions(client) -> list[tuple[str, str]]:
    """Every ``(model, version)`` in the registry, following MLflow's result pages."""
    names: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names += [rm.name for rm in page]
        token = page.token
        if not token:
            break
    versions = []
    for name in names:
        quoted = name.replace("'", "\\'")
        versions += [(name, str(mv.version)) for mv in client.search_model_versions(f"name='{quoted}'")]
    return versions


def rotate_key(
    client, settings: Settings, on_progress: ProgressEvent | None = None, key_file: Path | None = None
) -> Rotation:
    """Make a new signing key and re-sign every registered version that verifies under the current one.

    Args:
        client: an MLflow client on this profile's registry.
        settings: Persona settings (the current key, the home).
        on_progress: called per version checked.
        key_file: where the new key goes (default: :func:`core.catalog.model_signing_key`).

    Raises:
        PersonaError: there is no current key (nothing was ever signed with one).
    """
    old = signing_key(settings)
    target = key_file or catalog.model_signing_key(settings)
    pending = _pending_key_file(target)
    new = _new_key(pending)
    if new.key_id == old.key_id:
        raise PersonaError(f"the pending key {pending} equals the current key; remove it and rotate again")
    versions = _all_versions(client)
    result = Rotation(old.key_id, new.key_id, target, from_env=old.source == KEY_ENV)
    for done, (model, version) in enumerate(sorted(versions, key=lambda mv: (mv[0], int(mv[1]))), start=1):
        try:
            digest = verify_version(client, settings, model, version, old)
        except UntrustedModelError as exc:
            try:  # re-signed already by a rotation that was cut short
                verify_version(client, settings, model, version, new)
                result.resigned.append((model, version))
            except UntrustedModelError:
                result.refused.append((model, version, str(exc)))
        else:
            client.set_model_version_tag(model, version, SIGNATURE_TAG, sign(new, model, version, digest))
            result.resigned.append((model, version))
        if on_progress is not None:
            on_progress(done, len(versions), f"{model} v{version}")
    pending.replace(target)
    parse_key(target.read_text(), str(target))  # the file in place is a usable key
    return result
