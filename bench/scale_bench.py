"""Issue 16 figures: every step of the local profile as its own ``persona`` process, at growing sizes.

Each step (generate, ingest, features build, features apply, embed, features materialize, train,
score) runs as a separate ``persona`` CLI subprocess on a scratch home holding ``customers``
generated customers x 365 days. For each step the suite records wall time, CPU time (user + sys
of the step's process and every descendant it waited for, from ``wait4``) and peak RSS, both of
the step's own process (``wait4``) and of every process of its tree (sampled with psutil, so a
Ray worker or an MLflow server counts too). Across sizes it fits ``cost = a + b * customers`` per
step (least squares), reports the marginal cost per extra customer and per million customers,
and projects each step to 1M and 10M customers (10M also spread over N nodes, assuming the
per-customer part splits evenly over customer partitions and the fixed part is paid per node).

Sizes: ``PERSONA_BENCH_SCALE_SIZES`` (comma-separated customer counts; default 10,000 and
30,000, or 2,000 and 5,000 with ``--quick``); steps: ``PERSONA_BENCH_SCALE_STEPS`` (default all);
nodes for the 10M projection: ``PERSONA_BENCH_SCALE_NODES`` (default 10).
``python -m bench.scale_bench`` prints the same figures without writing the results table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from bench.common import row

ISSUE = 16
STEPS: dict[str, list[str]] = {
    "generate": ["generate", "--days", "365", "--seed", "16", "--out", "{data}", "--customers", "{customers}"],
    "ingest": ["ingest", "--customers", "{data}/customers.parquet", "--transactions", "{data}/transactions.parquet",
               "--sessions", "{data}/sessions.parquet", "--reviews", "{data}/reviews.parquet"],
    "features build": ["features", "build"],
    "features apply": ["features", "apply"],
    "embed": ["embed"],
    "features materialize": ["features", "materialize"],
    "train": ["train"],
    "score": ["score", "--no-publish", "--out", "{data}/scores.parquet"],
}
RSS_TARGET_GIB = 8.0
TEXT_BYTES_TARGET_FACTOR = 5


@dataclass
class StepCost:
    """What one step cost at one size."""

    step: str
    customers: int
    wall_s: float
    cpu_s: float
    rss_self: int  # peak RSS of the step's own process (bytes)
    rss_tree: int  # highest RSS any process of its tree reached (bytes)
    rss_by_process: dict[str, int] = field(default_factory=dict)


class TreePeak:
    """Samples the RSS of a process and all its descendants until stopped; keeps each one's peak."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-rss", daemon=True)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    key = f"{proc.pid}:{proc.name()}"
                    self.peaks[key] = max(self.peaks.get(key, 0), proc.memory_info().rss)
                except psutil.Error:
                    continue
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_step(step: str, argv: list[str], env: dict[str, str], customers: int, log: Path) -> StepCost:
    """Run one ``persona`` step as a child process and measure it (raises when it fails)."""
    command = [sys.executable, "-m", "app.cli", *argv]
    started = time.perf_counter()
    with log.open("ab") as out:
        out.write(f"\n$ persona {' '.join(argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        with TreePeak(child.pid) as tree:
            _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"persona {' '.join(argv)} exited {child.returncode} at {customers:,} customers:\n{tail}")
    rss_self = usage.ru_maxrss * 1024  # Linux reports KiB
    peaks = dict(tree.peaks)
    return StepCost(step, customers, wall, usage.ru_utime + usage.ru_stime, rss_self,
                    max([rss_self, *peaks.values()]), peaks)


def text_bytes(home: Path) -> int:
    """Bytes of the local ``customer_text`` offline source (a file or a partitioned folder)."""
    path = home / "offline" / "customer_text.parquet"
    folder = home / "offline" / "customer_text"
    total = path.stat().st_size if path.is_file() else 0
    for base in (path, folder):
        if base.is_dir():
            total += sum(p.stat().st_size for p in base.rglob("*.parquet"))
    return total


