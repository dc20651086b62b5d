"""Behavior snapshots built per customer partition equal the whole table's, bit for bit."""

from __future__ import annotations

import pandas as pd

from core.settings import load_settings
from features.build import build_offline_sources
from tests.conftest import PartitionedInProcess, write_tricky_raw


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
