"""Ingest raw files: read, validate against the data contract, keep good rows, quarantine bad ones.

Per file the job is ``read -> validate -> append``, each step owned by its module
(:mod:`ingest.read`, :mod:`ingest.parse` + :mod:`ingest.validate`, :mod:`ingest.raw_store`).
Nothing is dropped silently: every row read is either accepted (appended to the table's raw
store file) or quarantined (appended to its quarantine file with a ``reason``), so
``accepted + quarantined == rows read`` always holds.

Writers of one table are serialized by a file lock under the home
(:func:`core.catalog.ingest_lock`), held for the whole read-merge-write of the table's raw store
and quarantine files, so two ``persona ingest`` runs at once both keep every row. Customers are
an upsert keyed on ``customer_id`` (the later file wins; the report counts ``updated``).
Amounts and quantities above ``PERSONA_MAX_AMOUNT`` / ``PERSONA_MAX_QUANTITY`` are quarantined.
Rows of erased customers (:mod:`ingest.suppression`) are quarantined as ``erased``, values blanked.
Campaigns and exposures also pass rules across rows and tables (:mod:`ingest.campaign_rules`:
unknown campaign, treatment without a campaign, a customer in both groups, no consent).
A home that cannot be written (disk full, read-only, a file where a directory belongs) is one
line naming the path, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import catalog
from core.contract import CAMPAIGN_KEY, ENTITY_KEY, GROUP, INGEST_TABLES
from core.errors import PersonaError
from core.locks import exclusive
from core.progress import silent
from ingest.campaign_rules import campaign_reasons, exposure_reasons
from ingest.consent import contactable
from ingest.parse import MAX_TEXT_CHARS
from ingest.raw_store import append_new_rows, append_quarantined, remove_stale_temps, upsert_rows
from ingest.read import preflight, read_raw
from ingest.suppression import erased_rows, mark_erased, redact_erased
from ingest.validate import validate

if TYPE_CHECKING:
    from collections.abc import Mapping

    from core.progress import ProgressEvent
    from core.settings import Settings
    from ingest.validate import Validation

_STEPS = ("reading", "validating", "writing")
UPSERT_TABLES = frozenset({"customers"})
"""Tables whose rows are keyed on ``customer_id``: a later file updates them."""


@dataclass
class IngestReport:
    """What one ingested file contributed.

    Attributes:
        table: contract table name.
        source: the file ingested.
        rows_read: data rows in the file.
        accepted: rows that passed validation (``new_rows + updated + already_present``).
        new_rows: accepted rows appended to the raw store.
        already_present: accepted rows the raw store already held (same ``_row_id``; for an
            upsert table, the same values under the same key).
        quarantined: rows that failed validation.
        reasons: quarantine reason code -> count.
        quarantine_path: where quarantined rows were written (``None`` when there were none).
        truncated: accepted texts cut to :data:`MAX_TEXT_CHARS` characters.
        raw_path: the raw store file of this table.
        updated: accepted rows that changed a stored row of the same key (upsert tables only).
    """

    table: str
    source: str
    rows_read: int
    accepted: int
    new_rows: int
    already_present: int
    quarantined: int
    reasons: dict[str, int]
    quarantine_path: Path | None
    truncated: int = 0
    raw_path: Path | None = None
    updated: int = 0

    def summary(self) -> str:
        """One human line, e.g. ``transactions: read 1,204 · accepted 1,200 (new 1,200, ...) · ...``."""
        updated = f"updated {self.updated:,}, " if self.table in UPSERT_TABLES else ""
        accepted = (f"accepted {self.accepted:,} (new {self.new_rows:,}, {updated}"
                    f"already present {self.already_present:,}")
        if self.truncated:
            accepted += f"; {self.truncated:,} text(s) truncated to {MAX_TEXT_CHARS:,} chars"
        line = f"{self.table}: read {self.rows_read:,} · {accepted}) · quarantined {self.quarantined:,}"
        if self.quarantined:
            ordered = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
            line += " (" + ", ".join(f"{code.replace('_', ' ')} {n:,}" for code, n in ordered) + ")"
            if self.quarantine_path is not None:
                line += f" -> {self.quarantine_path}"
        return line


def _check_header(table: str, path: Path) -> None:
    """Fail early (before anything is written) on a file that cannot be ingested at all."""
    spec = INGEST_TABLES[table]
    columns, has_rows = preflight(path)
    missing = [c for c in spec.required if c not in columns]
    if missing:
        found = ", ".join(columns[:12]) or "none"
        raise PersonaError(f"{path}: missing required column(s) {', '.join(missing)}; "
                           f"expected {', '.join(spec.required)} (found: {found})")
    if not has_rows:
        raise PersonaError(f"{path}: has no data rows; nothing to ingest")


def _utc(now: pd.Timestamp | None) -> pd.Timestamp:
    """``now`` (default: the current time) as a UTC timestamp; naive means UTC."""
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC")


def _max_values(settings: Settings) -> dict[str, float]:
    """Plausible upper bounds per contract column, from the settings."""
    return {"amount": settings.max_amount, "quantity": settings.max_quantity}


@dataclass(frozen=True)
class _Written:
    new_rows: int
    updated: int
    already_present: int
    quarantine_path: Path | None


def _write(settings: Settings, table: str, result: Validation, source: Path, at: pd.Timestamp) -> _Written:
    """Merge one file's rows into the table's store files, holding the table's lock throughout."""
    raw_path = catalog.raw_table(settings, table)
    quarantine_path = catalog.quarantine_table(settings, table) if len(result.quarantined) else None
    try:
        with exclusive(catalog.ingest_lock(settings, table), what=f"ingest of {table}"):
            remove_stale_temps(raw_path)
            remove_stale_temps(catalog.quarantine_table(settings, table))
            updated = 0
            if table in UPSERT_TABLES:
                new_rows, updated, present = upsert_rows(raw_path, result.accepted, ENTITY_KEY)
            else:
                new_rows, present = append_new_rows(raw_path, result.accepted)
            if quarantine_path is not None:
                append_quarantined(quarantine_path, result.quarantined, source, at)
    except OSError as exc:
        where = exc.filename or settings.home
        raise PersonaError(f"{where}: cannot write ({exc.strerror or exc}); free disk space or make "
                           f"PERSONA_HOME ({settings.home}) a writable directory") from None
    return _Written(new_rows, updated, present, quarantine_path)


