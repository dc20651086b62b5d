"""Mutation testing of the pure decision modules (mutmut 3, ``[tool.mutmut]`` in pyproject.toml).

``make mutate`` runs this suite: mutmut plants small bugs (a flipped comparison, a changed
constant, a dropped call) in each function named by :data:`MUTATE_NAMES` and runs the tests
that reach it; a mutant the tests do not notice *survives*. The rows give the share killed per
module, against a target of 90%. mutmut keeps its results under ``mutants/`` and re-checks only
the functions that changed since, so a second run is quick.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.provenance import REPO

# The decision functions of each module (mutmut names: module.x_function, module.xǁClassǁmethod).
MUTATE_NAMES = {
    "training/gate.py": ["training.gate.*"],
    "training/labels.py": ["training.labels.*"],
    "monitoring/policy.py": ["monitoring.policy.*"],
    "ingest/validate.py + run.py (counting, validation)": [
        "ingest.validate.x_validate__*", "ingest.validate.x_validate_table__*", "ingest.validate.x_missing_columns__*",
        "ingest.validate.x__reason_codes__*", "ingest.run.x_ingest_files__*",
    ],
    "store/online_sqlite.py (upsert_sql guard)": ["store.online_sqlite.x_upsert_sql__*"],
    "serving/predictor.py (request validation)": [
        "serving.predictor.xǁServingPredictorǁcheck_batch_size__*", "serving.predictor.xǁServingPredictorǁcheck_ids__*",
        "serving.predictor.xǁServingPredictorǁfeature_batch__*",
    ],
}
TARGET = 0.9
KILLED = {1, 3}  # a test failed (3: pytest's internal error counts as a kill)
TIMEOUT = {36, 24, -24, 152, 255}  # the tests hung: noticed, counted as killed
NOT_COUNTED = {34, 37}  # skipped; caught by the type checker before tests ran


def patterns() -> list[str]:
    """Every mutmut name pattern, for ``mutmut run``."""
    return [p for names in MUTATE_NAMES.values() for p in names]


def outcomes(root: Path = REPO) -> dict[str, Counter]:
    """Per module: counts of ``killed``, ``survived``, ``no tests`` and ``not run`` from mutmut's results."""
    codes: dict[str, int | None] = {}
    for meta in (root / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    result: dict[str, Counter] = {}
    for module, names in MUTATE_NAMES.items():
        counts: Counter = Counter()
        for key, code in codes.items():
            if not any(fnmatch.fnmatchcase(key, p) for p in names):
                continue
            if code is None:
                counts["not run"] += 1
            elif code in KILLED or code in TIMEOUT:
                counts["killed"] += 1
            elif code in NOT_COUNTED:
                counts["not counted"] += 1
            elif code in (5, 33):
                counts["no tests"] += 1
            else:
                counts["survived"] += 1
        result[module] = counts
    return result


def rows_for(results: dict[str, Counter]) -> list[dict]:
    """One kill-rate row per module and one for all of them."""
    rows = []
    total_killed = total = 0
    for module, counts in results.items():
        checked = counts["killed"] + counts["survived"] + counts["no tests"]
        total_killed += counts["killed"]
        total += checked
        rate = counts["killed"] / checked if checked else float("nan")
        metric = (f"mutants killed, {module} ({counts['killed']}/{checked}; "
                  f"{counts['no tests']} reached by no test, {counts['not run']} not run)")
        rows.append({"issue": 18, "area": "mutation", "metric": metric, "value": rate, "unit": "share",
                     "target": f">= {TARGET:.0%}", "ok": bool(checked and rate >= TARGET)})
    rate = total_killed / total if total else float("nan")
    metric = f"mutants killed, all decision modules ({total_killed}/{total})"
    rows.append({"issue": 18, "area": "mutation", "metric": metric, "value": rate, "unit": "share",
                 "target": f">= {TARGET:.0%}", "ok": bool(total and rate >= TARGET)})
    return rows


def run(quick: bool = False) -> list[dict]:
    """Run mutmut over the decision functions (``quick``: reuse the last results) and report kill rates."""
    if not quick:
        done = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "run", *patterns()], cwd=REPO,
                              check=False)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"mutmut run exited {done.returncode}")
    return rows_for(outcomes())
