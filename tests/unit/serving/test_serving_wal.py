"""The prediction log's write-ahead file: a SIGKILLed process loses no answered row."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

from core.settings import PROJECT_ROOT
from serving.prediction_log import PredictionLog, read_prediction_log
from serving.wal import WAL_FOLDER, WriteAheadLog, encode
from tests.unit.serving.conftest import log_batch

if TYPE_CHECKING:
    from pathlib import Path

ROOT = PROJECT_ROOT


def _kill_after_appending(directory: Path, batches: int, flush_after: int | None = None) -> subprocess.CompletedProcess:
    """A process that appends one-row batches (flushing once after ``flush_after``), then SIGKILLs itself."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from serving.prediction_log import PredictionLog
        from tests.unit.serving.conftest import log_batch
        log = PredictionLog(Path({str(directory)!r}), flush_seconds=3600).start()
        for i in range({batches}):
            log.append(log_batch(f"r{{i}}", [i]))
            if i + 1 == {flush_after!r}:
                log.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120, check=False)


def test_rows_of_a_killed_process_are_replayed_at_the_next_start(tmp_path: Path) -> None:
    # given a process that answered 50 requests (25 already in parquet) and was then SIGKILLed
    directory = tmp_path / "log"
    killed = _kill_after_appending(directory, 50, flush_after=25)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert len(read_prediction_log(directory)) == 25
    # when the next process starts its log
    log = PredictionLog(directory, flush_seconds=3600).start()
    log.close()
    # then every answered row is there exactly once, and the write-ahead folder is empty
    frame = read_prediction_log(directory)
    assert sorted(frame["request_id"]) == sorted(f"r{i}" for i in range(50))
    assert log.rows_replayed == 25
    assert list((directory / WAL_FOLDER).glob("*.wal")) == []


def test_a_live_writers_segment_is_not_replayed_and_a_cut_record_is_skipped(tmp_path: Path) -> None:
    # given a live log holding an unflushed row, and a dead process's segment cut mid-record
    directory = tmp_path / "log"
    live = PredictionLog(directory, flush_seconds=3600).start()
    live.append(log_batch("live", [1]))
    dead = WriteAheadLog(directory)
    dead.append(encode(log_batch("dead", [2])))
    dead.append(encode(log_batch("cut", [3])))
    segment = dead.close()
    assert segment is not None
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])
    # when another log starts on the same directory
    other = PredictionLog(directory, flush_seconds=3600).start()
    other.close()
    # then only the dead process's complete record is replayed; the live one is left to its writer
    assert read_prediction_log(directory)["request_id"].tolist() == ["dead"]
    live.close()
    assert sorted(read_prediction_log(directory)["request_id"]) == ["dead", "live"]


def test_replay_splits_rows_by_serving_day(tmp_path: Path) -> None:
    # given a dead process's segment with rows of two days
    directory = tmp_path / "log"
    dead = WriteAheadLog(directory)
    day = dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.UTC)
    dead.append(encode(log_batch("a", [1], served_at=day)))
    dead.append(encode(log_batch("b", [2], served_at=day + dt.timedelta(minutes=2))))
    dead.close()
    # when replayed
    PredictionLog(directory).start().close()
    # then each day's partition holds its own row
    assert sorted(p.name for p in directory.glob("date=*")) == ["date=2025-03-01", "date=2025-03-02"]
    assert os.listdir(directory / WAL_FOLDER) == []
