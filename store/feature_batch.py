"""Feature values of a batch of customers as the models take them: a numeric and a string block.

What :class:`store.online_reader.OnlineFeatureReader` returns and the model runner consumes;
numpy only, no Feast, so the model layer can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence


def utc_iso(text: str | None) -> str | None:
    """``2025-01-07 00:00:00.000000`` (online store text, UTC) -> ``2025-01-07T00:00:00Z``."""
    if text is None:
        return None
    return text[:19].replace(" ", "T") + "Z"


def parse_utc(text: str) -> datetime:
    """Online store timestamp text -> tz-aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class FeatureBatch:
    """Feature values of a batch of customers, split into a numeric and a string block.

    Attributes:
        ids: customer ids (int64), one per row.
        numeric_columns / string_columns: column names of the two blocks.
        numeric: float64 ``(n, len(numeric_columns))``, NaN for missing.
        strings: object ``(n, len(string_columns))``, None for missing.
        event_ts: view -> per row the stored event timestamp text (None when absent).
        missing_views: per row the required views that had no row for the customer.
    """

    ids: np.ndarray
    numeric_columns: tuple[str, ...]
    string_columns: tuple[str, ...]
    numeric: np.ndarray
    strings: np.ndarray
    event_ts: dict[str, list[str | None]] = field(default_factory=dict)
    missing_views: list[tuple[str, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def columns(self) -> list[str]:
        """Every column, the numeric block's first."""
        return [*self.numeric_columns, *self.string_columns]

    def column(self, name: str) -> np.ndarray:
        """One column as an array (float64 or object)."""
        if name in self.numeric_columns:
            return self.numeric[:, self.numeric_columns.index(name)]
        return self.strings[:, self.string_columns.index(name)]

    def row(self, i: int) -> dict[str, object]:
        """One row as ``{column: value}`` (None for missing)."""
        out: dict[str, object] = {}
        for j, name in enumerate(self.numeric_columns):
            value = float(self.numeric[i, j])
            out[name] = value if value == value else None
        for j, name in enumerate(self.string_columns):
            out[name] = self.strings[i, j]
        return out

    def newest_event_times(self) -> np.ndarray:
        """Per row the newest event time (online store text) of its views' rows, None when none.

        The online store's text sorts as time does, so the newest is the largest string (pairwise
        list merges: a few microseconds per request).
        """
        columns = list(self.event_ts.values())
        if not columns:
            return np.full(len(self), None, dtype=object)
        newest = list(columns[0])
        for stamps in columns[1:]:
            newest = [b if a is None or (b is not None and b > a) else a for a, b in zip(newest, stamps, strict=True)]
        return np.asarray(newest, dtype=object)

    def take(self, rows: np.ndarray) -> FeatureBatch:
        """The rows at positions ``rows`` (event timestamps and missing views follow)."""
        index = rows.tolist()
        return FeatureBatch(
            ids=self.ids[rows],
            numeric_columns=self.numeric_columns,
            string_columns=self.string_columns,
            numeric=self.numeric[rows],
            strings=self.strings[rows],
            event_ts={view: [stamps[i] for i in index] for view, stamps in self.event_ts.items()},
            missing_views=[self.missing_views[i] for i in index] if self.missing_views else [],
        )

    @classmethod
    def empty(
        cls, ids: Sequence[int] | np.ndarray, numeric_columns: Sequence[str], string_columns: Sequence[str]
    ) -> FeatureBatch:
        """All-missing values for ``ids``."""
        n = len(ids)
        return cls(
            ids=np.asarray(ids, dtype=np.int64),
            numeric_columns=tuple(numeric_columns),
            string_columns=tuple(string_columns),
            numeric=np.full((n, len(numeric_columns)), np.nan),
            strings=np.full((n, len(string_columns)), None, dtype=object),
            missing_views=[() for _ in range(n)],
        )


def split_columns(
    columns: Sequence[str], string_columns: set[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric columns, string columns), each in the given order."""
    return (
        tuple(c for c in columns if c not in string_columns),
        tuple(c for c in columns if c in string_columns),
    )
