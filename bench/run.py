"""``make bench``: run every benchmark, print one table, write it under bench/results/.

Usage: ``python -m bench.run [--quick] [--only foundation,embedding,...]``
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

SUITES = ["foundation", "embedding", "training", "serving", "monitoring", "prod"]
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
            rows.extend(module.run(quick=args.quick))
        except Exception:  # one broken suite must not hide the others' figures
            traceback.print_exc()
            rows.append({"issue": 0, "area": suite, "metric": "suite failed (see log)", "value": float("nan"),
                         "unit": "", "target": "", "ok": False})
    now = dt.datetime.now(dt.UTC)
    header = (f"Persona benchmark, {now:%Y-%m-%d %H:%M} UTC, {psutil.cpu_count()} cores, "
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}"
              f"{' (quick)' if args.quick else ''}")
    table = render(rows, header)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    name = "latest-quick" if args.quick else "latest"
    (RESULTS / f"{name}.md").write_text(table)
    (RESULTS / f"{name}.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
