"""One version for text features: the embedding model and the PCA projection, pinned together.

A projection's version hashes its centre, its axes and the encoder identity
(:attr:`features.transforms.text.TextProjection.version`), so the pair is one version. Once
fitted, a projection is *pinned* (``catalog.pinned_projection``) and every later ``persona embed``
projects new data with it: a model keeps receiving the coordinates it was trained on. A new
projection comes only from an explicit refit (or a new encoder, whose vectors the old axes cannot
read) and is a new version; every fitted version stays under ``catalog.projections_dir``, so
``persona embed --projection VERSION`` rebuilds exactly the rows an older model was trained on.

A persona bundle records the version it was trained with (``metadata["text_projection_version"]``
and the registry tag of the same name); serving, ``persona score`` and monitoring call
:func:`require_text_version` and refuse, in one line naming both versions, to feed it features of
another version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from core import catalog
from core.errors import PersonaError
from features.transforms.text import TIMESTAMP, TextProjection, TextWindows, fit_windows_projection, projection_cutoff

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.settings import Settings

TEXT_VERSION_KEY = "text_projection_version"
"""Bundle metadata key, registry tag and ``customer_text`` column holding the projection version."""
SOURCE_VERSION_METADATA = b"persona.text_projection_version"
"""Parquet schema metadata of ``customer_text.parquet``: the one version all its rows share."""


class TextVersionMismatch(PersonaError):
    """A model would be given text features of another projection than it was trained on."""


def pinned_version(settings: Settings) -> str | None:
    """The projection version ``persona embed`` reuses (None before the first embed)."""
    path = catalog.pinned_projection(settings)
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def pin(settings: Settings, projection: TextProjection) -> None:
    """Save ``projection`` under its version and make it the one later embeds reuse (atomic)."""
    projection.save(catalog.projections_dir(settings))
    path = catalog.pinned_projection(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(projection.version + "\n")
    tmp.replace(path)


def stored_versions(settings: Settings) -> list[str]:
    """Every projection version fitted in this home."""
    folder = catalog.projections_dir(settings)
    return sorted(p.stem for p in folder.glob("pca*.npz")) if folder.is_dir() else []


def load_projection(settings: Settings, version: str) -> TextProjection:
    """A stored projection by version.

    Raises:
        PersonaError: no projection of that version was fitted in this home.
    """
    path = catalog.projections_dir(settings) / f"{version}.npz"
    if not path.is_file():
        known = ", ".join(stored_versions(settings)) or "none"
        raise PersonaError(f"text projection {version} is not stored in this home (stored: {known}); "
                           "run `persona embed --refit-projection` to fit a new one")
    return TextProjection.load(path)


def source_version(settings: Settings) -> str | None:
    """The projection version of the ``customer_text`` rows now in the offline store.

    None when no text was embedded yet (no file, or the empty source ``features build`` writes).

    Raises:
        PersonaError: the rows hold several versions (a file written before versions were pinned;
            ``persona embed`` rewrites it in one).
    """
    path = catalog.text_source(settings)
    if not path.is_file():
        return None
    meta = pq.ParquetFile(path)
    recorded = (meta.schema_arrow.metadata or {}).get(SOURCE_VERSION_METADATA)
    if recorded:
        return recorded.decode()
    if meta.metadata.num_rows == 0 or TEXT_VERSION_KEY not in meta.schema_arrow.names:
        return None
    values = {v for v in pq.read_table(path, columns=[TEXT_VERSION_KEY]).column(0).unique().to_pylist() if v}
    if len(values) > 1:
        raise PersonaError(f"{path} holds text projections {sorted(values)}; run `persona embed` to "
                           "rewrite it in one version")
    return values.pop() if values else None


def choose_projection(
    settings: Settings, windows: TextWindows, identity: str, refit: bool, version: str | None
) -> tuple[TextProjection, str]:
    """The projection this embed writes with, and why it is new ("" when an existing one is reused).

    The pinned projection is reused unless ``refit`` asks for a new one or the encoder changed
    (its axes cannot read another model's vectors); ``version`` picks a stored one explicitly.

    Raises:
        PersonaError: ``version`` is not stored or was fitted on another encoder's vectors.
    """
    if version:
        chosen = load_projection(settings, version)
        if chosen.model_identity != identity:
            raise PersonaError(f"text projection {version} was fitted on {chosen.model_identity} vectors, not "
                               f"{identity}; run `persona embed --refit-projection` to fit one for this model")
        return chosen, ""
    pinned = None if refit else pinned_version(settings)
    why = "refit requested" if refit else "first projection"
    if pinned:
        reused = load_projection(settings, pinned)
        if reused.model_identity == identity:
            return reused, ""
        why = f"embedding model changed from {reused.model_identity}"
    cutoff = projection_cutoff(windows.frame[TIMESTAMP], settings.horizon_days) if len(windows) else None
    return fit_windows_projection(windows, identity, cutoff), why


def check_text_version(who: str, trained: str | None, current: str | None) -> None:
    """Refuse to feed ``who`` text features of another projection than ``trained`` (pure).

    A model that recorded no version (trained without text, or before versions were recorded)
    is not checked.

    Raises:
        TextVersionMismatch: the versions differ; the message names both and the two ways out.
    """
    if not trained or trained == current:
        return
    now = current or "none (no text embedded)"
    raise TextVersionMismatch(
        f"{who} was trained on text projection {trained} but the text features are {now}; run "
        f"`persona embed --projection {trained}` and `persona features materialize` to serve it, "
        "or retrain with `persona train`")


def uses_text(columns: Iterable[str]) -> bool:
    """Whether any of ``columns`` comes from the projection (``text_pca_*``)."""
    return any(c.startswith("text_pca_") for c in columns)


def require_text_version(settings: Settings, who: str, metadata: dict) -> None:
    """:func:`check_text_version` against this home's offline text rows (which materialize copies online).

    A process without the home's offline files (no ``customer_text`` source at all) cannot tell
    and does not refuse; ``persona features build`` writes an (empty) source in every home.

    Raises:
        TextVersionMismatch: see :func:`check_text_version`.
    """
    trained = metadata.get(TEXT_VERSION_KEY)
    if trained and catalog.text_source(settings).is_file():
        check_text_version(who, str(trained), source_version(settings))
