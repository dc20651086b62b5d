"""``persona forget``: erase customers from every store, suppress them, and prove nothing is left.

The job reads as named steps: decide what to look for (:func:`targets_for`: the ids, and the
review texts that only they wrote), suppress the ids (a salted hash on the list ingest checks,
first, so an ingest racing the erasure cannot bring them back), erase from every store
(:func:`privacy.stores.stores`), scan every store again, and write the report. Ingest locks of
every contract table are held while the raw and quarantine files are rewritten, so no ingest
merges from a file that is being rewritten.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import catalog
from core.contract import ENTITY_KEY, INGEST_TABLES
from core.errors import PersonaError
from core.locks import exclusive
from core.progress import silent
from features.embedding.cache import normalize_text
from ingest import suppression
from privacy.files import Targets, id_mask, replace_atomic
from privacy.stores import stores

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from core.progress import ProgressEvent
    from core.settings import Settings


@dataclass
class StoreResult:
    """One store in the erasure report: rows before, rows removed, hits after (must be 0)."""

    store: str
    rows_before: int
    removed: int
    hits_after: int


@dataclass
class ErasureReport:
    """What ``persona forget`` did and what its scan found afterwards."""

    erased_ids: int
    erased_texts: int
    shared_texts_kept: int
    newly_suppressed: int
    stores: list[StoreResult] = field(default_factory=list)
    seconds: float = 0.0
    path: str | None = None

    @property
    def clean(self) -> bool:
        """The scan found nothing of the erased customers in any store."""
        return all(s.hits_after == 0 for s in self.stores)

    def summary(self) -> str:
        """One readable line, e.g. ``forgot 1 customer(s): 57 rows removed from 9 stores; scan: clean``."""
        removed = sum(s.removed for s in self.stores)
        touched = sum(1 for s in self.stores if s.removed)
        left = [f"{s.store} {s.hits_after:,}" for s in self.stores if s.hits_after]
        scan = "clean (0 hits in every store)" if not left else "FOUND " + ", ".join(left)
        return (f"forgot {self.erased_ids:,} customer(s): {removed:,} rows removed from {touched} store(s), "
                f"{self.erased_texts:,} review text(s) only they wrote; scan: {scan}; {self.seconds:.1f}s")

    def to_dict(self) -> dict:
        """The report as plain data (what the JSON file holds); ids are never written."""
        return {**asdict(self), "clean": self.clean}


def read_ids(file: Path) -> list[int]:
    """Customer ids from a CSV (a ``customer_id`` column, else the first column) or a parquet file.

    Raises:
        PersonaError: the file cannot be read or holds a value that is not an integer id.
    """
    try:
        frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file, dtype=str)
    except (OSError, ValueError) as exc:
        raise PersonaError(f"{file}: cannot read customer ids ({exc}); give a CSV with a customer_id column") from None
    if frame.empty and ENTITY_KEY not in frame.columns:
        return []
    column = frame[ENTITY_KEY] if ENTITY_KEY in frame.columns else frame.iloc[:, 0]
    numbers = pd.to_numeric(column.astype("string").str.strip(), errors="coerce")
    bad = numbers.isna() | (numbers != np.floor(numbers.fillna(0)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise PersonaError(f"{file}: row {row + 1}: {column.iloc[row]!r} is not a customer id (an integer)")
    return sorted({int(v) for v in numbers})


def _review_texts(settings: Settings, ids: np.ndarray) -> tuple[frozenset[str], int]:
    """Normalised texts only the erased customers wrote; how many of theirs others wrote too."""
    mine: set[str] = set()
    others: set[str] = set()
    for path in (catalog.raw_table(settings, "reviews"), catalog.quarantine_table(settings, "reviews")):
        if not path.exists():
            continue
        frame = pd.read_parquet(path, columns=[ENTITY_KEY, "text"])
        texts = frame["text"].astype("string")
        ours = id_mask(frame[ENTITY_KEY], ids)
        present = texts.notna().to_numpy()
        mine |= {normalize_text(t) for t in texts[ours & present]}
        others |= {normalize_text(t) for t in texts[~ours & present]}
    mine.discard("")
    return frozenset(mine - others), len(mine & others)


def targets_for(settings: Settings, ids: Iterable[int]) -> tuple[Targets, int]:
    """The ids and the review texts to remove; how many of their texts are kept (others wrote them too)."""
    array = np.unique(np.fromiter((int(i) for i in ids), dtype=np.int64))
    texts, shared = _review_texts(settings, array)
    return Targets(array, texts), shared


@contextlib.contextmanager
def _ingest_paused(settings: Settings):
    with contextlib.ExitStack() as stack:
        for table in INGEST_TABLES:
            stack.enter_context(exclusive(catalog.ingest_lock(settings, table), what=f"ingest of {table}"))
        yield


def forget(settings: Settings, ids: Iterable[int], *, on_progress: ProgressEvent = silent,
           now: pd.Timestamp | None = None) -> ErasureReport:
    """Erase customers from every store, add them to the suppression list and scan every store.

    Args:
        settings: the home (and, in prod, the Postgres and Redis) to erase from.
        ids: customer ids.
        on_progress: told each store as it is erased, then as it is scanned.
        now: when the erasure ran (default: now, UTC); recorded on the suppression list.

    Returns:
        The report (``.clean`` is False when the scan found anything); also written as JSON
        under :func:`core.catalog.erasure_reports`.

    Raises:
        PersonaError: no id given.
    """
    started = pd.Timestamp.now(tz="UTC")
    at = now if now is not None else started
    wanted = list(ids)
    if not wanted:
        raise PersonaError("no customer id given; pass --customer-id ID or --file ids.csv")
    every = stores()
    total = 2 * len(every)
    with exclusive(catalog.erasure_lock(settings), what="an erasure"), _ingest_paused(settings):
        targets, shared = targets_for(settings, wanted)
        newly = suppression.add_ids(settings, targets.ids, at)
        counts = []
        for done, store in enumerate(every):
            on_progress(done, total, f"erasing: {store.name}")
            counts.append(store.erase(settings, targets))
        results = []
        for done, (store, count) in enumerate(zip(every, counts, strict=True), start=len(every)):
            on_progress(done, total, f"scanning: {store.name}")
            results.append(StoreResult(store.name, count.rows, count.removed, store.scan(settings, targets).hits))
        on_progress(total, total, "done")
    report = ErasureReport(len(targets.ids), len(targets.texts), shared, newly, results,
                           (pd.Timestamp.now(tz="UTC") - started).total_seconds())
    report.path = str(_write_report(settings, report, at))
    return report


def _write_report(settings: Settings, report: ErasureReport, at: pd.Timestamp) -> Path:
    folder = catalog.erasure_reports(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"erasure-{at.strftime('%Y%m%dT%H%M%S%fZ')}-{os.getpid()}.json"
    doc = {**report.to_dict(), "at": at.isoformat(), "summary": report.summary(), "path": str(path)}
    replace_atomic(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=2)))
    return path


__all__ = ["ErasureReport", "StoreResult", "forget", "read_ids", "targets_for"]
