"""Where the feature definitions come from: Persona's packaged ``feature_repo/`` plus the user's folder.

The rule (``PERSONA_FEATURE_REPO``, :attr:`core.settings.Settings.feature_repo`):

* Persona's packaged definitions (``feature_repo/definitions.py``, importable as
  ``feature_repo.definitions``) are always parsed: training, serving and the reports need them.
* The user's folder, when it is another folder, is parsed *in addition*, the way ``feast apply``
  parses a repo: each ``*.py`` file (``.feastignore`` honoured) is imported as a top-level module
  named by its path inside the folder (``loyalty.py`` -> ``loyalty``), with the folder on
  ``sys.path`` while it is parsed, so its modules import each other by those names and Persona's
  objects with ``from feature_repo.definitions import customer, customer_behavior_fv``.
* An object imported from Persona's definitions is the very same object and is registered once.
  A *different* object under a name Persona already defines is refused with one line naming both
  files: the user's folder adds views and services, it does not replace Persona's. A module name
  that would shadow an installed module (``yaml.py``) is refused too.
* Feast's yaml comes from the user's folder when it has its own ``feature_store*.yaml``, else
  from the packaged folder (:attr:`core.settings.Settings.feature_store_yaml`).

Each view, service and entity remembers the file that defined it, so ``persona features apply``
can say what it found and from where.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PersonaError
from core.runtime import using
from core.settings import FEATURE_REPO_DIR, PROJECT_ROOT, Settings, env_name

if TYPE_CHECKING:
    from collections.abc import Iterator

# RepoContents' lists whose objects carry a ``name`` (``projects`` and ``permissions`` are rare).
_KINDS = {
    "entities": "entity",
    "data_sources": "data source",
    "feature_views": "feature view",
    "on_demand_feature_views": "on-demand feature view",
    "stream_feature_views": "stream feature view",
    "feature_services": "feature service",
    "label_views": "label view",
    "permissions": "permission",
    "projects": "project",
}


@dataclass
class ParsedRepo:
    """Feast's ``RepoContents`` of every definition folder, with the file each object came from.

    Attributes:
        contents: ``feast.repo_contents.RepoContents`` to apply.
        origins: ``id(object)`` -> the file that defines it (objects made inline have none).
        folders: the folders parsed, packaged first.
    """

    contents: Any
    origins: dict[int, Path] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)

    def origin(self, obj: object) -> str:
        """The file that defined ``obj`` (``?`` when it was made inline)."""
        path = self.origins.get(id(obj))
        return str(path) if path is not None else "?"


def definition_folders(settings: Settings) -> list[Path]:
    """The folders parsed for this settings object: packaged first, then the user's (when another)."""
    packaged = FEATURE_REPO_DIR.resolve()
    user = settings.feature_repo
    if not user.is_dir():
        raise PersonaError(
            f"{env_name('feature_repo')}={user}: no such folder; create it or point the setting at your feature views"
        )
    return [packaged] if user == packaged else [packaged, user]


@contextlib.contextmanager
def _parsing_from(base: Path, on_path: bool) -> Iterator[None]:
    """Work from ``base`` (Feast names modules relative to the working directory), optionally importable."""
    previous = Path.cwd()
    os.chdir(base)
    added = on_path and str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(base))
        os.chdir(previous)


def _check_module_names(folder: Path, modules: list[str]) -> None:
    """Refuse a user module whose top-level name is an installed module (it would shadow or be shadowed)."""
    for name in modules:
        top = name.split(".")[0]
        loaded = sys.modules.get(top)
        where = getattr(loaded, "__file__", None) if loaded is not None else None
        if loaded is None:
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            where = spec.origin if spec is not None else None
        if where and not Path(where).resolve().is_relative_to(folder):
            raise PersonaError(
                f"{folder / (top + '.py')}: module name {top!r} is taken by an installed module ({where}); "
                "rename the file"
            )


def _parse_folder(folder: Path) -> tuple[Any, dict[int, Path]]:
    """Feast's ``parse_repo`` of one folder (modules imported afresh) and the file of each named object."""
    from store.feast_internals import parse_repo_modules

    packaged = folder == FEATURE_REPO_DIR.resolve()
    base = PROJECT_ROOT if packaged else folder
    with _parsing_from(base, on_path=False):
        parse_repo, modules = parse_repo_modules(folder)
        if not packaged:
            for module in modules:  # a previous parse of this folder is no clash
                sys.modules.pop(module, None)
            _check_module_names(folder, modules)
    with _parsing_from(base, on_path=not packaged):
        # Definition modules read the active settings when imported: import them afresh so a process
        # that serves several homes (tests, notebooks) never registers another home's paths.
        for module in modules:
            sys.modules.pop(module, None)
        contents = parse_repo(folder)
        origins: dict[int, Path] = {}
        for module in modules:
            loaded = sys.modules.get(module)
            path = Path(getattr(loaded, "__file__", "") or folder)
            for value in vars(loaded).values() if loaded is not None else ():
                origins.setdefault(id(value), path)
    return contents, origins


def _merge(ours: Any, theirs: Any, origins: dict[int, Path], their_origins: dict[int, Path]) -> Any:
    """``ours`` plus ``theirs``; the same object once, another object under a taken name refused."""
    merged = {}
    for attr in ours._fields:
        mine = list(getattr(ours, attr))
        for obj in getattr(theirs, attr):
            if any(obj is known for known in mine):
                continue
            name = getattr(obj, "name", None)
            clash = next((known for known in mine if name is not None and getattr(known, "name", None) == name), None)
            if clash is not None:
                kind = _KINDS.get(attr, attr)
                raise PersonaError(
                    f"{kind} {name} is defined in {their_origins.get(id(obj), '?')} and in "
                    f"{origins.get(id(clash), '?')}; rename yours (your folder adds to Persona's definitions)"
                )
            mine.append(obj)
        merged[attr] = mine
    return type(ours)(**merged)


def parse_definitions(settings: Settings) -> ParsedRepo:
    """Parse Persona's packaged definitions and the user's folder (see the module docstring for the rule).

    Raises:
        PersonaError: the user's folder is missing, a module name clashes with an installed module,
            or a name is defined twice.
    """
    folders = definition_folders(settings)
    for _ in range(2):
        with using(settings):
            contents, origins = _parse_folder(folders[0])
            for folder in folders[1:]:
                theirs, their_origins = _parse_folder(folder)
                contents = _merge(contents, theirs, origins, their_origins)
                for key, path in their_origins.items():
                    origins.setdefault(key, path)
        other = _home_of_sources(settings, contents)
        if other is None:
            return ParsedRepo(contents=contents, origins=origins, folders=folders)
    # Import state is process-wide: a definitions module another thread imported for another home
    # between our drop and our import is caught above and parsed again; twice in a row is a bug.
    raise PersonaError(
        f"the feature definitions were read with the settings of another home ({other}) instead of "
        f"{settings.home}; run the command again, and report it if it repeats"
    )


def _home_of_sources(settings: Settings, contents: Any) -> Path | None:
    """The other home whose files the parsed Persona sources name (None: this home's)."""
    from store.home_sources import foreign_home

    sources = list(contents.data_sources) + [view.batch_source for view in contents.feature_views]
    return foreign_home(settings, {s.name: s.path for s in sources if getattr(s, "path", None)})
