"""Every store that can hold a customer, each with how to erase from it and how to scan it.

One list (:func:`stores`), walked twice by :mod:`privacy.forget`: once to erase, once after to
prove nothing is left. File stores name their files through :mod:`core.catalog`; the model
directories of MLflow runs are left alone (their artifact hash covers them, and they hold no
customer id), only each run's ``reference/`` sample is rewritten. The last store,
``elsewhere_in_home``, is scanned only: tables and documents under the home that no store above
covers (input files a user keeps there, artifacts a newer step adds) are reported, never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import catalog
from core.settings import Settings
from privacy.caches import erase_similarity, erase_vector_cache, scan_similarity, scan_vector_cache
from privacy.files import FileCount, Targets, erase_json_file, erase_table_file, files_under, scan_file
from privacy.online import erase_offline_postgres, erase_online, scan_offline_postgres, scan_online

if TYPE_CHECKING:
    from pathlib import Path

TABLE_SUFFIXES = (".parquet", ".csv")
DOCUMENT_SUFFIXES = (".parquet", ".csv", ".json", ".html")


@dataclass(frozen=True)
class Store:
    """One place customers live.

    Attributes:
        name: as the erasure report names it.
        erase: removes the targets; counts rows before and rows removed.
        scan: counts what is left of the targets (``hits``).
    """

    name: str
    erase: Callable[[Settings, Targets], FileCount]
    scan: Callable[[Settings, Targets], FileCount]


def _file_store(name: str, roots: Callable[[Settings], list[Path]], suffixes: tuple[str, ...]) -> Store:
    def listed(settings: Settings) -> list[Path]:
        return [f for root in roots(settings) for f in files_under(root, suffixes)]

    def erase(settings: Settings, targets: Targets) -> FileCount:
        count = FileCount()
        for path in listed(settings):
            count += erase_json_file(path, targets) if path.suffix == ".json" else (
                erase_table_file(path, targets) if path.suffix in TABLE_SUFFIXES else FileCount())
        return count

    def scan(settings: Settings, targets: Targets) -> FileCount:
        count = FileCount()
        for path in listed(settings):
            count += scan_file(path, targets)
        return count

    return Store(name, erase, scan)


def reference_samples(settings: Settings) -> list[Path]:
    """Each MLflow run's ``reference/`` folder in the local artifact store."""
    root = catalog.mlflow_artifacts(settings)
    folder = catalog.REFERENCE_ARTIFACT.split("/")[0]
    return sorted(p for p in root.rglob(folder) if p.is_dir()) if root.exists() else []


def run_documents(settings: Settings) -> list[Path]:
    """Each MLflow run's persona cards folder (documents that may quote customers)."""
    root = catalog.mlflow_artifacts(settings)
    return sorted(p for p in root.rglob("persona_cards") if p.is_dir()) if root.exists() else []


def report_documents(settings: Settings) -> list[Path]:
    """Persona cards (the home's and each run's) and monitoring reports."""
    cards = catalog.persona_cards_html(settings)
    return [cards, cards.with_suffix(".json"), catalog.monitoring_reports(settings), *run_documents(settings)]


def _offline_erase(settings: Settings, targets: Targets) -> FileCount:
    if settings.profile == "prod":
        return erase_offline_postgres(settings, targets)
    return _offline_files.erase(settings, targets)


def _offline_scan(settings: Settings, targets: Targets) -> FileCount:
    if settings.profile == "prod":
        return scan_offline_postgres(settings, targets)
    return _offline_files.scan(settings, targets)


_offline_files = _file_store("offline", lambda s: [s.offline_dir], TABLE_SUFFIXES)


def elsewhere(settings: Settings) -> list[Path]:
    """Tables and documents under the home outside every store above (e.g. the demo's generated inputs).

    Persona did not write them, so they are scanned, never rewritten: a hit there means a copy
    of the customer's data the user keeps under the home (the report names the store).
    """
    covered = (settings.raw_dir, settings.quarantine_dir, settings.offline_dir, settings.serving_dir,
               settings.reports_dir, settings.embeddings_dir, catalog.privacy_dir(settings),
               catalog.ground_truth(settings))
    return [p for p in files_under(settings.home, DOCUMENT_SUFFIXES)
            if not any(p == root or p.is_relative_to(root) for root in covered)]


def _scan_only(name: str, roots: Callable[[Settings], list[Path]]) -> Store:
    scanning = _file_store(name, roots, DOCUMENT_SUFFIXES)
    return Store(name, lambda s, t: scanning.scan(s, t), scanning.scan)


def stores() -> list[Store]:
    """Every store, in the order they are erased (sources first, derived stores after)."""
    return [
        _file_store("raw", lambda s: [s.raw_dir, catalog.ground_truth(s)], TABLE_SUFFIXES),
        _file_store("quarantine", lambda s: [s.quarantine_dir], TABLE_SUFFIXES),
        Store("offline", _offline_erase, _offline_scan),
        Store("online", erase_online, scan_online),
        Store("embedding_cache", lambda s, t: erase_vector_cache(catalog.embedding_cache(s), t),
              lambda s, t: scan_vector_cache(catalog.embedding_cache(s), t)),
        Store("sentiment_cache", lambda s, t: erase_vector_cache(catalog.sentiment_cache(s), t),
              lambda s, t: scan_vector_cache(catalog.sentiment_cache(s), t)),
        Store("similarity_cache", lambda s, t: erase_similarity(catalog.similarity_cache(s), t),
              lambda s, t: scan_similarity(catalog.similarity_cache(s), t)),
        _file_store("prediction_log", lambda s: [catalog.prediction_log(s)], TABLE_SUFFIXES),
        _file_store("mlflow_reference", reference_samples, TABLE_SUFFIXES),
        _file_store("evidently", lambda s: [catalog.evidently_workspace(s)], DOCUMENT_SUFFIXES),
        _file_store("reports", report_documents, DOCUMENT_SUFFIXES),
        _file_store("audiences", lambda s: [catalog.audiences_dir(s)], DOCUMENT_SUFFIXES),
        _scan_only("elsewhere_in_home", elsewhere),
    ]
