"""Mutation testing of the pure decision modules (mutmut 3, ``[tool.mutmut]`` in pyproject.toml).

``make mutate`` runs this suite: mutmut plants small bugs (a flipped comparison, a changed
constant, a dropped call) in each function named by :data:`MUTATE_NAMES` and runs the tests
that reach it; a mutant the tests do not notice *survives*. The rows give the share killed per
module, against a target of 90%. mutmut keeps its results under ``mutants/`` and re-checks only
the functions that changed since, so a second run is quick.

Some survivors change nothing a caller can observe (SQLite ignores the case of SQL keywords; a
default argument spelled out). They are listed, each with the line mutmut wrote and why it is
equivalent, in the reviewed file :data:`EQUIVALENTS`. The rows say "killed" and, separately,
"killed or equivalent", so the list never hides a survivor; an entry whose recorded change no longer
matches the mutant of that name (the code moved) counts as a survivor until it is reviewed again.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import json
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

from bench.common import row
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
    "ingest/parse.py": ["ingest.parse.*"],
    "ingest/campaign_rules.py": ["ingest.campaign_rules.*"],
    "store/online_sqlite.py (upsert_sql guard)": ["store.online_sqlite.x_upsert_sql__*"],
    "serving/predictor.py (request validation)": [
        "serving.predictor.xǁServingPredictorǁcheck_batch_size__*", "serving.predictor.xǁServingPredictorǁcheck_ids__*",
        "serving.predictor.xǁServingPredictorǁfeature_batch__*",
    ],
}
TARGET = 0.9
EQUIVALENTS = Path(__file__).resolve().parent / "equivalent_mutants.toml"
"""Reviewed survivors that change no behaviour: mutmut name, the mutated line, the reason."""
KILLED = {1, 3}  # a test failed (3: pytest's internal error counts as a kill)
TIMEOUT = {36, 24, -24, 152, 255}  # the tests hung: noticed, counted as killed
NOT_COUNTED = {34, 37}  # skipped; caught by the type checker before tests ran


def patterns() -> list[str]:
    """Every mutmut name pattern, for ``mutmut run``."""
    return [p for names in MUTATE_NAMES.values() for p in names]


def equivalents(path: Path = EQUIVALENTS) -> dict[str, dict[str, str]]:
    """The reviewed equivalent mutants: name -> ``{"change": ..., "reason": ...}``."""
    entries = tomllib.loads(path.read_text())["mutant"]
    return {e["name"]: {"change": e["change"].strip(), "reason": e["reason"]} for e in entries}


def _function_body(text: str, function: str) -> list[str] | None:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            return (ast.get_source_segment(text, node) or "").splitlines()[1:]  # the def line names the mutant
    return None


def mutant_change(name: str, root: Path = REPO) -> str | None:
    """What mutant ``name`` (``pkg.module.x_func__mutmut_3``) changed: its ``-``/``+`` lines, stripped.

    None when mutmut's copy of the module (under ``mutants/``) lacks the mutant or the original.
    """
    module, _, function = name.rpartition(".")
    path = root / "mutants" / Path(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return None
    text = path.read_text()
    mutant = _function_body(text, function.split("ǁ")[-1])
    original = _function_body(text, function.split("ǁ")[-1].rsplit("__mutmut_", 1)[0] + "__mutmut_orig")
    if mutant is None or original is None:
        return None
    diff = difflib.unified_diff(original, mutant, lineterm="", n=0)
    return "\n".join(f"{line[0]} {line[1:].strip()}" for line in diff
                     if line[:1] in "+-" and not line.startswith(("+++", "---")))


def outcomes(root: Path = REPO, listed: dict[str, dict[str, str]] | None = None) -> dict[str, Counter]:
    """Per module: counts of ``killed``, ``survived``, ``equivalent``, ``no tests`` and ``not run``.

    A survivor counts as ``equivalent`` only when it is listed in :data:`EQUIVALENTS` and the change
    recorded there is still what mutmut planted under that name; otherwise it is ``survived`` (and
    a listed one is also counted ``stale``).
    """
    listed = equivalents() if listed is None else listed
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
            elif key in listed and listed[key]["change"] == mutant_change(key, root):
                counts["equivalent"] += 1
            else:
                counts["survived"] += 1
                counts["stale"] += key in listed
        result[module] = counts
    return result


def _row(metric: str, part: int, whole: int) -> dict:
    rate = part / whole if whole else float("nan")
    # a mutant whose tests time out counts as killed, and a busy machine times out more: so a kill rate
    # measured above the core count is noisy like a timing
    return row(18, "mutation", metric, rate, "share", f">= {TARGET:.0%}", bool(whole and rate >= TARGET))


def rows_for(results: dict[str, Counter]) -> list[dict]:
    """Per module a "killed" row (and a "killed or equivalent" one where any are listed); then totals."""
    rows = []
    total = Counter()
    for module, counts in results.items():
        checked = counts["killed"] + counts["survived"] + counts["equivalent"] + counts["no tests"]
        total.update(killed=counts["killed"], equivalent=counts["equivalent"], checked=checked)
        stale = f", {counts['stale']} listed as equivalent but changed" if counts["stale"] else ""
        rows.append(_row(f"mutants killed, {module} ({counts['killed']}/{checked}; {counts['equivalent']} "
                         f"equivalent, {counts['no tests']} reached by no test, {counts['not run']} not run{stale})",
                         counts["killed"], checked))
        if counts["equivalent"]:
            rows.append(_row(f"mutants killed or equivalent, {module} ({counts['killed']} + {counts['equivalent']} "
                             f"equivalent = {counts['killed'] + counts['equivalent']}/{checked})",
                             counts["killed"] + counts["equivalent"], checked))
    rows.append(_row(f"mutants killed, all decision modules ({total['killed']}/{total['checked']})",
                     total["killed"], total["checked"]))
    both = total["killed"] + total["equivalent"]
    rows.append(_row(f"mutants killed or equivalent, all decision modules ({total['killed']} + "
                     f"{total['equivalent']} equivalent = {both}/{total['checked']})", both, total["checked"]))
    return rows


def run(quick: bool = False) -> list[dict]:
    """Run mutmut over the decision functions (``quick``: reuse the last results) and report kill rates."""
    if not quick:
        done = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "run", *patterns()], cwd=REPO,
                              check=False)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"mutmut run exited {done.returncode}")
    return rows_for(outcomes())
