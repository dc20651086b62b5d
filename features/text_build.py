"""The ``persona embed`` job: embed new review texts and write the ``customer_text`` offline source.

Steps (I/O at the edges, the aggregation is :mod:`features.transforms.text`):

1. read the ingested reviews (``catalog.raw_table``); normalise texts; refuse empty ones
   (ingest quarantines them);
2. deduplicate, look every distinct text up in the hash-keyed cache of the current model
   identity and embed only the texts not cached (progress reported in texts, with texts/s);
3. score sentiment (VADER, its own cache);
4. aggregate per customer as of every entity snapshot of the behavior view and project with the
   pinned 8-dim PCA (:mod:`features.text_version`); only the first embed, an explicit refit or a
   new encoder fits one (on the training region only), a new version saved beside the others;
5. write the ``customer_text`` source (``catalog.text_source``) in chunks, atomically, unless
   its content fingerprint is unchanged (then nothing is rewritten and Feast sees no new rows).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import catalog
from core.errors import PersonaError
from core.progress import silent
from engine.runner import open_engine_on_first_use
from features.embedding.cache import VectorCache, normalize_text, text_key
from features.embedding.encoder import EMBEDDING_DIM, TextEncoder, default_encoder
from features.embedding.pool import encode_on_engine
from features.embedding.sentiment import SentimentScorer
from features.text_version import SOURCE_VERSION_METADATA, choose_projection, pin
from features.transforms.text import (
    ENTITY_KEY,
    PCA_COLUMNS,
    RECENT_DAYS,
    RECENT_PCA_COLUMNS,
    TEXT_FEATURES,
    TIMESTAMP,
    TextProjection,
    TextWindows,
    compute_text_windows,
    project_windows,
    recent_columns,
)

if TYPE_CHECKING:
    from core.progress import ProgressEvent
    from core.settings import Settings
    from engine.runner import Engine

log = logging.getLogger(__name__)

_FINGERPRINT_KEY = b"persona.text_fingerprint"
_CHUNK_ROWS = 100_000


def text_parquet_options(schema: pa.Schema) -> dict:
    """How ``customer_text.parquet`` is encoded: the values read back are the same whatever the options.

    The 384 floats of ``text_embedding`` are byte-stream split then zstd-compressed (a dictionary
    of distinct floats does not pay for itself: it overflows and falls back to plain pages); the
    other columns keep their dictionaries. About 2.5x smaller than the default snappy pages.
    """
    return {"compression": "zstd", "use_dictionary": [f.name for f in schema if f.name != "text_embedding"],
            "use_byte_stream_split": ["text_embedding.list.element"]}


@dataclass(frozen=True)
class EmbedReport:
    """What ``persona embed`` did.

    Attributes:
        texts_seen: non-empty review texts read.
        unique_texts: distinct normalised texts among them.
        new_embedded: distinct texts embedded in this run.
        cache_hits: distinct texts found in the cache.
        refused_empty: empty/whitespace texts refused (not embedded).
        truncated: newly embedded texts longer than the model's 256-token window.
        invalidated: cached vectors of another model identity deleted.
        embed_seconds: time spent in the encoder.
        rows_written: rows of ``customer_text.parquet`` (0 when it was already up to date).
        rows_total: rows the file holds.
        model_identity: encoder identity that made the vectors.
        projection_version: version of the PCA projection.
        path: the offline source written.
        projection_refitted: why a new projection was fitted this run ("" when the pinned or
            requested one was reused).
    """

    texts_seen: int
    unique_texts: int
    new_embedded: int
    cache_hits: int
    refused_empty: int
    truncated: int
    invalidated: int
    embed_seconds: float
    rows_written: int
    rows_total: int
    model_identity: str
    projection_version: str
    path: Path
    projection_refitted: str = ""

    @property
    def texts_per_second(self) -> float:
        """Encoder throughput of this run (0 when nothing was embedded)."""
        return self.new_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the CLI."""
        extra = []
        if self.refused_empty:
            extra.append(f"{self.refused_empty:,} empty refused")
        if self.truncated:
            extra.append(f"{self.truncated:,} truncated at 256 tokens")
        if self.invalidated:
            extra.append(f"{self.invalidated:,} vectors of another model invalidated")
        written = f"{self.rows_written:,} rows written" if self.rows_written else (
            f"{self.rows_total:,} rows up to date")
        return (
            f"embed: {self.texts_seen:,} texts seen ({self.unique_texts:,} distinct), "
            f"{self.new_embedded:,} new embedded, {self.cache_hits:,} cache hits, "
            f"{self.texts_per_second:,.0f} texts/s, {written}"
            + (f", {', '.join(extra)}" if extra else "")
            + f"; model {self.model_identity}; projection {self.projection_version}"
            + (f" (new: {self.projection_refitted})" if self.projection_refitted else " (pinned)")
        )


