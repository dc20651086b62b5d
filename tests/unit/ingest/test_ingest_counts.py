"""Re-ingesting a file reports the same counts: every row read is accepted or quarantined, each time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ingest.run import ingest_files
from tests.unit.ingest.conftest import transactions, write_csv

if TYPE_CHECKING:
    from pathlib import Path

    from core.settings import Settings



def test_the_second_ingest_of_a_file_counts_every_row_it_read(settings: Settings, tmp_path: Path) -> None:
    # given a file with a duplicate row and two bad rows, ingested once
    bad = [{"customer_id": "x", "event_timestamp": "2024-01-01", "amount": "1"},
           {"customer_id": "2", "event_timestamp": "2024-01-02", "amount": "-3"}]
    path = write_csv(tmp_path / "transactions.csv", [*transactions(3), transactions(1)[0], *bad])
    [first] = ingest_files(settings, {"transactions": path})

    # when the same file is ingested again
    [again] = ingest_files(settings, {"transactions": path})

    # then both runs read 6 rows and account for each: accepted + quarantined == read
    for report in (first, again):
        assert (report.rows_read, report.accepted, report.quarantined) == (6, 4, 2)
        assert report.accepted + report.quarantined == report.rows_read
        assert sum(report.reasons.values()) == report.quarantined
    assert (first.new_rows, again.new_rows, again.already_present) == (4, 0, 4)
    # and the quarantine file holds each bad row once
    assert len(pd.read_parquet(settings.quarantine_dir / "transactions.parquet")) == 2
