"""Behavior snapshots built per customer partition equal the whole table's, bit for bit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from core.settings import load_settings
from engine.runner import LocalEngine
from features.build import build_offline_sources
from tests.conftest import write_tricky_raw

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class PartitionedInProcess(LocalEngine):
    """The local engine dealing rows into several partitions, as the Ray engine does, last partition first."""

    name = "partitioned"
    partitions = 5

    def map(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], on_progress: Any = None) -> list[Any]:
        return list(reversed([fn(*item) for item in reversed(items)]))


def _behavior(settings) -> pd.DataFrame:
    return pd.read_parquet(settings.offline_dir / "customer_behavior.parquet").drop(columns="created_timestamp")


def test_partitioned_build_equals_the_whole_table_bit_for_bit_in_the_same_order() -> None:
    # given ingested data whose sums depend on the order of tied rows
    settings = load_settings()
    write_tricky_raw(settings)

    # when built whole, then in five customer partitions
    build_offline_sources(settings)
    whole = _behavior(settings)
    build_offline_sources(settings, engine=PartitionedInProcess())
    partitioned = _behavior(settings)

    # then the frames are identical, row order included
    assert len(whole) > 1000
    pd.testing.assert_frame_equal(partitioned, whole, check_exact=True)
