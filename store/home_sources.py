"""A copied or moved home reads its own files, or says so.

Feast's registry stores each ``FileSource`` with the absolute path it was applied with, so a home
copied (or moved) to another folder keeps a registry that reads the *old* home's parquet files:
training, materialize and even the consistency check then agree with a home that is not this one.
Persona's own sources live at fixed places under the home (:func:`core.catalog.offline_source`),
so a registered source named ``<name>_source`` whose path ends like this home's but starts
elsewhere gives the other home away; the store then refuses to open until ``persona features
apply`` has registered this home's paths (it re-reads the definitions with this home's settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from core.settings import Settings


def foreign_home(settings: Settings, source_paths: dict[str, str]) -> Path | None:
    """The other home whose offline files Persona's registered sources read (None: they are this home's).

    Args:
        settings: the settings of this home.
        source_paths: registered data source name -> path (file sources only).
    """
    for name in catalog.OFFLINE_SOURCES:
        path = source_paths.get(f"{name}_source")
        if path is None:
            continue
        expected = catalog.offline_source(settings, name)
        actual = Path(path)
        if actual == expected:
            continue
        tail = expected.relative_to(settings.home).parts
        if actual.parts[-len(tail):] == tail:
            return Path(*actual.parts[: -len(tail)])
    return None


def check_home_sources(settings: Settings, store) -> None:
    """Refuse a registry whose Persona sources are another home's files (one line naming both and the fix)."""
    paths = {
        source.name: source.path
        for source in store.registry.list_data_sources(store.project, allow_cache=True)
        if getattr(source, "path", None)
    }
    other = foreign_home(settings, paths)
    if other is not None:
        raise PersonaError(
            f"the feature registry of this home ({settings.home}) reads the files of another home ({other}), "
            "as after a copy or move; run `persona features apply` here to register this home's files"
        )
