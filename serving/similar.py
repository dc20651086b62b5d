"""Customers with similar review texts, for ``/similar``: the exact index, reloaded when the text source changes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from core.settings import Settings
    from features.embedding.similarity import SimilarityIndex


class SimilarityUnavailable(RuntimeError):
    """Similarity search cannot answer; ``status`` is 501 (not installed) or 503 (no index yet)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnknownCustomer(LookupError):
    """A customer the similarity index does not hold (message says why)."""


class SimilarCustomers:
    """The similarity index of one home, loaded lazily and again whenever the text source file changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index_now: SimilarityIndex | None = None
        self._stamp: tuple[int, float] | None = None
        self._lock = threading.Lock()

    def query(self, customer_id: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` customers with the most similar review texts.

        Raises:
            SimilarityUnavailable: 501 without the similarity module, 503 without an index.
            UnknownCustomer: the customer is not in the index (message says why).
        """
        index = self._index()
        if customer_id not in index:
            raise UnknownCustomer(self._why_not_indexed(customer_id))
        return [(n.customer_id, n.score) for n in index.query(int(customer_id), k)]

    def _index(self) -> SimilarityIndex:
        try:
            from features.embedding import similarity
        except ImportError as exc:
            raise SimilarityUnavailable(f"similarity search is not installed ({exc})", 501) from None
        path = catalog.text_source(self.settings)
        with self._lock:
            try:
                stat = path.stat()
            except FileNotFoundError:
                raise SimilarityUnavailable("no text features yet; run `persona embed` first", 503) from None
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._index_now is None or stamp != self._stamp:
                try:
                    self._index_now = similarity.load_index(self.settings)
                except PersonaError as exc:
                    raise SimilarityUnavailable(str(exc), 503) from None
                self._stamp = stamp
            if len(self._index_now) == 0:
                raise SimilarityUnavailable(
                    "the similarity index is empty: no customer has review text; "
                    "run `persona embed` after ingesting reviews",
                    503,
                )
            return self._index_now

    def _why_not_indexed(self, customer_id: int) -> str:
        from features.embedding.similarity import latest_snapshot

        try:
            known = set(
                latest_snapshot(catalog.text_source(self.settings))["customer_id"].tolist()
            )
        except Exception:
            known = set()
        if customer_id in known:
            return f"customer {customer_id} has no review text in the last 365 days"
        return f"unknown customer {customer_id}: not in the newest text snapshot"


__all__ = ["SimilarCustomers", "SimilarityUnavailable", "UnknownCustomer"]
