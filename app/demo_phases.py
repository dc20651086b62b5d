"""The demo's generated data split in time: the history, the shifted period and the days that arrive later."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from pathlib import Path

TABLES = ("customers", "transactions", "sessions", "reviews")


def split_by_time(frame: pd.DataFrame, column: str, cut: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows before ``cut`` and rows from ``cut`` on."""
    before = frame[column] < cut
    return frame[before], frame[~before]


def write_phases(generated: dict[str, Path], out: Path, cut: pd.Timestamp) -> tuple[dict[str, Path], dict[str, Path]]:
    """Split the generated tables at ``cut`` into the history and the shifted period."""
    first, second = out / "history", out / "shifted"
    first.mkdir(parents=True, exist_ok=True)
    second.mkdir(parents=True, exist_ok=True)
    history: dict[str, Path] = {}
    shifted: dict[str, Path] = {}
    for table in ("campaigns", "exposures"):  # the generated waves all lie in the history
        if table in generated:
            history[table] = generated[table]
    for table in TABLES:
        frame = pd.read_parquet(generated[table])
        column = "signup_date" if table == "customers" else "event_timestamp"
        before, after = split_by_time(frame, column, cut)
        history[table] = first / f"{table}.parquet"
        shifted[table] = second / f"{table}.parquet"
        before.to_parquet(history[table], index=False)
        after.to_parquet(shifted[table], index=False)
    return history, shifted


def hold_back_later(shifted: dict[str, Path], out: Path, cut: pd.Timestamp) -> dict[str, Path]:
    """Move the rows of ``shifted`` from ``cut`` on into ``out`` (the data that arrives later)."""
    out.mkdir(parents=True, exist_ok=True)
    later = {}
    for table, path in shifted.items():
        frame = pd.read_parquet(path)
        before, after = split_by_time(frame, "signup_date" if table == "customers" else "event_timestamp", cut)
        before.to_parquet(path, index=False)
        later[table] = out / f"{table}.parquet"
        after.to_parquet(later[table], index=False)
    return later


__all__ = ["TABLES", "hold_back_later", "split_by_time", "write_phases"]
