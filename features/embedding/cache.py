"""Hash-keyed vector cache: a text already embedded by a model is never embedded again.

Layout under a root (``catalog.embedding_cache`` for embeddings)::

    <root>/<slug of identity>/identity.txt       the full identity string
    <root>/<slug of identity>/part-*.parquet     key (string), vector (fixed_size_list<float32>)

A key is ``sha256(identity, normalised text)``, so the same text under another model never
collides. Each run appends one part with only its new vectors; many parts are compacted into
one. Opening a cache for a new identity deletes the directories of every other identity under
the same root (the model changed: everything is re-embedded) and reports how many vectors went.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from collections.abc import Sequence

_SPACES = re.compile(r"\s+")
_MAX_PARTS = 16


def normalize_text(text: str) -> str:
    """Unicode NFC, whitespace runs collapsed to one space, ends stripped (empty stays empty)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def text_key(normalized: str, identity: str) -> str:
    """Cache key of a normalised text under a model identity (hex, 128 bits)."""
    digest = hashlib.sha256(identity.encode("utf-8") + b"\x1f" + normalized.encode("utf-8"))
    return digest.hexdigest()[:32]


def identity_slug(identity: str) -> str:
    """Directory name for an identity: readable prefix plus a short hash."""
    readable = re.sub(r"[^a-z0-9]+", "-", "-".join(identity.split("|")[-2:]).lower()).strip("-")[:40]
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Lookup:
    """Result of looking keys up.

    Attributes:
        found: (n,) bool per requested key.
        vectors: (n, dim) float32; rows of keys not found are zeros.
    """

    found: np.ndarray
    vectors: np.ndarray


class VectorCache:
    """Vectors of one identity stored as parquet parts (see module docstring).

    Args:
        root: directory holding one sub-directory per identity.
        identity: the model identity the vectors come from.
        dim: vector length.
    """

    def __init__(self, root: Path, identity: str, dim: int) -> None:
        self.root = Path(root)
        self.identity = identity
        self.dim = dim
        self.directory = self.root / identity_slug(identity)
        self._keys: pd.Index | None = None
        self._vectors: np.ndarray | None = None

    def invalidate_others(self) -> int:
        """Delete caches of other identities under the root.

        Returns:
            Number of vectors deleted.
        """
        dropped = 0
        if not self.root.exists():
            return 0
        for other in self.root.iterdir():
            marker = other / "identity.txt"
            if other == self.directory or not marker.exists() or marker.read_text() == self.identity:
                continue
            dropped += sum(pq.ParquetFile(p).metadata.num_rows for p in other.glob("part-*.parquet"))
            shutil.rmtree(other, ignore_errors=True)
        return dropped

    def _parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.parquet"))

    def _load(self) -> None:
        if self._keys is not None:
            return
        keys: list[np.ndarray] = []
        vectors: list[np.ndarray] = []
        for part in self._parts():
            table = pq.read_table(part)
            keys.append(table.column("key").to_numpy(zero_copy_only=False))
            flat = table.column("vector").combine_chunks().flatten().to_numpy()
            vectors.append(np.asarray(flat, np.float32).reshape(-1, self.dim))
        all_keys = np.concatenate(keys) if keys else np.array([], dtype=object)
        all_vectors = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        index = pd.Index(all_keys)
        if not index.is_unique:  # two concurrent runs may have stored the same text
            keep = ~index.duplicated()
            index, all_vectors = index[keep], all_vectors[keep]
        self._keys, self._vectors = index, all_vectors

    def __len__(self) -> int:
        self._load()
        assert self._keys is not None
        return len(self._keys)

    def lookup(self, keys: Sequence[str]) -> Lookup:
        """Vectors for keys, with a mask of which were cached."""
        self._load()
        assert self._keys is not None
        assert self._vectors is not None
        positions = self._keys.get_indexer(pd.Index(keys)) if len(self._keys) else np.full(len(keys), -1)
        found = positions >= 0
        vectors = np.zeros((len(keys), self.dim), np.float32)
        vectors[found] = self._vectors[positions[found]]
        return Lookup(found=found, vectors=vectors)

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store new vectors as one part (atomically) and compact when parts pile up."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dim):
            raise ValueError(f"expected {len(keys)} vectors of {self.dim}, got shape {vectors.shape}")
        if not len(keys):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "identity.txt").write_text(self.identity)
        self._write(self.directory / f"part-{uuid.uuid4().hex}.parquet", list(keys), vectors)
        if self._keys is not None and self._vectors is not None:
            self._keys = self._keys.append(pd.Index(list(keys)))
            self._vectors = np.concatenate([self._vectors, vectors])
        if len(self._parts()) > _MAX_PARTS:
            self.compact()

    def compact(self) -> None:
        """Rewrite all parts as one."""
        parts = self._parts()
        if len(parts) <= 1:
            return
        self._keys = None
        self._load()
        assert self._keys is not None
        assert self._vectors is not None
        self._write(self.directory / f"part-{uuid.uuid4().hex}.parquet", list(self._keys), self._vectors)
        for part in parts:
            part.unlink(missing_ok=True)

    def _write(self, path: Path, keys: list[str], vectors: np.ndarray) -> None:
        values = pa.array(vectors.reshape(-1), pa.float32())
        table = pa.table({"key": pa.array(keys, pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(values, self.dim)})
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
