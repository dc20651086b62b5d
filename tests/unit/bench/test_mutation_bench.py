"""The mutation rows count equivalent mutants apart from killed ones, and only while the list still matches."""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from typing import TYPE_CHECKING

from bench.mutation_bench import equivalents, outcomes, patterns, rows_for

if TYPE_CHECKING:
    from pathlib import Path

_NAME = "store.online_sqlite.x_upsert_sql__mutmut_{}"


def _mutants(root: Path, codes: dict[str, int]) -> None:
    folder = root / "mutants" / "store"
    folder.mkdir(parents=True)
    (folder / "online_sqlite.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    (folder / "online_sqlite.py").write_text(
        "def x_upsert_sql__mutmut_orig(table):\n    return 'ON CONFLICT DO UPDATE'\n\n\n"
        "def x_upsert_sql__mutmut_2(table):\n    return 'on conflict do update'\n\n\n"
        "def x_upsert_sql__mutmut_3(table):\n    return 'ON CONFLICT DO UPDATE SET'\n")


def test_a_listed_survivor_counts_as_equivalent_only_while_its_change_still_matches(tmp_path: Path) -> None:
    # given one killed mutant and two survivors listed with the same change; mutmut now plants another at _3
    _mutants(tmp_path, {_NAME.format(1): 1, _NAME.format(2): 0, _NAME.format(3): 0})
    listed = {_NAME.format(2): {"change": "- return 'ON CONFLICT DO UPDATE'\n+ return 'on conflict do update'",
                                "reason": "case"},
              _NAME.format(3): {"change": "- return 'ON CONFLICT DO UPDATE'\n+ return 'on conflict do update'",
                                "reason": "case"}}

    # when
    counts = outcomes(tmp_path, listed)["store/online_sqlite.py (upsert_sql guard)"]

    # then
    assert (counts["killed"], counts["equivalent"], counts["survived"], counts["stale"]) == (1, 1, 1, 1)


def test_killed_and_killed_or_equivalent_are_separate_rows() -> None:
    # given 8 killed, 1 equivalent and 1 survivor in one module, nothing in another
    results = {"m.py": Counter(killed=8, equivalent=1, survived=1), "n.py": Counter()}

    # when
    rows = rows_for(results)

    # then the killed share stays below target; the equivalent one is shown beside it, not folded in
    assert [(r["metric"], r["value"], r["ok"]) for r in rows if "n.py" not in r["metric"]] == [
        ("mutants killed, m.py (8/10; 1 equivalent, 0 reached by no test, 0 not run)", 0.8, False),
        ("mutants killed or equivalent, m.py (8 + 1 equivalent = 9/10)", 0.9, True),
        ("mutants killed, all decision modules (8/10)", 0.8, False),
        ("mutants killed or equivalent, all decision modules (8 + 1 equivalent = 9/10)", 0.9, True),
    ]
    assert all(r.get("load_sensitive", True) for r in rows)  # timeouts count as kills: noisy under load


def test_every_listed_equivalent_names_a_mutated_function_the_change_and_why() -> None:
    # given / when
    listed = equivalents()

    # then
    assert listed
    for name, entry in listed.items():
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns()), name
        assert entry["change"].startswith("- "), name
        assert "\n+ " in entry["change"], name
        assert len(entry["reason"]) > 40, name
