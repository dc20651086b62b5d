"""Two real ``ingest`` processes writing one table at once keep every row of both files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pandas as pd

from bench.safety_bench import write_transactions
from core.settings import PROJECT_ROOT, load_settings

if TYPE_CHECKING:
    from pathlib import Path

ROWS = 50_000

# Each process reads and validates its file, then waits for one start signal before writing, so
# both enter the read-merge-write of the store together: the race is hit on every run unless
# writers of a table are serialized.
_INGEST = """
import json, sys, time
from pathlib import Path
import ingest.run as run
from core.settings import load_settings
from tests.unit.ingest.conftest import transactions
go, ready = Path(sys.argv[2]), Path(sys.argv[3])
validate = run.validate
def validate_then_wait(*args, **kwargs):
    result = validate(*args, **kwargs)
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    return result
run.validate = validate_then_wait
[report] = run.ingest_files(load_settings(), {"transactions": sys.argv[1]})
print(json.dumps([report.new_rows, report.already_present, report.quarantined]))
"""


def test_two_processes_ingesting_one_table_at_once_lose_nothing(tmp_path: Path) -> None:
    # given two files of 50k distinct rows, each read and validated by its own ingest process
    files = [write_transactions(tmp_path / "a.csv", 1_000, ROWS), write_transactions(tmp_path / "b.csv", 5_000, ROWS)]
    home = tmp_path / "home"
    env = {**os.environ, "PERSONA_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", _INGEST, str(f), str(go), str(r)], cwd=PROJECT_ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f, r in zip(files, ready, strict=True)]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)

    # when both write at once
    go.touch()
    outputs = [p.communicate(timeout=300) for p in procs]

    # then both succeed, each reports its own rows as new, and the store holds every row of both
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == [ROWS, 0, 0]
    stored = pd.read_parquet(load_settings(home=home).raw_dir / "transactions.parquet")
    expected = set(pd.concat([pd.read_csv(f, dtype=str)["order_id"] for f in files]))
    assert len(stored) == 2 * ROWS
    assert set(stored["order_id"]) == expected
    assert stored["_row_id"].is_unique
