"""Review sentiment, offline: VADER (``vaderSentiment``), a lexicon and rule-based scorer.

The score of a text is VADER's ``compound`` in [-1, 1] (positive above 0). VADER needs no
training and no download, handles negation, intensifiers, capitals, "!" and emoji, and knows
English only: text in other languages mostly scores 0 (neutral), which is the honest answer.
Its accuracy on the hand-labelled review sentences in ``tests/data/sentiment_labelled.csv`` is
checked by the tests and reported by the embedding benchmark (:func:`evaluate_accuracy`).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence


def sentiment_identity() -> str:
    """Method and version; part of the sentiment cache key."""
    return f"vaderSentiment=={importlib.metadata.version('vaderSentiment')}|compound"


class SentimentScorer:
    """VADER compound scores for texts (the analyzer is built on first use)."""

    def __init__(self) -> None:
        self._analyzer = None

    @property
    def identity(self) -> str:
        """Method and version: the sentiment cache is keyed by it."""
        return sentiment_identity()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Compound sentiment per text.

        Args:
            texts: any texts (empty text scores 0).

        Returns:
            (n,) float32 in [-1, 1]; > 0 positive, < 0 negative, 0 neutral or unknown words.
        """
        analyzer = self._analyzer
        if analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            analyzer = self._analyzer = SentimentIntensityAnalyzer()
        polarity = analyzer.polarity_scores
        return np.fromiter((polarity(t)["compound"] for t in texts), np.float32, len(texts))


@dataclass(frozen=True)
class SentimentAccuracy:
    """Binary accuracy of the score's sign on labelled text.

    Attributes:
        n: labelled texts.
        accuracy: share whose sign matches the label (a 0 score counts as wrong).
        neutral: texts scored exactly 0.
        positive_recall: share of positive texts scored > 0.
        negative_recall: share of negative texts scored < 0.
    """

    n: int
    accuracy: float
    neutral: int
    positive_recall: float
    negative_recall: float


def evaluate_accuracy(scores: np.ndarray, labels: Sequence[str]) -> SentimentAccuracy:
    """Compare score signs with ``positive``/``negative`` labels.

    Args:
        scores: sentiment scores.
        labels: ``positive`` or ``negative`` per score.

    Returns:
        The accuracy figures.
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.array([label == "positive" for label in labels])
    if len(positive) != len(scores) or not len(scores):
        raise ValueError("need one label per score and at least one score")
    predicted_positive = scores > 0
    correct = np.where(positive, scores > 0, scores < 0)
    return SentimentAccuracy(
        n=len(scores),
        accuracy=float(correct.mean()),
        neutral=int((scores == 0).sum()),
        positive_recall=float(predicted_positive[positive].mean()) if positive.any() else float("nan"),
        negative_recall=float((scores < 0)[~positive].mean()) if (~positive).any() else float("nan"),
    )
