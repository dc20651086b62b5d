"""Per-customer text features as of each snapshot (pure: frames and arrays in, frames and arrays out).

For a snapshot ``t`` a customer's window holds the reviews with ``t - 365 days < event_timestamp <= t``
(the behavior view's convention, so ``review_count_365d`` there counts exactly these reviews):

- ``text_embedding``: mean of the window's review vectors (384 float32; all zeros without reviews).
  The mean of unit vectors is not renormalised: its length says how consistent the reviews are.
- ``sentiment_mean_365d``: mean review sentiment (NaN without reviews).
- ``text_pca_0`` .. ``text_pca_7``: the embedding projected on 8 principal components fitted on the
  training region only (NaN without reviews), for tree models.
- ``embedding_model``: identity of the encoder that made the vectors.
- ``text_projection_version``: version of the projection (hash of its components and the model).

Consecutive snapshots often share the same window, so means are computed once per distinct
window (:class:`TextWindows`) and rows point at them; the job writes the 384-float lists in chunks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pathlib import Path

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
WINDOW_DAYS = 365
RECENT_DAYS = 90
PCA_COMPONENTS = 8
EMBEDDING_DIM = 384

TEXT_FEATURES: dict[str, str] = {
    "text_embedding": "float_list",
    "sentiment_mean_365d": "float",
    **{f"text_pca_{i}": "float" for i in range(PCA_COMPONENTS)},
    "sentiment_mean_90d": "float",
    **{f"text_pca_90d_{i}": "float" for i in range(PCA_COMPONENTS)},
    "embedding_model": "str",
    "text_projection_version": "str",
}
"""Feature name -> kind (``float``, ``str``, ``float_list``) of the ``customer_text`` view."""

PCA_COLUMNS: list[str] = [f"text_pca_{i}" for i in range(PCA_COMPONENTS)]
RECENT_PCA_COLUMNS: list[str] = [f"text_pca_90d_{i}" for i in range(PCA_COMPONENTS)]
"""What a customer wrote in the last 90 days, in the same projection: recent complaints are
diluted in a 365-day mean, yet they are what announces churn before behavior shows it."""


def _utc_ns(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    stamps = pd.DatetimeIndex(values)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    return stamps.as_unit("ns").asi8


@dataclass(frozen=True)
class TextWindows:
    """Per-snapshot text windows.

    Attributes:
        frame: one row per entity snapshot, in the entities' order: ``customer_id``,
            ``event_timestamp``, ``review_count`` (reviews in the window), ``window`` (row of
            ``means``; -1 without reviews) and ``sentiment_mean_365d`` (float32, NaN without reviews).
        means: (n_windows, dim) float32 mean vector of each distinct non-empty window.
    """

    frame: pd.DataFrame
    means: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def embeddings(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """The ``text_embedding`` matrix for (some) rows: the window mean, zeros without reviews."""
        window = self.frame["window"].to_numpy()
        window = window if rows is None else window[rows]
        out = np.zeros((len(window), self.means.shape[1]), np.float32)
        has = window >= 0
        out[has] = self.means[window[has]]
        return out


def compute_text_windows(
    entities: pd.DataFrame,
    reviews: pd.DataFrame,
    vectors: np.ndarray,
    sentiment: np.ndarray,
    window_days: int = WINDOW_DAYS,
) -> TextWindows:
    """Aggregate review vectors and sentiment per customer over ``(t - window_days, t]``.

    Args:
        entities: ``customer_id``, ``event_timestamp`` (the snapshot rows to fill).
        reviews: ``customer_id``, ``event_timestamp`` and ``text_row`` (row of ``vectors`` and
            ``sentiment`` holding that review's text; identical texts share a row).
        vectors: (n_texts, dim) float32 text vectors.
        sentiment: (n_texts,) sentiment scores.
        window_days: window length in days.

    Returns:
        The windows; ``frame`` keeps the entities' row order.
    """
    vectors = np.asarray(vectors, np.float32)
    sentiment = np.asarray(sentiment, np.float64)
    dim = vectors.shape[1] if vectors.ndim == 2 else EMBEDDING_DIM
    entity_ids = entities[ENTITY_KEY].to_numpy(np.int64)
    t_ns = _utc_ns(entities[TIMESTAMP])
    review_ids = reviews[ENTITY_KEY].to_numpy(np.int64)
    review_ns = _utc_ns(reviews[TIMESTAMP])
    text_row = reviews["text_row"].to_numpy(np.int64)

    # One ordered key per (customer, time): customer code then dense rank of the time among
    # every time involved, so ordering is exact for any timestamps (1997 or today).
    codes = pd.Index(np.unique(np.concatenate([entity_ids, review_ids])))
    lo_ns = t_ns - np.int64(window_days) * 86_400 * 10**9
    ranks = np.unique(np.concatenate([review_ns, t_ns, lo_ns]))
    stride = np.int64(len(ranks) + 1)

    def key(ids: np.ndarray, ns: np.ndarray) -> np.ndarray:
        return codes.get_indexer(ids).astype(np.int64) * stride + np.searchsorted(ranks, ns)

    review_key = key(review_ids, review_ns)
    order = np.argsort(review_key, kind="stable")
    review_key = review_key[order]
    sorted_rows = text_row[order]
    hi = np.searchsorted(review_key, key(entity_ids, t_ns), side="right")
    lo = np.searchsorted(review_key, key(entity_ids, lo_ns), side="right")
    count = hi - lo

    sentiment_sum = np.concatenate([[0.0], np.cumsum(sentiment[sorted_rows])])
    with np.errstate(invalid="ignore", divide="ignore"):
        sentiment_mean = np.where(count > 0, (sentiment_sum[hi] - sentiment_sum[lo]) / count, np.nan)

    window = np.full(len(entities), -1, np.int64)
    has = count > 0
    means = np.zeros((0, dim), np.float32)
    if has.any():
        pairs, inverse = np.unique(np.stack([lo[has], hi[has]], axis=1), axis=0, return_inverse=True)
        window[has] = inverse.reshape(-1)
        stacked = np.concatenate([vectors[sorted_rows], np.zeros((1, dim), np.float32)])
        sums = np.add.reduceat(stacked, pairs.reshape(-1), axis=0, dtype=np.float64)[::2]
        means = (sums / (pairs[:, 1] - pairs[:, 0])[:, None]).astype(np.float32)

    frame = pd.DataFrame({
        ENTITY_KEY: entity_ids,
        TIMESTAMP: pd.DatetimeIndex(t_ns.view("datetime64[ns]"), tz="UTC"),
        "review_count": count.astype(np.int64),
        "window": window,
        "sentiment_mean_365d": sentiment_mean.astype(np.float32),
    })
    return TextWindows(frame=frame, means=means)


# --------------------------------------------------------------------------- projection
@dataclass(frozen=True)
class TextProjection:
    """A PCA projection of text embeddings.

    Attributes:
        mean: (dim,) centre subtracted before projecting.
        components: (k, dim) principal axes (sign fixed: largest loading positive).
        explained_variance_ratio: (k,) share of variance per component.
        model_identity: encoder whose vectors it was fitted on.
        fitted_rows: rows used for the fit.
        cutoff: latest snapshot time admitted to the fit (ISO string).
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    model_identity: str
    fitted_rows: int
    cutoff: str

    @property
    def version(self) -> str:
        """Short hash of the components, centre and model identity."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.components, np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.mean, np.float32).tobytes())
        digest.update(self.model_identity.encode())
        return f"pca{len(self.components)}-{digest.hexdigest()[:12]}"

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) vectors -> (n, k) float32 coordinates."""
        centred = np.asarray(vectors, np.float32) - self.mean
        return (centred @ self.components.T).astype(np.float32)

    def save(self, directory: Path) -> Path:
        """Write ``<directory>/<version>.npz`` (idempotent) and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.version}.npz"
        if not path.exists():
            tmp = directory / f".{self.version}.tmp.npz"
            np.savez(tmp, mean=self.mean, components=self.components,
                     explained_variance_ratio=self.explained_variance_ratio,
                     model_identity=np.array(self.model_identity), fitted_rows=np.array(self.fitted_rows),
                     cutoff=np.array(self.cutoff))
            tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> TextProjection:
        """Read a projection written by :meth:`save`."""
        with np.load(path) as data:
            return cls(mean=data["mean"], components=data["components"],
                       explained_variance_ratio=data["explained_variance_ratio"],
                       model_identity=str(data["model_identity"]), fitted_rows=int(data["fitted_rows"]),
                       cutoff=str(data["cutoff"]))


def projection_cutoff(snapshots: pd.DatetimeIndex | pd.Series, horizon_days: int) -> pd.Timestamp:
    """Last snapshot time that belongs to the training region: latest - horizon - 28 days."""
    latest = pd.DatetimeIndex(snapshots).max()
    return latest - pd.Timedelta(days=horizon_days + 28)


def fit_text_projection(
    vectors: np.ndarray,
    model_identity: str,
    cutoff: pd.Timestamp | None = None,
    weights: np.ndarray | None = None,
    n_components: int = PCA_COMPONENTS,
) -> TextProjection:
    """Fit PCA (eigenvectors of the weighted covariance) on embedding rows.

    Args:
        vectors: (n, dim) embeddings of training snapshot rows that have text (or distinct
            rows with ``weights`` = how many snapshot rows each stands for).
        model_identity: encoder identity (part of the version).
        cutoff: the training cutoff used to pick the rows (recorded only).
        weights: (n,) non-negative row weights; default 1.
        n_components: output dimensions.

    Returns:
        The projection; axes beyond the data's rank are zero.
    """
    vectors = np.asarray(vectors, np.float64)
    dim = vectors.shape[1] if vectors.ndim == 2 else EMBEDDING_DIM
    w = np.ones(len(vectors)) if weights is None else np.asarray(weights, np.float64)
    total_weight = float(w.sum())
    mean = (w @ vectors) / total_weight if total_weight > 0 else np.zeros(dim)
    components = np.zeros((n_components, dim))
    ratio = np.zeros(n_components)
    if total_weight > 0 and len(vectors) > 1:
        centred = vectors - mean
        covariance = (centred * w[:, None]).T @ centred / total_weight
        from threadpoolctl import threadpool_limits

        # One BLAS thread: at 384 x 384 threading only adds (badly, on a busy box) overhead.
        with threadpool_limits(limits=1):
            eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues = np.clip(eigenvalues[order], 0.0, None)
        values = eigenvalues[:n_components]
        k = min(n_components, int((values > 1e-12 * max(float(values.max()), 1e-300)).sum()))
        components[:k] = eigenvectors[:, order[:k]].T
        trace = float(eigenvalues.sum())
        if trace > 0:
            ratio[:k] = values[:k] / trace
        signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
    return TextProjection(
        mean=mean.astype(np.float32), components=components.astype(np.float32),
        explained_variance_ratio=ratio.astype(np.float32), model_identity=model_identity,
        fitted_rows=int(round(total_weight)),
        cutoff="" if cutoff is None else pd.Timestamp(cutoff).isoformat(),
    )


def fit_windows_projection(
    windows: TextWindows, model_identity: str, cutoff: pd.Timestamp | None
) -> TextProjection:
    """Fit the projection on the rows of :func:`training_rows`, each distinct window weighted by its rows."""
    rows = training_rows(windows, cutoff) if cutoff is not None else np.zeros(0, np.int64)
    distinct, counts = np.unique(windows.frame["window"].to_numpy()[rows], return_counts=True)
    return fit_text_projection(windows.means[distinct], model_identity, cutoff, weights=counts)


def training_rows(windows: TextWindows, cutoff: pd.Timestamp) -> np.ndarray:
    """Row positions with text at snapshots ``<= cutoff``; all rows with text when none qualify."""
    frame = windows.frame
    has = frame["window"].to_numpy() >= 0
    in_training = has & (frame[TIMESTAMP] <= cutoff).to_numpy()
    return np.flatnonzero(in_training if in_training.any() else has)


def project_windows(windows: TextWindows, projection: TextProjection) -> pd.DataFrame:
    """``text_pca_*`` columns for every row of ``windows.frame`` (NaN without reviews)."""
    coords = projection.transform(windows.means) if len(windows.means) else np.zeros((0, len(PCA_COLUMNS)))
    window = windows.frame["window"].to_numpy()
    out = np.full((len(window), len(PCA_COLUMNS)), np.nan, np.float32)
    has = window >= 0
    out[has] = coords[window[has], : len(PCA_COLUMNS)]
    return pd.DataFrame(out, columns=PCA_COLUMNS, index=windows.frame.index)


def recent_columns(
    recent: TextWindows | None, projection: TextProjection, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """``sentiment_mean_90d`` and ``text_pca_90d_*`` values (NaN without recent reviews or windows)."""
    if recent is None:
        return np.full(rows, np.nan, np.float32), np.full((rows, PCA_COMPONENTS), np.nan, np.float32)
    sentiment = recent.frame["sentiment_mean_365d"].to_numpy(np.float32)  # the window's sentiment mean
    return sentiment, project_windows(recent, projection).to_numpy(np.float32)


def build_text_features(
    windows: TextWindows,
    projection: TextProjection,
    model_identity: str,
    created: pd.Timestamp,
    recent: TextWindows | None = None,
) -> pd.DataFrame:
    """The ``customer_text`` rows as one frame (fine for small data; the job streams large data).

    Returns:
        ``customer_id``, ``event_timestamp``, ``created_timestamp`` and every name of
        :data:`TEXT_FEATURES`, ``text_embedding`` as a list of float32 per row.
    """
    frame = windows.frame[[ENTITY_KEY, TIMESTAMP]].copy()
    frame["created_timestamp"] = created
    frame["text_embedding"] = list(windows.embeddings())
    frame["sentiment_mean_365d"] = windows.frame["sentiment_mean_365d"].to_numpy(np.float32)
    frame[PCA_COLUMNS] = project_windows(windows, projection).to_numpy()
    recent_sentiment, recent_pca = recent_columns(recent, projection, len(frame))
    frame["sentiment_mean_90d"] = recent_sentiment
    frame[RECENT_PCA_COLUMNS] = recent_pca
    frame["embedding_model"] = model_identity
    frame["text_projection_version"] = projection.version
    return frame
