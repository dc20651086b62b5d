"""Exact cosine similarity search over customers' text embeddings, in process.

This Python cannot load SQLite extensions (so no sqlite-vec): the index is a row-normalised
float32 matrix; a query is one matrix-vector product plus ``argpartition`` — exact, and a few
milliseconds for 100k customers. The same :class:`SimilarityIndex` backs ``persona similar``
and the serving API.

The loader takes the customers of the newest snapshot in ``offline/customer_text.parquet``,
reads their vectors from Feast's online store (``customer_text:text_embedding``), drops customers
whose vector is all zeros (no review in the last 365 days) and caches the matrix as ``.npy``
under ``embeddings/similarity`` keyed by the parquet's mtime. When the online store has not been
materialised it falls back to the offline newest snapshot and logs that it did.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Sequence, Sized
    from pathlib import Path

    from core.settings import Settings

log = logging.getLogger(__name__)

ENTITY_KEY = "customer_id"
FEATURE_REF = "customer_text:text_embedding"


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@dataclass(frozen=True)
class Neighbour:
    """A similar customer and its cosine similarity (-1..1, higher is closer)."""

    customer_id: int
    score: float


class SimilarityIndex:
    """Exact cosine top-k over a fixed set of customers (see :meth:`from_arrays`)."""

    def __init__(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        self.ids = ids
        self.matrix = matrix
        self._row = pd.Index(ids)

    @classmethod
    def from_arrays(cls, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> SimilarityIndex:
        """Build an index; rows whose vector is all zeros (no text) or not finite are left out.

        Args:
            ids: customer ids (unique).
            vectors: (n, dim) vectors, any length (rows are normalised here).

        Returns:
            The index.
        """
        ids = np.asarray(ids, np.int64)
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"need one vector row per id: {len(ids)} ids, vectors of shape {vectors.shape}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("customer ids must be unique")
        norms = np.linalg.norm(vectors, axis=1)
        keep = np.isfinite(norms) & (norms > 0)
        matrix = np.ascontiguousarray(vectors[keep] / norms[keep, None], dtype=np.float32)
        return cls(ids[keep], matrix)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._row

    def vector(self, customer_id: int) -> np.ndarray:
        """The normalised vector of an indexed customer (KeyError when absent)."""
        position = self._row.get_indexer([customer_id])[0]
        if position < 0:
            raise KeyError(customer_id)
        return self.matrix[position]

    def query(
        self, vector_or_id: int | np.integer | np.ndarray | Sequence[float], k: int = 10
    ) -> list[Neighbour]:
        """The ``k`` most similar customers, best first.

        Args:
            vector_or_id: a customer id (that customer is excluded from its own answer) or a
                query vector (nothing excluded: a customer's own vector ranks itself first).
            k: number of neighbours (fewer when the index is smaller).

        Returns:
            Neighbours with cosine scores, descending (ties broken by customer id).

        Raises:
            KeyError: for an id not in the index.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        exclude = -1
        if isinstance(vector_or_id, (int, np.integer)):
            exclude = int(self._row.get_indexer([int(vector_or_id)])[0])
            if exclude < 0:
                raise KeyError(vector_or_id)
            query = self.matrix[exclude]
        else:
            query = np.asarray(vector_or_id, np.float32).reshape(-1)
            norm = float(np.linalg.norm(query))
            if query.shape[0] != self.matrix.shape[1] or not norm > 0:
                raise ValueError("the query vector must be non-zero and match the index dimension")
            query = query / norm
        if not len(self.ids):
            return []
        # One BLAS thread: a matvec is memory-bound, and on a busy box a second thread only
        # adds waiting (measured p99 35-50 ms with two threads vs 17 ms with one, 100k x 384).
        with _blas().limit(limits=1, user_api="blas"):
            scores = self.matrix @ query
        if exclude >= 0:
            scores[exclude] = -np.inf
        available = len(scores) - (exclude >= 0)
        k = min(k, available)
        if k <= 0:
            return []
        top = np.argpartition(scores, len(scores) - k)[-k:] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((self.ids[top], -scores[top]))]
        return [Neighbour(int(self.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])][:k]


# --------------------------------------------------------------------------- loading
def _source_path(settings: Settings) -> Path:
    return catalog.text_source(settings)


