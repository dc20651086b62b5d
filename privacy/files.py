"""Remove erased customers from files, and find what is left of them: parquet, CSV and JSON.

A row belongs to an erased customer when its ``customer_id`` is one of the erased ids; a
``customer_id`` kept as text (the quarantine store keeps original values) is parsed first. Every
rewrite is atomic (a temp file beside the original, renamed over it), and a file left with no
row is deleted. The temp file is named ``.<name>.<pid>.<random>.tmp``: no reader's pattern
matches it, and ingest's stale-temp sweep recognises it.

The scan (:func:`scan_file`) counts, per file, rows of an erased id and values equal to one of
the erased texts (normalised as the embedding cache normalises them); in JSON documents values
under a ``customer_id``/``customer_ids`` key, and in any text file (HTML, CSV, JSON) erased texts
as substrings. Ids are not searched as bare numbers in HTML: a number on a page names nobody.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.contract import ENTITY_KEY
from features.embedding.cache import normalize_text

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

ID_KEYS = frozenset({ENTITY_KEY, f"{ENTITY_KEY}s"})
TEXT_SUFFIXES = frozenset({".html", ".json", ".csv", ".txt", ".md"})
MIN_SUBSTRING_CHARS = 12
"""Shorter erased texts are matched only as whole values: as substrings they would match anywhere."""


@dataclass(frozen=True)
class Targets:
    """What to remove and look for.

    Attributes:
        ids: the erased customer ids (sorted, unique).
        texts: normalised review texts that only erased customers wrote.
    """

    ids: np.ndarray
    texts: frozenset[str]


@dataclass
class FileCount:
    """Rows of one file: before, removed by the rewrite, and erased ids or texts found."""

    rows: int = 0
    removed: int = 0
    hits: int = 0

    def __iadd__(self, other: FileCount) -> FileCount:
        self.rows += other.rows
        self.removed += other.removed
        self.hits += other.hits
        return self


def temp_beside(path: Path) -> Path:
    """A temp file name in ``path``'s folder that no reader picks up."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def replace_atomic(path: Path, write) -> None:
    """Call ``write(tmp)``, flush it to disk and rename it over ``path``."""
    tmp = temp_beside(path)
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def id_mask(values: pd.Series, ids: np.ndarray) -> np.ndarray:
    """Per value, whether it is one of ``ids`` (integers, or their text as the quarantine keeps it)."""
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_float_dtype(values.dtype):
        numbers = pd.to_numeric(values, errors="coerce")
    else:
        text = values.astype("string").str.strip().str.replace(r"^\+|\.0*$", "", regex=True)
        numbers = pd.to_numeric(text, errors="coerce")
    as_float = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.isin(as_float, ids.astype(np.float64))


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns
            if pd.api.types.is_object_dtype(frame[c].dtype) or pd.api.types.is_string_dtype(frame[c].dtype)]


def text_mask(frame: pd.DataFrame, texts: frozenset[str]) -> np.ndarray:
    """Per row, whether any text column holds one of ``texts`` (normalised)."""
    hit = np.zeros(len(frame), dtype=bool)
    if not texts:
        return hit
    for column in _text_columns(frame):
        values = frame[column]
        present = values.notna().to_numpy()
        if not present.any():
            continue
        normalised = values[present].map(lambda v: normalize_text(v) if isinstance(v, str) else None)
        hit[np.flatnonzero(present)] |= normalised.isin(texts).to_numpy(dtype=bool)
    return hit


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return pq.read_table(path).to_pandas()


def _rows_of(frame: pd.DataFrame, targets: Targets) -> np.ndarray:
    if ENTITY_KEY in frame.columns:
        return id_mask(frame[ENTITY_KEY], targets.ids)
    return np.zeros(len(frame), dtype=bool)


