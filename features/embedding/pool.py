"""Texts embedded by the engine's pool of encoder workers (``persona embed`` on the Ray engine).

Each worker builds its encoder once from an unloaded copy of the job's encoder (same identity,
its own thread count) and embeds whole chunks of :attr:`chunk_texts` texts: the fast encoder
sorts and pads texts per chunk, so a chunk embedded alone gives the vectors it gives inside the
whole list, and the pool's vectors equal the local encoder's bit for bit. A worker whose encoder
has another identity (another CPU without bf16, another package version) would put vectors of
another model under this one's cache keys: that is refused.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import PersonaError
from features.embedding.encoder import EMBEDDING_DIM, Encoded, Progress, TextEncoder

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.pool import PoolPlan
    from engine.runner import Engine


def chunks_of(encoder: TextEncoder, texts: Sequence[str]) -> list[list[str]]:
    """``texts`` cut where the encoder cuts them (one chunk when it does not say: batch-invariant)."""
    size = int(getattr(encoder, "chunk_texts", 0) or max(len(texts), 1))
    return [list(texts[start : start + size]) for start in range(0, len(texts), size)]


def start_encoder(spec: Any, plan: PoolPlan) -> TextEncoder:
    """The worker's encoder: a fresh copy of ``spec`` with the plan's threads (``spec`` itself if it cannot copy)."""
    fresh = getattr(spec, "fresh", None)
    return fresh(plan.threads or None) if callable(fresh) else spec


def encode_chunk(encoder: TextEncoder, texts: list[str]) -> dict[str, np.ndarray]:
    """One chunk's vectors, truncation flags and the identity that made them."""
    encoded = encoder.encode([str(t) for t in texts])
    return {"vectors": encoded.vectors, "truncated": encoded.truncated,
            "identity": np.full(len(texts), encoder.identity)}


def encode_on_engine(engine: Engine, encoder: TextEncoder, texts: Sequence[str], progress: Progress | None = None
                     ) -> Encoded:
    """``encoder.encode(texts)``, chunk by chunk on ``engine``'s pool of encoder workers.

    Raises:
        PersonaError: a worker's encoder has another identity than ``encoder`` (names both).
    """
    if not texts:
        return Encoded(np.zeros((0, EMBEDDING_DIM), np.float32), np.zeros(0, bool))
    fresh = getattr(encoder, "fresh", None)
    spec = fresh() if callable(fresh) else encoder  # unloaded: what travels to the workers
    reported = 0

    def advance(done: float, total: float | None = None, note: str = "") -> None:
        nonlocal reported
        if progress and done > reported:
            progress(int(done) - reported)
        reported = max(reported, int(done))

    outputs = engine.map_batches(partial(start_encoder, spec), encode_chunk, chunks_of(encoder, texts),
                                 on_progress=advance, uses_gpu=bool(getattr(encoder, "uses_gpu", False)))
    others = sorted({str(i) for out in outputs for i in out["identity"]} - {encoder.identity})
    if others:
        raise PersonaError(
            f"the {engine.name} engine's encoder workers embed with {others[0]}, not {encoder.identity}; "
            "install the same Persona and model package on every node (or run with PERSONA_ENGINE=local)"
        )
    vectors = np.concatenate([out["vectors"] for out in outputs]).astype(np.float32, copy=False)
    truncated = np.concatenate([out["truncated"] for out in outputs]).astype(bool, copy=False)
    if len(vectors) != len(texts):
        raise RuntimeError(f"the encoder workers returned {len(vectors)} vectors for {len(texts)} texts")
    return Encoded(vectors, truncated)


__all__ = ["chunks_of", "encode_chunk", "encode_on_engine", "start_encoder"]
