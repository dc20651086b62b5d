"""``make bench``: run every benchmark, print one table, write it under bench/results/.

Usage: ``python -m bench.run [--quick] [--only foundation,embedding,...] [--adopt-legacy] [--take TABLE]``

Only this module writes ``bench/results/latest.{md,json}``. Each row carries its own provenance
(:mod:`bench.provenance`): the commit and UTC time it was measured, the CPU count and the peak
load average while its suite ran; a figure measured under overload is marked noisy and never
meets its target. ``--only`` re-measures the chosen suites and keeps every other row exactly as
it was (its own commit and time), so the table always holds every figure and never relabels
one. ``--adopt-legacy`` measures nothing: it labels the rows of a table written before rows
carried provenance as legacy (their own time, load and code version unknown) and writes it
back with its digest. ``--take TABLE --only SUITES`` measures nothing either: it copies those suites'
rows, each with its own provenance, from another table this harness wrote (a branch's, when two
branches each re-measured different suites), after checking that table's digest.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import traceback
import warnings
from pathlib import Path

import psutil

from bench.provenance import FORMAT, REPO, LoadSampler, current_commit, digest, legacy, stamp, utc_stamp

SUITES = ["foundation", "embedding", "training", "serving", "monitoring", "prod", "realdata", "safety", "campaign",
          "privacy", "mutation", "ray", "scale"]
SUITE_OF_ISSUE = {2: "foundation", 3: "embedding", 4: "training", 5: "serving", 6: "monitoring", 7: "prod",
                  12: "realdata", 13: "safety", 15: "campaign", 16: "ray", 17: "privacy", 18: "mutation"}
RESULTS = Path(__file__).resolve().parent / "results"
# What the legacy table itself says about rows measured apart from their suite run.
LEGACY_NOTES = {
    "embedding": "baseline and candidate used different batch sizes (32 vs 64) and unpinned thread counts",
}
SPLICED = re.compile(r"^(?P<time>[\d-]+ [\d:]+) \(materialize rows (?P<splice>[\d:]+)\)$")


def _fmt(value: float) -> str:
    if value != value:  # NaN: a failed suite
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _ok(r: dict) -> str:
    if r.get("noisy") and r.get("ok_if_quiet"):
        return "noisy"
    return "" if r["ok"] is None else ("yes" if r["ok"] else "NO")


def _load(r: dict) -> str:
    if "cpus" not in r:
        return ""
    load = "?" if r.get("load_peak") is None else f"{r['load_peak']:.1f}"
    return f"{load}/{r['cpus'] if r.get('cpus') else '?'}"


def _suite_time(r: dict) -> str:
    if "suite_wall_s" not in r:
        return ""
    return f"{r['suite_wall_s']:,.0f} / {r['suite_cpu_s']:,.0f}"


def render(rows: list[dict], header: str) -> str:
    """A Markdown table of benchmark rows, each with when, at which commit and under what load."""
    lines = [header, "", "| issue | area | metric | value | unit | target | ok | measured (UTC) | commit | load/CPUs "
             "| suite wall / CPU s |", "|---|---|---|---:|---|---|---|---|---|---|---|"]
    for r in rows:
        commit = r.get("commit") or ("legacy" if r.get("provenance", "").startswith("legacy") else "")
        lines.append(f"| {r['issue']} | {r['area']} | {r['metric']} | {_fmt(r['value'])} | {r['unit']} | "
                     f"{r['target']} | {_ok(r)} | {r.get('measured_at', '')} | {commit} | {_load(r)} | "
                     f"{_suite_time(r)} |")
    return "\n".join(lines) + "\n"


def table_files(rows: list[dict], header: str, when: dict[str, str]) -> tuple[str, str]:
    """The Markdown and JSON texts of a table, both carrying the digest over header and rows."""
    sealed = digest(header, rows)
    notes = ("\nRows marked legacy predate per-row provenance: their code version and machine load are "
             "unknown (see `provenance` in latest.json). A figure measured while the load exceeded the "
             "CPU count shows `noisy` and does not count as meeting its target.\n"
             if any(r.get("commit") is None for r in rows) else "")
    markdown = render(rows, header) + notes + f"\ndigest: {sealed}\n"
    payload = {"format": FORMAT, "header": header, "measured": when, "rows": rows, "digest": sealed}
    return markdown, json.dumps(payload, indent=2) + "\n"


def _write(name: str, rows: list[dict], header: str, when: dict[str, str]) -> str:
    markdown, payload = table_files(rows, header, when)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(payload)
    return markdown


def _header(commit: str, quick: bool) -> str:
    return (f"Persona benchmark, written {utc_stamp()} UTC by bench/run.py at {commit}; "
            f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}{' (quick)' if quick else ''}; "
            "each row says when, at which commit and under what load it was measured")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated suites: " + ",".join(SUITES))
    parser.add_argument("--adopt-legacy", action="store_true", help="label a pre-provenance table; measure nothing")
    parser.add_argument("--take", type=Path, default=None,
                        help="copy the --only suites' rows from this harness-written table (digest checked); "
                             "measure nothing")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    name = "latest-quick" if args.quick else "latest"
    commit = current_commit()
    if args.adopt_legacy:
        adopted, adopted_when = merge_previous(RESULTS / f"{name}.json", [], {})
        print(_write(name, adopted, _header(commit, args.quick), adopted_when))
        return
    chosen = [s for s in args.only.split(",") if s] or SUITES
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; expected some of {', '.join(SUITES)}")
    if args.take is not None:
        if not args.only:
            parser.error("--take needs --only: the suites whose rows to copy")
        try:
            taken, taken_when = take_rows(args.take, chosen)
        except ValueError as exc:
            parser.error(str(exc))
        rows, when = merge_previous(RESULTS / f"{name}.json", taken, taken_when)
        print(_write(name, rows, _header(commit, args.quick), when))
        return
    rows: list[dict] = []
    when: dict[str, str] = {}
    cpus = psutil.cpu_count() or 1
    for suite in chosen:
        module = importlib.import_module(f"bench.{suite}_bench")
        print(f"== {suite}", flush=True)
        with LoadSampler() as load:
            try:
                measured = module.run(quick=args.quick)
            except Exception:  # one broken suite must not hide the others' figures
                traceback.print_exc()
                measured = [{"issue": 0, "area": suite, "metric": "suite failed (see log)", "value": float("nan"),
                             "unit": "", "target": "", "ok": False}]
        when[suite] = utc_stamp()
        rows.extend(stamp(measured, suite, commit, when[suite], load.peak, cpus, load.wall_s, load.cpu_s))
    rows, when = merge_previous(RESULTS / f"{name}.json", rows, when)
    print(_write(name, rows, _header(commit, args.quick), when))


def take_rows(path: Path, suites: list[str]) -> tuple[list[dict], dict[str, str]]:
    """The rows of ``suites`` from another table this harness wrote, unchanged, and when each suite was measured.

    Raises:
        ValueError: the table cannot be read, its digest does not match its header and rows (it was
            not written by this harness, or was edited since), a row lacks provenance, or it holds
            no row of a requested suite.
    """
    try:
        table = json.loads(Path(path).read_text())
        header, rows = str(table["header"]), list(table["rows"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the table {path}: {exc}") from None
    if digest(header, rows) != table.get("digest"):
        raise ValueError(f"{path} was not written by bench/run.py or was edited since: its digest does not match")
    taken = [r for r in rows if r.get("suite") in suites]
    if any("provenance" not in r for r in taken):
        raise ValueError(f"{path} has rows without provenance; only rows that carry their own can be taken")
    missing = [s for s in suites if not any(r["suite"] == s for r in taken)]
    if missing:
        raise ValueError(f"{path} holds no rows of {', '.join(missing)}")
    measured = table.get("measured") or {}
    return taken, {s: str(measured.get(s, "")) for s in suites}


def _table_history() -> list[tuple[str, set[tuple[str, str]]]]:
    """(commit, {(metric, value)}) for every committed version of the table, oldest first."""
    try:
        commits = subprocess.run(["git", "log", "--format=%h", "--reverse", "--", "bench/results/latest.json"],
                                 cwd=REPO, capture_output=True, text=True, check=True, timeout=30).stdout.split()
        history = []
        for commit in commits:
            text = subprocess.run(["git", "show", f"{commit}:bench/results/latest.json"], cwd=REPO,
                                  capture_output=True, text=True, check=True, timeout=30).stdout
            history.append((commit, {(r["metric"], repr(r["value"])) for r in json.loads(text).get("rows", [])}))
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    return history


def _committed_in(row: dict, history: list[tuple[str, set[tuple[str, str]]]]) -> str | None:
    """The oldest commit whose table held this row's metric with this exact value."""
    return next((commit for commit, rows in history if (row["metric"], repr(row["value"])) in rows), None)


