"""Personas: KMeans segments, readable names from what distinguishes them, and card data (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from model.preprocess import nearest_center

# (column, direction, noun): a segment far from the population in that direction earns the noun.
TRAITS: tuple[tuple[str, int, str], ...] = (
    ("spend_365d", +1, "high spenders"),
    ("discount_share_365d", +1, "bargain hunters"),
    ("return_share_365d", +1, "serial returners"),
    ("orders_365d", +1, "frequent buyers"),
    ("avg_order_value_365d", +1, "big-basket buyers"),
    ("tenure_days", -1, "newcomers"),
    ("sentiment_mean_365d", -1, "critics"),
    ("mean_rating_365d", -1, "critics"),
    ("sessions_90d", +1, "browsers"),
    ("sentiment_mean_365d", +1, "fans"),
    ("mean_rating_365d", +1, "satisfied customers"),
    ("tenure_days", +1, "long-time customers"),
    ("spend_365d", -1, "light buyers"),
    ("orders_365d", -1, "occasional buyers"),
)
CARD_STATS = (
    "recency_days",
    "tenure_days",
    "orders_365d",
    "spend_365d",
    "avg_order_value_365d",
    "discount_share_365d",
    "return_share_365d",
    "sessions_90d",
    "mean_rating_365d",
    "sentiment_mean_365d",
)
_LOG_TRAITS = ("spend_", "orders_", "sessions_", "avg_order_value", "tenure_days", "recency_days")


@dataclass(frozen=True)
class PersonaFit:
    """Chosen clustering: centers ordered by segment size (segment 0 is the largest).

    Attributes:
        centers: (k, d) centers in the standardized clustering space.
        k: number of segments.
        silhouettes: silhouette score per k tried.
    """

    centers: np.ndarray
    k: int
    silhouettes: dict[int, float]


def fit_personas(
    matrix: np.ndarray,
    k_min: int,
    k_max: int,
    seed: int = 7,
    silhouette_sample: int = 4000,
    prefer_k: int | None = None,
    prefer_margin: float = 0.0,
) -> PersonaFit:
    """KMeans for each k in ``[k_min, k_max]``; keep the k with the best silhouette.

    With ``prefer_k`` (the champion's k) that k is kept unless the best silhouette beats it by more
    than ``prefer_margin``, so personas stay comparable across retrains.

    Args:
        matrix: standardized clustering matrix (rows = customers).
        k_min: smallest k tried (>= 2).
        k_max: largest k tried.
        seed: random seed for KMeans and the silhouette sample.
        silhouette_sample: rows used to score silhouette.
        prefer_k: the k to keep unless clearly beaten (None: the best silhouette wins).
        prefer_margin: silhouette gain needed to leave ``prefer_k``.

    Raises:
        ValueError: with fewer rows than ``k_min + 1``.
    """
    n = len(matrix)
    if n <= k_min:
        raise ValueError(f"need more than {k_min} rows to cluster personas, got {n}")
    rng = np.random.default_rng(seed)
    sample = matrix[rng.choice(n, size=min(n, silhouette_sample), replace=False)]
    best: tuple[float, KMeans] | None = None
    preferred: tuple[float, KMeans] | None = None
    scores: dict[int, float] = {}
    for k in range(k_min, min(k_max, n - 1) + 1):
        with threadpool_limits(limits=1 if n < 50_000 else None):
            km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(matrix)
        labels = nearest_center(sample, km.cluster_centers_)
        score = (
            float(silhouette_score(sample, labels, random_state=seed)) if len(np.unique(labels)) > 1 else -1.0
        )
        scores[k] = score
        if best is None or score > best[0]:
            best = (score, km)
        if k == prefer_k:
            preferred = (score, km)
    assert best is not None
    km = preferred[1] if preferred is not None and best[0] - preferred[0] <= prefer_margin else best[1]
    sizes = np.bincount(nearest_center(matrix, km.cluster_centers_), minlength=km.n_clusters)
    order = np.argsort(-sizes, kind="stable")
    return PersonaFit(centers=km.cluster_centers_[order], k=km.n_clusters, silhouettes=scores)


def trait_scores(frame: pd.DataFrame, segments: np.ndarray) -> pd.DataFrame:
    """Standardized difference of each segment's mean from the population, per trait column.

    Count and amount columns are compared on log1p scale so one whale cannot name a segment.

    Returns:
        A frame indexed by segment with one column per trait column present.
    """
    cols = sorted({c for c, _, _ in TRAITS if c in frame.columns})
    data = {}
    for col in cols:
        values = pd.to_numeric(frame[col], errors="coerce").astype(float)
        if col.startswith(_LOG_TRAITS):
            values = np.log1p(values.clip(lower=0))
        std = values.std()
        mean = values.mean()
        by_seg = values.groupby(segments).mean()
        data[col] = (by_seg - mean) / std if std and np.isfinite(std) and std > 0 else by_seg * 0.0
    return pd.DataFrame(data).fillna(0.0)


def _qualifier(churn_ratio: float, recency_z: float) -> str:
    if np.isfinite(churn_ratio):
        if churn_ratio >= 1.3 and recency_z > 0.8:
            return "lapsed"
        if churn_ratio >= 1.2:
            return "at-risk"
        if churn_ratio <= 0.8:
            return "loyal"
        return "steady"
    if recency_z > 0.8:
        return "lapsed"
    return "active" if recency_z < -0.5 else "steady"


def name_segments(
    traits: pd.DataFrame,
    churn_rate: pd.Series | None = None,
    recency_z: pd.Series | None = None,
    min_z: float = 0.25,
) -> dict[int, str]:
    """Readable, unique names such as ``"loyal high spenders"`` or ``"at-risk bargain hunters"``.

    The qualifier comes from churn relative to the population (loyal / steady / at-risk /
    lapsed); the noun from the segment's strongest trait (see ``TRAITS``).

    Args:
        traits: output of :func:`trait_scores` (segments x trait columns).
        churn_rate: observed churn rate per segment (optional).
        recency_z: standardized recency per segment (optional).
        min_z: a trait must exceed this to name a segment (else "regulars").
    """
    overall = float(churn_rate.mean()) if churn_rate is not None and len(churn_rate) else float("nan")
    names: dict[int, str] = {}
    used: set[str] = set()
    for seg in traits.index:
        ratio = (
            float(churn_rate.get(seg, np.nan)) / overall
            if churn_rate is not None and overall > 0
            else float("nan")
        )
        rz = float(recency_z.get(seg, 0.0)) if recency_z is not None else 0.0
        qualifier = _qualifier(ratio, rz)
        ranked = sorted(
            (
                (float(traits.at[seg, col]) * sign, noun)
                for col, sign, noun in TRAITS
                if col in traits.columns
            ),
            reverse=True,
        )
        nouns = [noun for z, noun in ranked if z > min_z] + ["regulars"]
        name = next((f"{qualifier} {noun}" for noun in nouns if f"{qualifier} {noun}" not in used), None)
        if name is None:
            base, i = f"{qualifier} {nouns[0]}", 2
            while f"{base} {i}" in used:
                i += 1
            name = f"{base} {i}"
        used.add(name)
        names[int(seg)] = name
    return names


def segment_terms(
    reviews: pd.DataFrame,
    segment_of: pd.Series,
    top_n: int = 8,
    max_reviews_per_segment: int = 4000,
    seed: int = 7,
) -> dict[int, list[str]]:
    """Terms that mark each segment's reviews.

    Each review is a TF-IDF vector; a term's score for a segment is its mean weight in the
    segment's reviews minus its mean weight in all other reviews, so words every segment uses
    ("order", "time") drop out and what sets the segment apart rises.

    Args:
        reviews: rows with ``customer_id`` and ``text``.
        segment_of: segment per customer (index ``customer_id``).
        top_n: terms per segment.
        max_reviews_per_segment: reviews sampled per segment (bounds time on large data).
        seed: sampling seed.

    Returns:
        Segment -> terms, most distinctive first (empty lists when there are no reviews).
    """
    out: dict[int, list[str]] = {int(s): [] for s in pd.unique(segment_of)}
    if reviews.empty or segment_of.empty:
        return out
    joined = reviews[["customer_id", "text"]].merge(
        segment_of.rename("segment"), left_on="customer_id", right_index=True, how="inner"
    )
    joined = joined[joined["text"].notna()]
    if joined.empty:
        return out
    parts = [
        group.sample(max_reviews_per_segment, random_state=seed)
        if len(group) > max_reviews_per_segment
        else group
        for _, group in joined.groupby("segment")
    ]
    sample = pd.concat(parts, ignore_index=True)
    try:
        vec = TfidfVectorizer(
            stop_words="english", sublinear_tf=True, min_df=2, token_pattern=r"(?u)\b[a-zA-Z]{3,}\b"
        )
        tfidf = vec.fit_transform(sample["text"].astype(str))
    except ValueError:  # only stop words, or too few reviews for min_df
        return out
    vocab = np.asarray(vec.get_feature_names_out())
    segments = sample["segment"].to_numpy()
    total = np.asarray(tfidf.sum(axis=0)).ravel()
    for seg in np.unique(segments):
        mask = segments == seg
        inside = np.asarray(tfidf[mask].sum(axis=0)).ravel()
        rest = max(int((~mask).sum()), 1)
        score = inside / mask.sum() - (total - inside) / rest
        top = np.argsort(-score, kind="stable")[:top_n]
        out[int(seg)] = [str(vocab[i]) for i in top if score[i] > 0]
    return out


def persona_cards(
    frame: pd.DataFrame,
    segments: np.ndarray,
    names: dict[int, str],
    terms: dict[int, list[str]],
    traits: pd.DataFrame,
) -> list[dict]:
    """One card per segment: name, size, key statistics, churn, value and review terms.

    Args:
        frame: rows described (features, and optionally ``churned``, ``future_spend``,
            ``churn_probability``, ``expected_spend``, ``action``).
        segments: segment per row.
        names: segment -> persona name.
        terms: segment -> TF-IDF terms.
        traits: segment -> standardized trait differences (see :func:`trait_scores`).

    Returns:
        JSON-ready dicts ordered by segment id.
    """
    cards = []
    seg_series = pd.Series(segments, index=frame.index)
    total = max(len(frame), 1)
    for seg in sorted(names):
        rows = frame[seg_series == seg]
        card: dict = {
            "segment": int(seg),
            "name": names[seg],
            "size": int(len(rows)),
            "share": round(len(rows) / total, 4),
            "stats": {c: _round(rows[c].mean()) for c in CARD_STATS if c in rows.columns},
            "churn_rate": _round(rows["churned"].mean()) if "churned" in rows else None,
            "predicted_churn": _round(rows["churn_probability"].mean())
            if "churn_probability" in rows
            else None,
            "future_spend": _round(rows["future_spend"].mean()) if "future_spend" in rows else None,
            "expected_spend": _round(rows["expected_spend"].mean()) if "expected_spend" in rows else None,
            "terms": terms.get(seg, []),
            "distinguishing": [],
        }
        if seg in traits.index:
            z = traits.loc[seg].sort_values(key=np.abs, ascending=False)
            card["distinguishing"] = [{"feature": c, "z": _round(v)} for c, v in z.head(3).items()]
        if "action" in rows and len(rows):
            card["actions"] = {str(k): int(v) for k, v in rows["action"].value_counts().items()}
        cards.append(card)
    return cards


def cards_with_uplift(cards: list[dict], segments: np.ndarray, uplift: pd.DataFrame,
                      offers: tuple[str, ...]) -> list[dict]:
    """Each card with ``uplift``: offer -> its customers' mean expected conversion and spend uplift.

    Tells a marketer which offer moves which persona (and which persona a contact puts off),
    from the uplift champion's predictions on the same rows the cards describe.

    Args:
        cards: :func:`persona_cards` output.
        segments: segment per row of ``uplift``.
        uplift: ``uplift_<outcome>_<offer>`` columns (:class:`model.uplift.UpliftPredictor`), one row per customer.
        offers: offers to show.
    """
    by_segment = uplift.reset_index(drop=True).groupby(pd.Series(segments, name="segment"))
    means = by_segment.mean(numeric_only=True)
    out = []
    for card in cards:
        seg = card["segment"]
        row = means.loc[seg] if seg in means.index else None
        card = {**card, "uplift": {
            o: {outcome: _round(row[f"uplift_{outcome}_{o}"]) if row is not None else None
                for outcome in ("conversion", "spend")} for o in offers}}
        out.append(card)
    return out


def _round(value: object, digits: int = 4) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(f, digits) if np.isfinite(f) else None