def _ingest_order(table: str) -> int:
    """Exposures last (they are checked against stored campaigns and consent); others as given."""
    return 1 if table == "exposures" else 0


def _stored(path: Path, columns: list[str]) -> pd.DataFrame | None:
    return pd.read_parquet(path, columns=columns) if path.exists() else None


def _cross_table(settings: Settings, table: str, frame: pd.DataFrame, damaged: np.ndarray | None) -> np.ndarray | None:
    """Reasons from rules across rows and tables (:mod:`ingest.campaign_rules`); earlier reasons win."""
    if table == "campaigns":
        found = campaign_reasons(frame)
    elif table == "exposures":
        campaigns = _stored(catalog.raw_table(settings, "campaigns"), [CAMPAIGN_KEY])
        known = [] if campaigns is None else campaigns[CAMPAIGN_KEY].dropna().astype(str).tolist()
        stored = _stored(catalog.raw_table(settings, "exposures"), [ENTITY_KEY, CAMPAIGN_KEY, GROUP])
        found = exposure_reasons(frame, known, lambda ids: contactable(settings, ids), stored)
    else:
        return damaged
    if damaged is None:
        return found if (found != None).any() else None  # noqa: E711 - elementwise
    return np.where(np.asarray(damaged, dtype=object) == None, found, damaged)  # noqa: E711


def ingest_files(
    settings: Settings,
    files: Mapping[str, Path | str],
    *,
    now: pd.Timestamp | None = None,
    on_progress: ProgressEvent = silent,
) -> list[IngestReport]:
    """Validate files against the data contract; append good rows, quarantine bad ones.

    Every file is checked (readable, CSV or parquet, required columns, not empty) before
    anything is written. Writes are atomic (temp file + rename) and serialized per table by a
    file lock, waited for as long as another ingest holds it.

    Args:
        settings: locates the raw store and quarantine files (:mod:`core.catalog`).
        files: contract table name (``customers``, ``transactions``, ``sessions``,
            ``reviews``, ``campaigns``, ``exposures``) -> file. Exposures are ingested last
            (they are checked against campaigns and consent).
        now: ingestion time recorded on quarantined rows (default: now, UTC).
        on_progress: told each step (read, validate, write) of each file as it starts.

    Returns:
        One report per file, in the order given (exposures last).

    Raises:
        PersonaError: an unknown table, a file that cannot be ingested at all, or a home that
            cannot be written.
    """
    unknown = [t for t in files if t not in INGEST_TABLES]
    if unknown:
        raise PersonaError(f"unknown table(s) {', '.join(unknown)}; expected one of {', '.join(INGEST_TABLES)}")
    paths = {table: Path(files[table]) for table in sorted(files, key=_ingest_order)}
    for table, path in paths.items():
        _check_header(table, path)

    ingested_at = _utc(now)
    total = len(paths) * len(_STEPS)
    done = 0
    reports: list[IngestReport] = []
    for table, path in paths.items():
        on_progress(done, total, f"{table}: {_STEPS[0]} {path.name}")
        raw = read_raw(path)
        frame = raw.frame
        if frame.empty:
            raise PersonaError(f"{path}: has no data rows; nothing to ingest")
        done += 1
        on_progress(done, total, f"{table}: {_STEPS[1]} {len(frame):,} rows")
        try:
            damaged = _cross_table(settings, table, frame, mark_erased(raw.damaged, erased_rows(settings, frame)))
            result = validate(frame, INGEST_TABLES[table], max_values=_max_values(settings), damaged=damaged)
        except PersonaError as exc:
            raise PersonaError(f"{path}: {exc}") from None
        result.quarantined = redact_erased(result.quarantined)
        done += 1
        on_progress(done, total, f"{table}: {_STEPS[2]}")
        written = _write(settings, table, result, path, ingested_at)
        done += 1
        on_progress(done, total, f"{table}: {_STEPS[2]}")
        reports.append(IngestReport(
            table=table, source=str(path), rows_read=len(frame), accepted=len(result.accepted),
            new_rows=written.new_rows, already_present=written.already_present,
            quarantined=len(result.quarantined), reasons=result.reasons,
            quarantine_path=written.quarantine_path, truncated=result.truncated,
            raw_path=catalog.raw_table(settings, table), updated=written.updated,
        ))
    return reports


__all__ = ["IngestReport", "ingest_files"]
