"""The suppression list: salted hashes of erased customer ids, checked by every ingest.

``persona forget`` adds a hash per erased id; a later ingest quarantines the rows of those
customers with reason :data:`ERASED` instead of bringing them back. Only hashes are kept, so
the list itself names nobody: the hash is ``blake2b(salt || id)`` keyed by a secret salt, so an
id cannot be recovered by hashing every possible id without the salt. The salt comes from
``PERSONA_ERASURE_SALT`` or, by default, a random file under the home created with mode 0600 on
first use (:func:`core.catalog.erasure_salt`).

A quarantined erased row keeps only where it came from (``source_row``, ``source_file``) and
why (``reason``): its values are blanked (:func:`redact_erased`), so the quarantine store does
not become a second copy of the customer.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import catalog
from core.contract import ENTITY_KEY
from ingest.parse import PARSERS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.settings import Settings

ERASED = "erased"
"""Quarantine reason of a row whose customer was erased (``persona forget``)."""
HASH_COLUMN = "id_hash"
ERASED_AT = "erased_at"
_KEPT = frozenset({"source_row", "reason", "_row_id", "source_file", "ingested_at"})


def salt(settings: Settings, *, create: bool = False) -> bytes | None:
    """The suppression salt: the setting, else the home's salt file (created 0600 when ``create``).

    Returns:
        The salt, or None when none is set and the file does not exist (nothing was erased yet).
    """
    if settings.erasure_salt:
        return settings.erasure_salt.encode("utf8")
    path = catalog.erasure_salt(settings)
    if path.exists():
        return path.read_bytes()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_hex(32).encode("ascii"))
    return path.read_bytes()


def hash_ids(key: bytes, ids: Iterable[int]) -> list[str]:
    """Keyed blake2b (16 bytes, hex) of each id's decimal text."""
    return [hashlib.blake2b(str(int(i)).encode("ascii"), key=key[:64], digest_size=16).hexdigest() for i in ids]


def read_hashes(settings: Settings) -> frozenset[str]:
    """The suppressed id hashes (empty when nobody was erased)."""
    path = catalog.suppression_list(settings)
    if not path.exists():
        return frozenset()
    return frozenset(pd.read_parquet(path, columns=[HASH_COLUMN])[HASH_COLUMN].astype(str))


def add_ids(settings: Settings, ids: Iterable[int], at: pd.Timestamp) -> int:
    """Add the hashes of ``ids`` to the list (atomically: temp file + rename); how many were new.

    The caller holds the erasure lock (:func:`core.catalog.erasure_lock`).
    """
    key = salt(settings, create=True)
    assert key is not None
    path = catalog.suppression_list(settings)
    known = read_hashes(settings)
    fresh = sorted(set(hash_ids(key, ids)) - known)
    if not fresh:
        return 0
    new = pd.DataFrame({HASH_COLUMN: fresh, ERASED_AT: pd.Series([at] * len(fresh), dtype="datetime64[ns, UTC]")})
    frame = pd.concat([pd.read_parquet(path), new], ignore_index=True) if path.exists() else new
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return len(fresh)


def erased_rows(settings: Settings, frame: pd.DataFrame) -> np.ndarray:
    """Per row of a raw frame, whether its ``customer_id`` is on the suppression list."""
    if ENTITY_KEY not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    hashes = read_hashes(settings)
    key = salt(settings)
    if not hashes or key is None:
        return np.zeros(len(frame), dtype=bool)
    parsed = PARSERS["int"](frame[ENTITY_KEY])
    valid = ~(parsed.null | parsed.invalid)
    ids = parsed.values.to_numpy(dtype=np.int64)
    uniques = np.unique(ids[valid])
    hit = {int(i) for i, h in zip(uniques, hash_ids(key, uniques), strict=True) if h in hashes}
    return valid & np.isin(ids, np.fromiter(hit, dtype=np.int64, count=len(hit)))


def mark_erased(damaged: np.ndarray | None, erased: np.ndarray) -> np.ndarray | None:
    """Per-row reasons found before validation, with :data:`ERASED` taking precedence."""
    if not erased.any():
        return damaged
    reasons = np.full(len(erased), None, dtype=object) if damaged is None else np.asarray(damaged, object).copy()
    reasons[erased] = ERASED
    return reasons


def redact_erased(quarantined: pd.DataFrame) -> pd.DataFrame:
    """Blank every value of rows quarantined as :data:`ERASED`, keeping where they came from and why."""
    if "reason" not in quarantined.columns:
        return quarantined
    erased = (quarantined["reason"] == ERASED).fillna(False).to_numpy(dtype=bool)
    if not erased.any():
        return quarantined
    out = quarantined.copy()
    for column in out.columns:
        if column not in _KEPT:
            out.loc[erased, column] = pd.NA
    return out


__all__ = ["ERASED", "add_ids", "erased_rows", "hash_ids", "mark_erased", "read_hashes", "redact_erased", "salt"]
