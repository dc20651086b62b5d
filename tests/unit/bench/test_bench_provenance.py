"""The committed benchmark table is the harness's own output, and every row says where it came from."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from bench.provenance import digest, stamp
from bench.run import RESULTS, merge_previous, render, table_files

if TYPE_CHECKING:
    from pathlib import Path

FIELDS = ("suite", "commit", "measured_at", "load_peak", "cpus", "noisy", "provenance")


def _committed() -> dict:
    return json.loads((RESULTS / "latest.json").read_text())


def test_the_committed_table_is_exactly_what_the_harness_writes() -> None:
    # given the committed JSON and Markdown tables
    table = _committed()

    # when the harness's writer renders the same rows and header again
    markdown, payload = table_files(table["rows"], table["header"], table["measured"])

    # then the digest recomputes, and both files are byte for byte the harness's output
    assert table["digest"] == digest(table["header"], table["rows"])
    assert (RESULTS / "latest.md").read_text() == markdown
    assert (RESULTS / "latest.json").read_text() == payload


def test_a_hand_edited_figure_breaks_the_digest() -> None:
    # given the committed table with one figure changed by hand
    table = _committed()
    edited = [dict(r) for r in table["rows"]]
    edited[0]["value"] = edited[0]["value"] * 2

    # when / then
    assert digest(table["header"], edited) != table["digest"]


def test_every_row_carries_its_own_provenance() -> None:
    # given every committed row
    rows = _committed()["rows"]

    # then each says when, at which commit and under what load it was measured; rows from before
    # provenance was recorded say so, and a noisy figure never meets its target
    for r in rows:
        assert all(field in r for field in FIELDS), r
        assert r["measured_at"], r
        if r["commit"] is None:
            assert r["provenance"].startswith("legacy:"), r
            assert r["load_peak"] is None, r
        else:
            assert r["provenance"] == "harness", r
            assert isinstance(r["load_peak"], float), r
            assert r["noisy"] == (r["load_peak"] > r["cpus"]), r
        if r["noisy"] and r.get("load_sensitive", True):
            assert r["ok"] is not True, r


def test_a_figure_measured_under_overload_is_noisy_and_does_not_meet_its_target() -> None:
    # given a target met while the load average (3.5) exceeded the CPU count (2)
    met = {"issue": 5, "area": "serving", "metric": "p99", "value": 4.0, "unit": "ms", "target": "< 15", "ok": True}

    # when stamped
    [loud] = stamp([met], "serving", "abc1234", "2026-11-27 18:00", load_peak=3.5, cpus=2)
    [quiet] = stamp([met], "serving", "abc1234", "2026-11-27 18:00", load_peak=1.5, cpus=2)

    # then the loud one is shown as noisy and not as met; the quiet one meets it
    assert (loud["noisy"], loud["ok"]) == (True, None)
    assert "| noisy |" in render([loud], "h")
    assert (quiet["noisy"], quiet["ok"]) == (False, True)


def test_only_a_correctness_count_meets_its_target_under_overload() -> None:
    from bench.common import row

    # given a zero-rows-lost count and a memory figure, both met while the load (3.5) exceeded 2 CPUs
    lost = row(13, "safety", "rows lost", 0, "rows", "0", True, load_sensitive=False)
    memory = row(13, "safety", "RSS held", 0.1, "MiB", "< 50", True)

    # when stamped
    [count, held] = stamp([lost, memory], "safety", "abc1234", "2026-11-27 18:00", load_peak=3.5, cpus=2)

    # then the count still meets its target (load does not change what a crash loses); the memory figure is noisy
    assert (count["noisy"], count["ok"]) == (True, True)
    assert (held["noisy"], held["ok"]) == (True, None)


def test_an_only_rerun_never_relabels_the_rows_it_keeps(tmp_path: Path) -> None:
    # given a table with rows of two suites, each from its own run
    old = stamp([{"issue": 2, "area": "data", "metric": "generate", "value": 1.0, "unit": "s", "target": "",
                  "ok": None}], "foundation", "old0001", "2026-11-20 10:00", 0.5, 2)
    previous = stamp([{"issue": 5, "area": "serving", "metric": "p99", "value": 9.0, "unit": "ms", "target": "",
                       "ok": None}], "serving", "old0001", "2026-11-20 10:00", 0.5, 2)
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"format": 2, "header": "h", "measured": {"foundation": "2026-11-20 10:00",
                                "serving": "2026-11-20 10:00"}, "rows": old + previous, "digest": ""}))
    fresh = stamp([{"issue": 5, "area": "serving", "metric": "p99", "value": 4.0, "unit": "ms", "target": "",
                    "ok": None}], "serving", "new0002", "2026-11-27 18:00", 0.7, 2)

    # when only the serving suite is measured again
    rows, when = merge_previous(path, fresh, {"serving": "2026-11-27 18:00"})

    # then the kept row is unchanged (its own commit and time) and the new one carries its own
    assert rows == [*old, *fresh]
    assert when == {"foundation": "2026-11-20 10:00", "serving": "2026-11-27 18:00"}


@pytest.mark.parametrize("suite", ["embedding"])
def test_legacy_rows_name_what_was_not_comparable(suite: str, tmp_path: Path) -> None:
    # given a table from before rows carried provenance, with a row of a suite whose comparison used
    # different batch policies (once the committed table's rows of that suite were legacy; they have
    # been re-measured since)
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"header": "Persona benchmark, 2026-11-22 18:35 UTC, 2 cores",
                                "rows": [{"issue": 3, "area": suite, "metric": "fast_vs_baseline_ratio",
                                          "value": 9.5, "unit": "x", "target": ">= 3", "ok": True}]}))

    # when the harness keeps it beside a new run of another suite
    rows, _ = merge_previous(path, [], {"serving": "2026-11-28 03:00"})

    # then it is labelled legacy, and its provenance says what was not comparable
    (row,) = [r for r in rows if r["suite"] == suite]
    assert row["commit"] is None
    assert "different batch sizes" in row["provenance"]
    # and any legacy rows of that suite still in the committed table say so too
    committed = [r for r in _committed()["rows"] if r["suite"] == suite and r["commit"] is None]
    assert all("different batch sizes" in r["provenance"] for r in committed)


def test_each_suite_records_its_wall_and_cpu_time_beside_the_load() -> None:
    from bench.provenance import LoadSampler

    # given a suite that burns CPU for a moment
    with LoadSampler(interval_s=0.05) as load:
        total = 0
        for i in range(2_000_000):
            total += i

    # when its rows are stamped and rendered
    [r] = stamp([{"issue": 2, "area": "data", "metric": "m", "value": 1.0, "unit": "s", "target": "", "ok": None}],
                "foundation", "abc1234", "2026-11-27 18:00", load.peak, 2, load.wall_s, load.cpu_s)

    # then the row carries both times and the table shows them
    assert load.wall_s > 0
    assert load.cpu_s > 0
    assert (r["suite_wall_s"], r["suite_cpu_s"]) == (round(load.wall_s, 1), round(load.cpu_s, 1))
    assert f"| {r['suite_wall_s']:,.0f} / {r['suite_cpu_s']:,.0f} |" in render([r], "h")


def test_taking_a_suite_from_another_harness_table_copies_its_rows_with_their_provenance(tmp_path: Path) -> None:
    from bench.run import take_rows

    # given a table the harness wrote on a branch that re-measured the safety suite
    table = _committed()
    path = tmp_path / "branch.json"
    path.write_text(json.dumps(table))
    safety = [r for r in table["rows"] if r["suite"] == "safety"]
    assert safety

    # when its safety rows are taken
    rows, when = take_rows(path, ["safety"])

    # then they are copied unchanged, each with its own commit, time and load
    assert rows == safety
    assert when == {"safety": table["measured"]["safety"]}


def test_a_table_edited_by_hand_cannot_be_taken_from(tmp_path: Path) -> None:
    import pytest

    from bench.run import take_rows

    table = _committed()
    row = next(r for r in table["rows"] if r["suite"] == "safety")
    row["value"] = row["value"] + 1  # an edited figure, the digest left as it was
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(table))

    with pytest.raises(ValueError, match="digest does not match"):
        take_rows(path, ["safety"])
    with pytest.raises(ValueError, match="holds no rows of nosuch"):
        take_rows(RESULTS / "latest.json", ["nosuch"])
