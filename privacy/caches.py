"""Erased customers in the caches: review-text vectors and the similarity index.

The embedding and sentiment caches key vectors by ``text_key(normalised text, identity)``, not
by customer: a vector goes only when its text was written by erased customers alone (another
customer's identical review still needs it). Each identity folder names its identity in
``identity.txt``, so keys are computed per folder without loading any encoder. The similarity
index is a cache of the online vectors: files holding an erased id are deleted and rebuilt on
the next query (by then without the erased customers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.embedding.cache import text_key
from privacy.files import FileCount, replace_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from privacy.files import Targets


def _parts_with_keys(root: Path, texts: frozenset[str]) -> list[tuple[Path, set[str]]]:
    """(part file, keys of ``texts`` under its identity) for every cache part below ``root``."""
    out: list[tuple[Path, set[str]]] = []
    if not root.exists():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        marker = folder / "identity.txt"
        if not marker.exists():
            continue
        identity = marker.read_text()
        keys = {text_key(t, identity) for t in texts}
        out.extend((part, keys) for part in sorted(folder.glob("part-*.parquet")))
    return out


def erase_vector_cache(root: Path, targets: Targets) -> FileCount:
    """Rewrite the cache parts under ``root`` without the vectors of erased-only texts."""
    count = FileCount()
    for part, keys in _parts_with_keys(root, targets.texts):
        table = pq.read_table(part)
        drop = np.asarray(pc.is_in(table.column("key"), value_set=_array(keys)).to_numpy(zero_copy_only=False))
        count += FileCount(rows=table.num_rows, removed=int(drop.sum()))
        if drop.any():
            kept = table.filter(~drop)
            replace_atomic(part, lambda tmp, kept=kept: pq.write_table(kept, tmp))
    return count


def scan_vector_cache(root: Path, targets: Targets) -> FileCount:
    """Vectors under ``root`` still keyed by an erased-only text."""
    count = FileCount()
    for part, keys in _parts_with_keys(root, targets.texts):
        column = pq.read_table(part, columns=["key"]).column("key")
        hits = pc.sum(pc.is_in(column, value_set=_array(keys))).as_py() or 0
        count += FileCount(rows=len(column), hits=int(hits))
    return count


def _array(keys: set[str]):
    import pyarrow as pa

    return pa.array(sorted(keys), pa.string())


def _index_files(root: Path) -> list[Path]:
    return sorted(root.glob("index-*.ids.npy")) if root.exists() else []


def erase_similarity(root: Path, targets: Targets) -> FileCount:
    """Delete similarity index files that hold an erased id (the index is rebuilt on demand)."""
    count = FileCount()
    for ids_file in _index_files(root):
        ids = np.load(ids_file)
        hits = int(np.isin(ids, targets.ids).sum())
        count += FileCount(rows=len(ids), removed=hits)
        if hits:
            ids_file.with_name(ids_file.name.replace(".ids.npy", ".vectors.npy")).unlink(missing_ok=True)
            ids_file.unlink()
    return count


def scan_similarity(root: Path, targets: Targets) -> FileCount:
    """Rows of the cached similarity index that are erased ids."""
    count = FileCount()
    for ids_file in _index_files(root):
        ids = np.load(ids_file)
        count += FileCount(rows=len(ids), hits=int(np.isin(ids, targets.ids).sum()))
    return count
