"""Plausible ranges of what-if feature values (pure; no I/O).

``/predict_features`` takes feature values from the caller. A finite but absurd value
(``1e308``, an integer of 400 digits) would overflow the persona clustering distance (NaN:
``segment`` silently 0) and, once in the prediction log, break drift detection for as long as it
stays in the monitoring window. So every numeric what-if value must lie within:

- a hard cap: ``|value| <= abs_max`` (``Settings.whatif_feature_abs_max``), for every column;
- where the served bundle carries training statistics (its persona clustering space,
  ``ClusterSpec``: mean and standard deviation per column, on log1p scale for skewed columns), the
  training mean plus or minus ``sigma_margin`` standard deviations
  (``Settings.whatif_feature_sigma_margin``) -- a generous margin that refuses only values no
  customer could have, never a merely unusual one.

A value outside its range is refused with 400 naming the field and the range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ABS_MAX = 1e12
DEFAULT_SIGMA_MARGIN = 1000.0


@dataclass(frozen=True)
class FeatureBounds:
    """Inclusive ``(low, high)`` per numeric column; columns not named get ``(-abs_max, abs_max)``.

    Attributes:
        ranges: column -> (low, high).
        abs_max: the hard cap for every column.
    """

    ranges: Mapping[str, tuple[float, float]]
    abs_max: float = DEFAULT_ABS_MAX

    def range_of(self, column: str) -> tuple[float, float]:
        """The accepted range of ``column``."""
        return self.ranges.get(column, (-self.abs_max, self.abs_max))

    def violation(self, column: str, value: float) -> str | None:
        """Why ``value`` is not plausible for ``column`` (None when it is)."""
        low, high = self.range_of(column)
        if low <= value <= high:
            return None
        return f"{value:.6g} is outside the plausible range [{low:.6g}, {high:.6g}] of this feature"

    @classmethod
    def from_model(
        cls, model: object, abs_max: float = DEFAULT_ABS_MAX, sigma_margin: float = DEFAULT_SIGMA_MARGIN
    ) -> FeatureBounds:
        """Bounds from a served model's own training statistics, where it has them.

        Args:
            model: a Persona bundle (its ``cluster`` spec is used) or any model (hard cap only).
            abs_max: hard cap on ``|value|``.
            sigma_margin: training standard deviations allowed around the training mean.
        """
        ranges: dict[str, tuple[float, float]] = {}
        spec = getattr(model, "cluster", None)
        columns = getattr(spec, "columns", None)
        if spec is not None and columns:
            log_columns = set(spec.log_columns)
            for column, mean, scale in zip(columns, spec.mean, spec.scale, strict=True):
                low, high = mean - sigma_margin * scale, mean + sigma_margin * scale
                if column in log_columns:  # log1p scale: back to raw values (negatives clip to 0 there)
                    low = -abs_max
                    high = _expm1_capped(high, abs_max)
                ranges[column] = (max(low, -abs_max), min(high, abs_max))
        return cls(ranges=ranges, abs_max=abs_max)


def _expm1_capped(x: float, cap: float) -> float:
    return cap if x >= math.log1p(cap) else math.expm1(x)
