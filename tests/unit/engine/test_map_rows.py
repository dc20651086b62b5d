"""map_rows: a row-wise function over customer partitions answers as on the whole frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.runner import LocalEngine, map_rows
from tests.conftest import PartitionedInProcess


def _row_wise(scale: float, rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"doubled": rows["value"] * scale, "id": rows["customer_id"]}, index=rows.index)


def test_rows_come_back_in_the_frames_order_with_its_index() -> None:
    # given customers in no particular order, with a non-default index
    rng = np.random.default_rng(2)
    ids = rng.permutation(np.repeat(np.arange(40, dtype=np.int64), 2))
    frame = pd.DataFrame({"customer_id": ids, "value": rng.random(80)}, index=np.arange(80) * 3 + 7)

    # when mapped over five partitions and in one piece
    partitioned = map_rows(PartitionedInProcess(), _row_wise, frame, shared=(2.0,))
    whole = map_rows(LocalEngine(), _row_wise, frame, shared=(2.0,))

    # then both equal the function on the whole frame, order and index included
    expected = _row_wise(2.0, frame)
    pd.testing.assert_frame_equal(partitioned, expected, check_exact=True)
    pd.testing.assert_frame_equal(whole, expected, check_exact=True)