def latest_snapshot(path: Path, with_vectors: bool = False) -> pd.DataFrame:
    """Rows of the newest snapshot of ``customer_text.parquet`` (ids, and vectors if asked)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    stamps = pq.read_table(path, columns=["event_timestamp"]).column("event_timestamp")
    if len(stamps) == 0:
        return pd.DataFrame({ENTITY_KEY: pd.Series([], dtype=np.int64)})
    newest = pc.max(stamps)
    columns = [ENTITY_KEY, "text_embedding"] if with_vectors else [ENTITY_KEY]
    table = pq.read_table(path, columns=columns, filters=[("event_timestamp", "==", newest)])
    return table.to_pandas()


def _stack(values: Sequence[Sized | None], dim: int | None = None) -> np.ndarray:
    """Feast/pandas list values -> (n, dim) float32; missing values become zero rows."""
    present = [v for v in values if v is not None and len(v)]
    width = dim or (len(present[0]) if present else 0)
    out = np.zeros((len(values), width), np.float32)
    for row, value in enumerate(values):
        if value is not None and len(value) == width:
            out[row] = np.asarray(value, np.float32)
    return out


def _online_vectors(settings: Settings, ids: np.ndarray, chunk: int = 5_000) -> np.ndarray | None:
    """Vectors from the online store, or None when it has none (not materialised)."""
    if settings.profile == "local" and not catalog.online_store_db(settings).exists():
        return None  # never materialised; skip opening Feast
    from store.repo import get_store

    try:
        store = get_store(settings)
        rows: list[Sized | None] = []
        for start in range(0, len(ids), chunk):
            response = store.get_online_features(
                features=[FEATURE_REF],
                entity_rows=[{ENTITY_KEY: int(i)} for i in ids[start : start + chunk]],
            ).to_dict()
            rows.extend(response["text_embedding"])
    except PersonaError:
        raise
    except Exception as exc:  # an unapplied registry or a missing table both mean "not materialised"
        log.info("online store not readable (%s)", exc)
        return None
    if not any(v is not None for v in rows):
        return None
    return _stack(rows)


def load_index(settings: Settings) -> SimilarityIndex:
    """The similarity index of the newest snapshot (cached as .npy keyed by the source's mtime).

    Raises:
        PersonaError: when ``persona embed`` has not run yet.
    """
    path = _source_path(settings)
    if not path.exists():
        raise PersonaError("no text features yet; run `persona embed` first")
    cache_dir = catalog.similarity_cache(settings)
    stem = f"index-{path.stat().st_mtime_ns}"
    ids_file, vectors_file = cache_dir / f"{stem}.ids.npy", cache_dir / f"{stem}.vectors.npy"
    if ids_file.exists() and vectors_file.exists():
        return SimilarityIndex(np.load(ids_file), np.load(vectors_file, mmap_mode=None))

    latest = latest_snapshot(path)
    ids = latest[ENTITY_KEY].to_numpy(np.int64)
    vectors = _online_vectors(settings, ids) if len(ids) else np.zeros((0, 0), np.float32)
    if vectors is None:
        log.warning("online store has no text vectors (not materialised yet): using the newest "
                    "offline snapshot of %s", path.name)
        latest = latest_snapshot(path, with_vectors=True)
        ids = latest[ENTITY_KEY].to_numpy(np.int64)
        vectors = _stack(list(latest["text_embedding"]))
    index = SimilarityIndex.from_arrays(ids, vectors) if len(ids) else SimilarityIndex(
        np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("index-*.npy"):
        old.unlink(missing_ok=True)
    np.save(ids_file, index.ids)
    np.save(vectors_file, index.matrix)
    return index


def similar_customers(settings: Settings, customer_id: int, k: int = 10) -> list[Neighbour]:
    """The ``k`` customers whose recent review texts are most similar to this customer's.

    The customer itself is excluded from the answer.

    Raises:
        PersonaError: for an unknown customer or one without review text in the last 365 days.
    """
    index = load_index(settings)
    if customer_id in index:
        return index.query(int(customer_id), k)
    known = latest_snapshot(_source_path(settings))
    if customer_id in set(known[ENTITY_KEY].tolist()):
        raise PersonaError(f"customer {customer_id} has no review text in the last 365 days; "
                           "pick a customer who wrote a review")
    raise PersonaError(f"unknown customer {customer_id}: not in the newest text snapshot; "
                       "check the id or run `persona embed` after ingesting their data")