def _adopt(r: dict, suite: str, old_when: dict[str, str], stamp_time: str, cpus: int | None,
           history: list[tuple[str, set[tuple[str, str]]]]) -> dict:
    """Label one pre-provenance row with what the old table said about it, and nothing more."""
    said = old_when.get(suite, stamp_time)
    note = LEGACY_NOTES.get(suite, "")
    spliced = SPLICED.match(said)
    if spliced:
        said = spliced["time"]
        if "materializ" in r["metric"]:
            said = said[:11] + spliced["splice"]
            note = ("measured apart from its suite's run and spliced into the table by hand, "
                    "not written by one harness run")
    return {**legacy(r, said, cpus, _committed_in(r, history), note), "suite": suite}


def merge_previous(path: Path, rows: list[dict], when: dict[str, str]) -> tuple[list[dict], dict[str, str]]:
    """Rows of the suites just measured plus the previous table's rows of every other suite (in suite order).

    Kept rows are copied unchanged; rows of a table from before provenance are labelled legacy.
    """
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return rows, when
    old_when = previous.get("measured") or {}
    header = str(previous.get("header", ""))
    stamp_time = header.split(", ")[1][:16] if ", " in header else ""
    cores = re.search(r"(\d+) cores", header)
    cpus = int(cores.group(1)) if cores else None
    kept: list[dict] = []
    history = _table_history() if any("provenance" not in r for r in previous.get("rows", [])) else []
    for r in previous.get("rows", []):
        suite = r.get("suite") or SUITE_OF_ISSUE.get(r.get("issue"), r.get("area"))
        if suite in when:
            continue
        kept.append(r if "provenance" in r else _adopt(r, suite, old_when, stamp_time, cpus, history))
    merged_when = {**{r["suite"]: old_when.get(r["suite"], stamp_time) for r in kept}, **when}
    order = {suite: i for i, suite in enumerate(SUITES)}
    merged = sorted([*kept, *rows], key=lambda r: order.get(r["suite"], len(SUITES)))
    return merged, merged_when


if __name__ == "__main__":
    main()
