"""What a served row says about its features: how old they are, and why a customer was not predicted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.feature_batch import parse_utc, utc_iso

if TYPE_CHECKING:
    import datetime as dt

    from store.feature_batch import FeatureBatch


PREDICT_FEATURES = "send their features to predict_features"


def cold_start_reason(missing: tuple[str, ...], found_elsewhere: bool, remedy: str = PREDICT_FEATURES) -> str:
    """Why a customer is not predicted.

    Args:
        missing: required views without a row for the customer.
        found_elsewhere: the customer has a row in some other view.
        remedy: what the caller can do instead.
    """
    if not found_elsewhere:
        return (
            "unknown customer: not in the online store (no feature rows at all); nothing to predict "
            f"from — {remedy}"
        )
    return (
        f"incomplete features: no {', '.join(missing)} row for this customer in the online store; "
        f"not predicted from missing values — {remedy}"
    )


class Freshness:
    """Per-row feature timestamps (ISO) and age, converting each distinct timestamp once."""

    def __init__(self, batch: FeatureBatch, served_at: dt.datetime) -> None:
        self.batch = batch
        self.served_at = served_at
        self._iso: dict[str | None, str | None] = {None: None}
        self._age: dict[str, float] = {}

    def row(self, i: int) -> tuple[dict[str, str | None], float | None]:
        """Row ``i``'s feature time per view (ISO) and the age in seconds of its oldest one (None: no rows)."""
        stamps: dict[str, str | None] = {}
        oldest: str | None = None
        for view, values in self.batch.event_ts.items():
            text = values[i]
            iso = self._iso.get(text)
            if iso is None and text is not None:
                iso = self._iso[text] = utc_iso(text)
            stamps[view] = iso
            if text is not None and (oldest is None or text < oldest):
                oldest = text
        if oldest is None:
            return stamps, None
        age = self._age.get(oldest)
        if age is None:
            age = self._age[oldest] = round((self.served_at - parse_utc(oldest)).total_seconds(), 3)
        return stamps, age


__all__ = ["Freshness", "cold_start_reason"]
