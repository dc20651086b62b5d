"""The prediction log: batched parquet, nothing lost on close, readable across model versions."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from serving.prediction_log import PredictionLog, read_prediction_log
from tests.unit.serving.conftest import log_batch

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)




def test_close_writes_every_pending_row_with_all_columns(tmp_path: Path) -> None:
    # given a log that would only flush after an hour
    log = PredictionLog(tmp_path / "log", flush_seconds=3600).start()
    log.append(log_batch("a", [1, 2]))
    log.append(log_batch("b", [3]))

    # when it is closed (a clean shutdown)
    log.close()

    # then all rows are on disk, partitioned by day, with per-row request ids
    files = list((tmp_path / "log").glob("date=2025-03-01/part-*.parquet"))
    assert len(files) == 1
    frame = pq.read_table(files[0]).to_pandas()
    assert frame["request_id"].tolist() == ["a", "a", "b"]
    assert frame["customer_id"].tolist() == [1, 2, 3]
    assert list(frame.columns) == [
        "request_id",
        "served_at",
        "endpoint",
        "customer_id",
        "model_version",
        "orders_90d",
        "region",
        "churn_probability",
        "persona",
        "cold_start_reason",
    ]
    assert str(frame["served_at"].dt.tz) == "UTC"
    assert log.rows_written == 3
    assert log.pending_rows == 0


def test_rows_of_different_feature_sets_and_days_go_to_separate_files(tmp_path: Path) -> None:
    # given rows from two model versions with different features, on two days
    log = PredictionLog(tmp_path / "log", flush_seconds=3600)
    log.append(log_batch("a", [1], version="1"))
    log.append(log_batch("b", [2], version="2", columns=("orders_90d", "spend_365d")))
    log.append(
        log_batch(
            "c", [3], version="2", columns=("orders_90d", "spend_365d"), served_at=T0 + dt.timedelta(days=1)
        )
    )

    # when flushed and read back
    log.flush()
    frame = read_prediction_log(tmp_path / "log")

    # then three files hold them and the reader returns the union of columns, oldest first
    assert len(list((tmp_path / "log").rglob("*.parquet"))) == 3
    assert frame["request_id"].tolist() == ["a", "b", "c"]
    assert np.isnan(frame.loc[0, "spend_365d"])
    assert frame.loc[1, "spend_365d"] == 1.0
    assert read_prediction_log(tmp_path / "log", since=T0 + dt.timedelta(hours=1))["request_id"].tolist() == [
        "c"
    ]


def test_the_writer_thread_flushes_without_close(tmp_path: Path) -> None:
    # given a log flushing every 50 ms
    log = PredictionLog(tmp_path / "log", flush_seconds=0.05).start()

    # when a batch is appended and a moment passes
    log.append(log_batch("a", [1]))
    for _ in range(100):
        if log.rows_written:
            break
        import time

        time.sleep(0.05)
    log.close()

    # then it was written by the background thread
    assert log.rows_written == 1


def test_a_failed_write_keeps_the_rows_for_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a disk that fails once
    log = PredictionLog(tmp_path / "log", flush_seconds=3600)
    log.append(log_batch("a", [1, 2]))
    original = PredictionLog._write
    calls = {"n": 0}

    def flaky(self, batches):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return original(self, batches)

    monkeypatch.setattr(PredictionLog, "_write", flaky)

    # when flushed twice
    first, second = log.flush(), log.flush()

    # then nothing is lost: the second flush writes the rows and the error was recorded
    assert (first, second) == (0, 2)
    assert "disk full" in (log.last_error or "")
    assert len(read_prediction_log(tmp_path / "log")) == 2


def test_beyond_the_pending_limit_rows_are_counted_as_dropped(tmp_path: Path) -> None:
    # given a log that holds at most 2 pending rows
    log = PredictionLog(tmp_path / "log", flush_seconds=3600, max_pending_rows=2)

    # when 3 rows arrive before any flush
    log.append(log_batch("a", [1, 2]))
    log.append(log_batch("b", [3]))

    # then the excess is counted, not silently lost
    assert (log.pending_rows, log.rows_dropped) == (2, 1)
