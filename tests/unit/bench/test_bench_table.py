"""The benchmark table keeps every suite's figures when only some suites are re-measured."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bench.run import merge_previous, render

if TYPE_CHECKING:
    from pathlib import Path


def _row(issue: int, metric: str, value: float, suite: str | None = None) -> dict:
    r = {"issue": issue, "area": "a", "metric": metric, "value": value, "unit": "s", "target": "", "ok": None}
    return {**r, "suite": suite} if suite else r


def test_rerun_suite_replaces_its_rows_and_keeps_the_others(tmp_path: Path) -> None:
    # given a full table from an earlier run (rows without a suite key map by issue)
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"header": "Persona benchmark, 2026-11-22 18:35 UTC, 2 cores",
                                "rows": [_row(2, "generate", 1.0), _row(4, "train old", 9.0), _row(7, "redis", 3.0)]}))

    # when only the training suite is measured again
    rows, when = merge_previous(path, [_row(4, "train new", 5.0, "training")], {"training": "2026-11-22 21:00"})

    # then its old row is gone, the other suites' rows stay in suite order, with when each was measured
    assert [r["metric"] for r in rows] == ["generate", "train new", "redis"]
    assert when == {"foundation": "2026-11-22 18:35", "prod": "2026-11-22 18:35", "training": "2026-11-22 21:00"}
    assert "train old" not in render(rows, "h")


def test_no_previous_table_keeps_just_the_new_rows(tmp_path: Path) -> None:
    rows, when = merge_previous(tmp_path / "missing.json", [_row(5, "p50", 2.0, "serving")], {"serving": "t"})
    assert [r["metric"] for r in rows] == ["p50"]
    assert when == {"serving": "t"}