def read_reviews(settings: Settings) -> pd.DataFrame:
    """Ingested reviews (customer_id, event_timestamp, text).

    Raises:
        PersonaError: when no reviews were ingested.
    """
    path = catalog.raw_table(settings, "reviews")
    if not path.exists():
        raise PersonaError("no reviews ingested yet; run `persona ingest --reviews FILE` first")
    reviews = pd.read_parquet(path, columns=[ENTITY_KEY, TIMESTAMP, "text"])
    reviews[TIMESTAMP] = pd.to_datetime(reviews[TIMESTAMP], utc=True)
    return reviews


def distinct_texts(texts: pd.Series) -> tuple[np.ndarray, list[str], int]:
    """Normalise texts and map each to a distinct normalised text.

    Returns:
        (row of each text in the distinct list, -1 for empty; the distinct normalised texts;
        number of empty texts).
    """
    raw_codes, raw_uniques = pd.factorize(texts.fillna("").astype(str), sort=False)
    normalised = pd.Index([normalize_text(t) for t in raw_uniques])
    norm_codes, uniques = pd.factorize(normalised, sort=False)
    per_raw = np.asarray(norm_codes, np.int64)
    empty_unique = np.flatnonzero(uniques == "")
    text_row = per_raw[raw_codes] if len(raw_codes) else np.zeros(0, np.int64)
    keep = np.ones(len(uniques), bool)
    keep[empty_unique] = False
    remap = np.cumsum(keep) - 1
    text_row = np.where(keep[text_row], remap[text_row], -1) if len(text_row) else text_row
    return text_row, [str(u) for u in uniques[keep]], int((text_row == -1).sum())


def embed_texts(
    texts: list[str], encoder: TextEncoder, cache: VectorCache, on_progress: ProgressEvent = silent,
    engine: Engine | None = None,
) -> tuple[np.ndarray, int, int, float]:
    """Vectors for distinct normalised texts, embedding only the ones not cached.

    Args:
        texts: distinct normalised texts.
        encoder: embeds the texts the cache lacks.
        cache: vectors of the encoder's identity, keyed by text hash.
        on_progress: told while the encoder is prepared, then texts embedded of those to embed
            (the note carries the throughput).
        engine: where the encoder runs (default: here; the Ray engine runs a pool of encoder
            actors, :mod:`features.embedding.pool`).

    Returns:
        (vectors, newly embedded, truncated among them, seconds in the encoder).
    """
    keys = [text_key(t, cache.identity) for t in texts]
    found = cache.lookup(keys)
    vectors = found.vectors
    missing = np.flatnonzero(~found.found)
    if not len(missing):
        return vectors, 0, 0, 0.0
    todo = [texts[i] for i in missing]
    warm_up = getattr(encoder, "warm_up", None)
    if callable(warm_up):  # export (first run only) and compile, outside the throughput measurement
        on_progress(0, len(todo), "preparing the encoder (the first run exports it to ONNX)")
        warm_up()
    started = time.perf_counter()
    done = 0

    def advance(finished: int) -> None:
        nonlocal done
        done += finished
        rate = done / max(time.perf_counter() - started, 1e-9)
        on_progress(done, len(todo), f"embedding reviews, {rate:,.0f} texts/s")

    on_progress(0, len(todo), "embedding reviews")
    if engine is None or engine.name == "local":
        encoded = encoder.encode(todo, progress=advance)
    else:
        encoded = encode_on_engine(engine, encoder, todo, advance)
    seconds = time.perf_counter() - started
    vectors[missing] = encoded.vectors
    cache.add([keys[i] for i in missing], encoded.vectors)
    return vectors, len(missing), int(encoded.truncated.sum()), seconds


