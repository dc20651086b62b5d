"""``make bench``: run every benchmark, print one table, write it under bench/results/.

Usage: ``python -m bench.run [--quick] [--only foundation,embedding,...]``

``--only`` re-measures the chosen suites and keeps the other suites' rows of the last full table,
so the table always holds every figure; the header says when each suite was measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import traceback
import warnings
from pathlib import Path

import psutil

SUITES = ["foundation", "embedding", "training", "serving", "monitoring", "prod", "realdata"]
SUITE_OF_ISSUE = {2: "foundation", 3: "embedding", 4: "training", 5: "serving", 6: "monitoring", 7: "prod"}
RESULTS = Path(__file__).resolve().parent / "results"


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def render(rows: list[dict], header: str) -> str:
    """A Markdown table of benchmark rows."""
    lines = [header, "", "| issue | area | metric | value | unit | target | ok |",
             "|---|---|---|---:|---|---|---|"]
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        lines.append(f"| {r['issue']} | {r['area']} | {r['metric']} | {_fmt(r['value'])} | {r['unit']} | "
                     f"{r['target']} | {ok} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated suites: " + ",".join(SUITES))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    chosen = [s for s in args.only.split(",") if s] or SUITES
    rows: list[dict] = []
    for suite in chosen:
        try:
            module = importlib.import_module(f"bench.{suite}_bench")
        except ModuleNotFoundError:
            continue
        print(f"== {suite}", flush=True)
        try:
            measured = module.run(quick=args.quick)
        except Exception:  # one broken suite must not hide the others' figures
            traceback.print_exc()
            measured = [{"issue": 0, "area": suite, "metric": "suite failed (see log)", "value": float("nan"),
                         "unit": "", "target": "", "ok": False}]
        rows.extend({**r, "suite": suite} for r in measured)
    now = dt.datetime.now(dt.UTC)
    name = "latest-quick" if args.quick else "latest"
    when = {suite: f"{now:%Y-%m-%d %H:%M}" for suite in chosen}
    rows, when = merge_previous(RESULTS / f"{name}.json", rows, when)
    header = (f"Persona benchmark, {now:%Y-%m-%d %H:%M} UTC, {psutil.cpu_count()} cores, "
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}"
              f"{' (quick)' if args.quick else ''}")
    if len(set(when.values())) > 1:
        header += "; suites measured (UTC): " + ", ".join(f"{s} {when[s]}" for s in SUITES if s in when)
    table = render(rows, header)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(table)
    (RESULTS / f"{name}.json").write_text(json.dumps({"header": header, "measured": when, "rows": rows}, indent=2))


def merge_previous(path: Path, rows: list[dict], when: dict[str, str]) -> tuple[list[dict], dict[str, str]]:
    """Rows of the suites just measured plus the previous table's rows of every other suite (in suite order)."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return rows, when
    old_when = previous.get("measured") or {}
    stamp = str(previous.get("header", "")).split(", ")[1][:16] if ", " in str(previous.get("header", "")) else ""
    kept: list[dict] = []
    for r in previous.get("rows", []):
        suite = r.get("suite") or SUITE_OF_ISSUE.get(r.get("issue"), r.get("area"))
        if suite not in when:
            kept.append({**r, "suite": suite})
    merged_when = {**{r["suite"]: old_when.get(r["suite"], stamp) for r in kept}, **when}
    order = {suite: i for i, suite in enumerate(SUITES)}
    merged = sorted([*kept, *rows], key=lambda r: order.get(r["suite"], len(SUITES)))
    return merged, merged_when


if __name__ == "__main__":
    main()
