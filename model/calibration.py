"""A churn calibration map kept in a bundle's metadata and applied wherever churn is predicted (pure).

A label-free refresh (``training.refresh``) may recalibrate the champion's churn probabilities on rows
whose labels matured after its training window, without touching its boosters. The map is strictly
increasing and piecewise linear (a logistic curve on a fine grid), stored as plain lists in the bundle's
metadata, so the bundle format and the artifact digest rules do not change; the Python bundle and
the fast runner apply it the same way. Explanations stay in the boosters' own margin (before the map).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

CALIBRATION_KEY = "churn_calibration"


def calibrate_churn(metadata: Mapping, probability: np.ndarray) -> np.ndarray:
    """``probability`` through the bundle's calibration map (unchanged when it has none)."""
    mapping = metadata.get(CALIBRATION_KEY) if metadata else None
    if not mapping:
        return probability
    x = np.asarray(mapping["x"], dtype=float)
    y = np.asarray(mapping["y"], dtype=float)
    return np.clip(np.interp(probability, x, y), 0.0, 1.0)


def without_calibration(metadata: Mapping) -> dict:
    """A copy of ``metadata`` without the calibration map (the boosters' own probabilities)."""
    return {k: v for k, v in metadata.items() if k != CALIBRATION_KEY}