def score_sentiment(texts: list[str], cache: VectorCache, scorer: SentimentScorer) -> np.ndarray:
    """Sentiment of distinct normalised texts, scoring only the ones not cached."""
    keys = [text_key(t, cache.identity) for t in texts]
    found = cache.lookup(keys)
    scores = found.vectors[:, 0].copy()
    missing = np.flatnonzero(~found.found)
    if len(missing):
        new = scorer.score([texts[i] for i in missing])
        scores[missing] = new
        cache.add([keys[i] for i in missing], new.reshape(-1, 1))
    return scores


def _fingerprint(windows: TextWindows, identity: str, projection: TextProjection) -> str:
    # The schema is part of the fingerprint: a new feature column means the file must be rewritten.
    digest = hashlib.sha256(f"{identity}\n{projection.version}\n{sorted(TEXT_FEATURES)}\n".encode())
    frame = windows.frame[[ENTITY_KEY, TIMESTAMP, "window", "sentiment_mean_365d"]]
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(np.ascontiguousarray(windows.means).tobytes())
    return digest.hexdigest()


def _existing_fingerprint(path: Path) -> tuple[str | None, int]:
    if not path.exists():
        return None, 0
    meta = pq.ParquetFile(path)
    value = (meta.schema_arrow.metadata or {}).get(_FINGERPRINT_KEY)
    return (value.decode() if value else None), meta.metadata.num_rows


def text_schema(fingerprint: str | None = None, version: str | None = None) -> pa.Schema:
    """Arrow schema of ``customer_text.parquet`` (also of the empty source ``features build`` writes).

    ``version`` (the projection every row is in) is kept in the schema metadata, so readers learn
    it without scanning the rows (:func:`features.text_version.source_version`).
    """
    kinds = {"float": pa.float32(), "str": pa.string(), "float_list": pa.list_(pa.float32())}
    fields = [
        pa.field(ENTITY_KEY, pa.int64()),
        pa.field(TIMESTAMP, pa.timestamp("ns", tz="UTC")),
        pa.field("created_timestamp", pa.timestamp("ns", tz="UTC")),
    ] + [pa.field(name, kinds[kind]) for name, kind in TEXT_FEATURES.items()]
    metadata = {_FINGERPRINT_KEY: fingerprint.encode()} if fingerprint else {}
    if version:
        metadata[SOURCE_VERSION_METADATA] = version.encode()
    return pa.schema(fields, metadata=metadata or None)


def write_text_source(
    path: Path,
    windows: TextWindows,
    projection: TextProjection,
    identity: str,
    created: pd.Timestamp,
    fingerprint: str | None = None,
    recent: TextWindows | None = None,
) -> int:
    """Stream the ``customer_text`` rows to parquet in chunks, via a temporary file and rename.

    Returns:
        Rows written.
    """
    schema = text_schema(fingerprint, projection.version)
    frame = windows.frame
    pca = project_windows(windows, projection).to_numpy(np.float32)
    recent_sentiment, recent_pca = recent_columns(recent, projection, len(frame))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    created_ns = pd.Timestamp(created).tz_convert("UTC").as_unit("ns")
    with pq.ParquetWriter(tmp, schema, **text_parquet_options(schema)) as writer:
        for start in range(0, max(len(frame), 1), _CHUNK_ROWS):
            rows = slice(start, min(start + _CHUNK_ROWS, len(frame)))
            n = rows.stop - rows.start
            embeddings = windows.embeddings(rows)
            offsets = pa.array(np.arange(0, (n + 1) * EMBEDDING_DIM, EMBEDDING_DIM, dtype=np.int32))
            columns = {
                ENTITY_KEY: pa.array(frame[ENTITY_KEY].to_numpy(np.int64)[rows]),
                TIMESTAMP: pa.array(frame[TIMESTAMP].iloc[rows], pa.timestamp("ns", tz="UTC")),
                "created_timestamp": pa.array(np.full(n, created_ns.value, np.int64), pa.int64()).cast(
                    pa.timestamp("ns", tz="UTC")),
                "text_embedding": pa.ListArray.from_arrays(offsets, pa.array(embeddings.reshape(-1))),
                "sentiment_mean_365d": pa.array(frame["sentiment_mean_365d"].to_numpy(np.float32)[rows]),
                **{c: pa.array(pca[rows, i]) for i, c in enumerate(PCA_COLUMNS)},
                "sentiment_mean_90d": pa.array(recent_sentiment[rows]),
                **{c: pa.array(recent_pca[rows, i]) for i, c in enumerate(RECENT_PCA_COLUMNS)},
                "embedding_model": pa.array([identity] * n, pa.string()),
                "text_projection_version": pa.array([projection.version] * n, pa.string()),
            }
            writer.write_table(pa.table(columns, schema=schema))
    os.replace(tmp, path)
    return len(frame)