def erase_table_file(path: Path, targets: Targets) -> FileCount:
    """Rewrite a parquet or CSV file without the erased customers' rows (deleted when none is left)."""
    frame = _read(path)
    drop = _rows_of(frame, targets)
    count = FileCount(rows=len(frame), removed=int(drop.sum()))
    if not count.removed:
        return count
    kept = frame[~drop].reset_index(drop=True)
    if kept.empty and path.suffix == ".parquet" and path.name.startswith("part-"):
        path.unlink()  # a partition file of erased rows only: nothing to keep
        return count
    if path.suffix == ".csv":
        replace_atomic(path, lambda tmp: kept.to_csv(tmp, index=False))
    else:
        schema = pq.read_schema(path)
        table = pa.Table.from_pandas(kept, preserve_index=False)
        with contextlib.suppress(pa.ArrowInvalid, ValueError):  # else keep pandas' inference
            table = table.cast(schema.remove_metadata()).replace_schema_metadata(schema.metadata)
        replace_atomic(path, lambda tmp: pq.write_table(table, tmp))
    return count


def _strip_json(node: Any, ids: set[int]) -> tuple[Any, int]:
    """``node`` without list items that are objects of an erased ``customer_id``; how many went."""
    removed = 0
    if isinstance(node, list):
        kept = []
        for item in node:
            if isinstance(item, dict) and _json_id(item.get(ENTITY_KEY)) in ids:
                removed += 1
                continue
            item, n = _strip_json(item, ids)
            removed += n
            kept.append(item)
        return kept, removed
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == f"{ENTITY_KEY}s" and isinstance(value, list):
                before = len(value)
                value = [v for v in value if _json_id(v) not in ids]
                removed += before - len(value)
            else:
                value, n = _strip_json(value, ids)
                removed += n
            out[key] = value
        return out, removed
    return node, 0


def _json_id(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool | dict | list) else None
    except (TypeError, ValueError):
        return None


def erase_json_file(path: Path, targets: Targets) -> FileCount:
    """Rewrite a JSON document without objects (or list entries) of erased customer ids."""
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return FileCount()
    stripped, removed = _strip_json(doc, {int(i) for i in targets.ids})
    if removed:
        replace_atomic(path, lambda tmp: tmp.write_text(json.dumps(stripped)))
    return FileCount(removed=removed)


def _json_id_hits(node: Any, ids: set[int]) -> int:
    if isinstance(node, list):
        return sum(_json_id_hits(item, ids) for item in node)
    if isinstance(node, dict):
        hits = 0
        for key, value in node.items():
            if key in ID_KEYS:
                values = value if isinstance(value, list) else [value]
                hits += sum(_json_id(v) in ids for v in values)
            else:
                hits += _json_id_hits(value, ids)
        return hits
    return 0


def _json_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _json_strings(item)]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (key, *_json_strings(value))]
    return []


def scan_file(path: Path, targets: Targets) -> FileCount:
    """Rows (or values) of ``path`` that still name an erased id or hold an erased text."""
    suffix = path.suffix
    if suffix == ".parquet" or suffix == ".csv":
        frame = _read(path)
        hits = _rows_of(frame, targets) | text_mask(frame, targets.texts)
        return FileCount(rows=len(frame), hits=int(hits.sum()))
    if suffix not in TEXT_SUFFIXES:
        return FileCount()
    try:
        content = path.read_text()
    except UnicodeDecodeError:
        return FileCount()
    hits = 0
    if suffix == ".json":
        with contextlib.suppress(json.JSONDecodeError):
            doc = json.loads(content)
            hits += _json_id_hits(doc, {int(i) for i in targets.ids})
            content = "\n".join(_json_strings(doc))  # texts as written, not as JSON escapes them
    flat = normalize_text(content)
    hits += sum(1 for t in targets.texts if len(t) >= MIN_SUBSTRING_CHARS and t in flat)
    return FileCount(hits=hits)


def files_under(root: Path, suffixes: Iterable[str] = (".parquet",)) -> list[Path]:
    """Files below ``root`` with one of ``suffixes`` (none when ``root`` does not exist), temp files left out."""
    if not root.exists():
        return []
    if root.is_file():
        return [root]
    wanted = tuple(suffixes)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(wanted) and not p.name.startswith("."))
