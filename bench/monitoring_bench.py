"""Issue 6 figures: an Evidently drift report on 100k rows x 50 features (target < 20 s).

The timed step is what ``persona monitor`` does with the two frames: screen columns, compute
missing shares on all rows, run Evidently 0.7 (one ``ValueDrift`` per feature and prediction,
``MissingValueCount`` per feature, the persona mix) and write the HTML and JSON. Reference and
window are sampled to ``drift.max_rows`` (20,000) rows each for the tests; the distance methods
used (normalized Wasserstein, Jensen-Shannon) do not get stricter with more rows, and Evidently
spends most of its time per row on plots. The unsampled run is reported next to it for comparison.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import row, timed

PERSONAS = ("loyal frequent buyers", "at-risk occasional buyers", "bargain hunters", "dormant")


def make_frames(rows: int, features: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and a drifted window: ``features`` columns (one in ten categorical) plus predictions."""
    rng = np.random.default_rng(seed)
    names = [f"cat_{i}" if i % 10 == 9 else f"num_{i}" for i in range(features)]

    def one(shift: float) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {"customer_id": np.arange(rows, dtype="int64")}
        for i, name in enumerate(names):
            if name.startswith("cat_"):
                data[name] = rng.choice(["a", "b", "c", "d", "e"], rows, p=[0.3, 0.25, 0.2, 0.15, 0.1])
            else:
                values = rng.gamma(2.0, 10.0, rows) + (shift * 10 if i % 3 == 0 else 0.0)
                values[rng.random(rows) < 0.05] = np.nan
                data[name] = values
        frame = pd.DataFrame(data)
        frame["churn_probability"] = np.clip(rng.beta(2, 5, rows) + shift / 5, 0, 1)
        frame["expected_spend"] = rng.gamma(2.0, 40.0, rows)
        frame["persona"] = rng.choice(PERSONAS, rows, p=[0.4, 0.3, 0.2, 0.1])
        return frame

    return one(0.0), one(1.0), names


def drift_report_seconds(rows: int, features: int, max_rows: int) -> tuple[float, float, float, int]:
    """Wall and CPU seconds for the drift report (run + HTML + JSON), drifted share, columns tested."""
    from monitoring.drift import run_drift
    from monitoring.policy import DriftPolicy, PredictionPolicy

    reference, current, names = make_frames(rows, features)
    policy = DriftPolicy(max_rows=max_rows)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = time.process_time()
        with timed() as t:
            run = run_drift(reference, current, names, policy, PredictionPolicy().thresholds)
            run.snapshot.save_html(str(Path(tmp) / "drift_report.html"))
            run.snapshot.save_json(str(Path(tmp) / "drift_report.json"))
        cpu = time.process_time() - cpu
    tested = sum(c.status != "insufficient_data" for c in run.summary.columns)
    return t[0], cpu, float(run.summary.drifted_share or 0.0), tested


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for the monitoring issue (``quick`` shrinks the frames for a smoke run)."""
    import evidently.metrics  # noqa: F401 - import once, outside the timing (a few seconds)

    rows_n = 10_000 if quick else 100_000
    features = 50
    label = f"{rows_n // 1000}k x {features}"
    out: list[dict] = []
    seconds, cpu, share, tested = drift_report_seconds(rows_n, features, max_rows=20_000)
    out.append(row(6, "monitoring", f"drift report {label}", seconds, "s", "< 20", seconds < 20))
    out.append(row(6, "monitoring", f"drift report {label}, CPU time of this process", cpu, "s"))
    out.append(row(6, "monitoring", f"columns tested ({label}; share drifted {share:.0%})", tested,
                   "columns"))
    if not quick:
        full, _, _, _ = drift_report_seconds(rows_n, features, max_rows=rows_n)
        out.append(row(6, "monitoring", f"drift report {label}, unsampled (for comparison)", full, "s"))
    return out
