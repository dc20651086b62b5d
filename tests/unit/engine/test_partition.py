"""Customer partitions: fixed on every machine, each customer's rows together and in their order."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from engine.partition import partition_of, split


def test_a_customers_partition_is_the_same_in_another_process() -> None:
    # given ids hashed here
    ids = np.array([1, 2, 3, 10**12, -5], dtype=np.int64)
    here = partition_of(ids, 7).tolist()

    # when a fresh interpreter with another hash seed hashes them (as a Ray worker on another node would)
    code = "import numpy as np; from engine.partition import partition_of; " \
           "print(partition_of(np.array([1, 2, 3, 10**12, -5]), 7).tolist())"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()

    # then both agree, and the ids spread over several partitions
    assert there == str(here)
    assert len(set(here)) > 1


def test_split_keeps_every_row_once_with_each_customers_rows_together_in_order() -> None:
    # given rows of many customers, interleaved
    frame = pd.DataFrame({"customer_id": np.tile(np.arange(50, dtype=np.int64), 4), "seq": np.arange(200)})

    # when split into 5 partitions
    parts = split(frame, 5)

    # then every row is in exactly one part, a customer in one part only, rows in their input order
    assert sorted(pd.concat(parts)["seq"].tolist()) == list(range(200))
    owners = [set(p["customer_id"]) for p in parts]
    assert sum(len(o) for o in owners) == 50
    for part in parts:
        assert part["seq"].is_monotonic_increasing
    assert split(None, 3) == [None, None, None]