def measure(customers: int, steps: list[str], log: Path) -> tuple[list[StepCost], int]:
    """Run ``steps`` in order on a fresh scratch home of ``customers`` customers.

    Returns:
        (cost of each step, bytes of the offline text source afterwards).
    """
    base = Path(tempfile.mkdtemp(prefix=f"persona-bench-scale-{customers}-"))
    home, data = base / "home", base / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_BENCH_")}  # the CLI refuses them
    env.update({"PERSONA_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    costs: list[StepCost] = []
    try:
        for step in steps:
            argv = [a.format(data=data, customers=customers) for a in STEPS[step]]
            costs.append(run_step(step, argv, env, customers, log))
        return costs, text_bytes(home)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` (one size: a = 0, b = y / x)."""
    if len(set(x)) < 2:
        return 0.0, y[0] / x[0]
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def growth_exponent(x: list[float], y: list[float]) -> float:
    """Slope of log(y) on log(x): 1 is linear growth (nan with fewer than two sizes)."""
    if len(set(x)) < 2 or min(y) <= 0:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def sizes_from_env(quick: bool) -> list[int]:
    """Customer counts to measure."""
    raw = os.environ.get("PERSONA_BENCH_SCALE_SIZES", "")
    if raw.strip():
        return sorted(int(s.replace("_", "")) for s in raw.split(",") if s.strip())
    return [2_000, 5_000] if quick else [10_000, 30_000]


def steps_from_env() -> list[str]:
    """Steps to run, in pipeline order."""
    raw = os.environ.get("PERSONA_BENCH_SCALE_STEPS", "")
    chosen = [s.strip() for s in raw.split(",") if s.strip()] or list(STEPS)
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        raise ValueError(f"PERSONA_BENCH_SCALE_STEPS: unknown step(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(STEPS)}")
    return [s for s in STEPS if s in chosen]


def summarize(costs: list[StepCost], text: dict[int, int], nodes: int) -> list[dict]:
    """Benchmark rows: per size and step the measured figures, then the fit and projections per step."""
    rows: list[dict] = []
    gib = 2**30
    for c in costs:
        label = f"{c.step} @ {c.customers:,}"
        rows.append(row(ISSUE, "scale", f"{label}: wall", c.wall_s, "s"))
        rows.append(row(ISSUE, "scale", f"{label}: CPU (user+sys, with children)", c.cpu_s, "s"))
        rows.append(row(ISSUE, "scale", f"{label}: peak RSS of any process", c.rss_tree / gib, "GiB",
                        f"< {RSS_TARGET_GIB:g}", c.rss_tree / gib < RSS_TARGET_GIB))
        if len(c.rss_by_process) > 1:
            rows.append(row(ISSUE, "scale", f"{label}: processes sampled", len(c.rss_by_process), "processes"))
    for customers, size in sorted(text.items()):
        rows.append(row(ISSUE, "scale", f"offline text source @ {customers:,}: bytes per customer",
                        size / customers, "B"))
    for step in dict.fromkeys(c.step for c in costs):
        mine = sorted((c for c in costs if c.step == step), key=lambda c: c.customers)
        x = [float(c.customers) for c in mine]
        a_cpu, b_cpu = fit_line(x, [c.cpu_s for c in mine])
        a_wall, b_wall = fit_line(x, [c.wall_s for c in mine])
        a_rss, b_rss = fit_line(x, [float(c.rss_tree) for c in mine])
        rss_1m = (a_rss + b_rss * 1e6) / gib
        rows += [
            row(ISSUE, "scale", f"{step}: CPU per extra customer", b_cpu * 1e3, "ms"),
            row(ISSUE, "scale", f"{step}: CPU per million customers", b_cpu * 1e6, "CPU-s"),
            row(ISSUE, "scale", f"{step}: CPU growth exponent (1 = linear)",
                growth_exponent(x, [c.cpu_s for c in mine]), "", "~1"),
            row(ISSUE, "scale", f"{step}: peak RSS per extra customer", b_rss / 1e3, "KB"),
            row(ISSUE, "scale", f"{step}: wall projected at 1M", a_wall + b_wall * 1e6, "s"),
            row(ISSUE, "scale", f"{step}: peak RSS projected at 1M", rss_1m, "GiB", f"< {RSS_TARGET_GIB:g}",
                rss_1m < RSS_TARGET_GIB),
            row(ISSUE, "scale", f"{step}: wall projected at 10M", a_wall + b_wall * 1e7, "s"),
            row(ISSUE, "scale", f"{step}: wall projected at 10M on {nodes} nodes", a_wall + b_wall * 1e7 / nodes, "s"),
            row(ISSUE, "scale", f"{step}: peak RSS per node projected at 10M on {nodes} nodes",
                (a_rss + b_rss * 1e7 / nodes) / gib, "GiB"),
        ]
    return rows


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for issue 16 (``quick``: 2k and 5k customers)."""
    sizes = sizes_from_env(quick)
    steps = steps_from_env()
    nodes = int(os.environ.get("PERSONA_BENCH_SCALE_NODES", "10"))
    log = Path(tempfile.gettempdir()) / "persona-bench-scale.log"
    log.write_text("")
    costs: list[StepCost] = []
    text: dict[int, int] = {}
    for customers in sizes:
        measured, size = measure(customers, steps, log)
        costs += measured
        if "embed" in steps:
            text[customers] = size
        for c in measured:
            print(f"  {c.step:>22} @ {customers:>9,}: wall {c.wall_s:7.1f} s  CPU {c.cpu_s:7.1f} s  "
                  f"RSS self {c.rss_self / 2**20:7.0f} MiB  tree {c.rss_tree / 2**20:7.0f} MiB", flush=True)
    return summarize(costs, text, nodes)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(f"load {os.getloadavg()}", flush=True)
    for r in run(quick):
        print(f"{r['metric']:>70}: {r['value']:12.4f} {r['unit']}  {r['target']}")
    print(f"load {os.getloadavg()}", flush=True)