def default_entities(settings: Settings) -> pd.DataFrame:
    """The behavior view's entity snapshots (``features.build.entity_snapshots``)."""
    from features.build import entity_snapshots

    return entity_snapshots(settings)


def embed_reviews(
    settings: Settings,
    encoder: TextEncoder | None = None,
    entities: pd.DataFrame | None = None,
    on_progress: ProgressEvent = silent,
    refit_projection: bool = False,
    projection_version: str | None = None,
) -> EmbedReport:
    """Embed new review texts and write ``offline/customer_text.parquet``.

    Args:
        settings: Persona settings (home, snapshot cadence, horizon).
        encoder: the text encoder (default: the fast OpenVINO/ONNX encoder).
        entities: snapshot rows to fill (default: the behavior view's entity snapshots).
        on_progress: told how embedding the new texts advances (see :func:`embed_texts`).
        refit_projection: fit a new projection (a new version) instead of reusing the pinned one.
        projection_version: project with this stored version (what an older model was trained on).

    Returns:
        What was done (``.summary()`` is the CLI line).

    Raises:
        PersonaError: when no reviews (or no transactions, for the snapshot grid) were ingested,
            or ``projection_version`` is unknown or belongs to another embedding model.
    """
    if refit_projection and projection_version:
        raise PersonaError("--refit-projection and --projection exclude each other; pass one")
    reviews = read_reviews(settings)
    text_row, texts, refused = distinct_texts(reviews["text"])
    if refused:
        log.warning("refused %d empty or whitespace review texts (ingest should quarantine them)", refused)
    reviews = reviews.assign(text_row=text_row)[text_row >= 0]
    if entities is None:
        entities = default_entities(settings)

    encoder = encoder or default_encoder(settings)
    identity = encoder.identity
    cache = VectorCache(catalog.embedding_cache(settings), identity, EMBEDDING_DIM)
    invalidated = cache.invalidate_others()
    if invalidated:
        log.warning("embedding model changed to %s: %d cached vectors invalidated", identity, invalidated)
    with open_engine_on_first_use(settings) as engine:  # PERSONA_ENGINE=ray: new texts on encoder actors
        vectors, new, truncated, seconds = embed_texts(texts, encoder, cache, on_progress, engine)

    scorer = SentimentScorer()
    sentiment_cache = VectorCache(catalog.sentiment_cache(settings), scorer.identity, 1)
    sentiment_cache.invalidate_others()
    sentiment = score_sentiment(texts, sentiment_cache, scorer)

    windows = compute_text_windows(entities[[ENTITY_KEY, TIMESTAMP]], reviews, vectors, sentiment)
    recent = compute_text_windows(entities[[ENTITY_KEY, TIMESTAMP]], reviews, vectors, sentiment,
                                  window_days=RECENT_DAYS)
    projection, refitted = choose_projection(settings, windows, identity, refit_projection, projection_version)

    path = catalog.text_source(settings)
    fingerprint = _fingerprint(windows, identity, projection)
    existing, existing_rows = _existing_fingerprint(path)
    written = 0
    if existing != fingerprint:
        created = pd.Timestamp.now(tz="UTC")
        written = write_text_source(path, windows, projection, identity, created, fingerprint, recent=recent)
        if settings.profile == "prod":  # the prod offline store is Postgres: publish the same rows there
            from store.offline import write_source

            write_source(settings, catalog.TEXT_SOURCE, pq.read_table(path))
    pin(settings, projection)  # pinned once its rows are written: the next embed reuses it
    return EmbedReport(
        texts_seen=len(reviews), unique_texts=len(texts), new_embedded=new, cache_hits=len(texts) - new,
        refused_empty=refused, truncated=truncated, invalidated=invalidated, embed_seconds=seconds,
        rows_written=written, rows_total=written or existing_rows, model_identity=identity,
        projection_version=projection.version, path=path, projection_refitted=refitted,
    )
