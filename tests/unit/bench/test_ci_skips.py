"""No silent skips in CI: a missing service fails the run under ``CI=true``, with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.conftest import SERVICE_SKIP_PREFIXES

pytest_plugins = ["pytester"]

TESTS = PROJECT_ROOT / "tests"
SKIP_CALL = re.compile(r"pytest\.skip\(\s*f?[\"']([^\"']*)")


def test_every_skip_in_the_suite_names_a_service_the_ci_hook_recognises() -> None:
    # given every skip path in tests/ (pytest.skip calls, skipif markers, importorskip)
    sources = {path: path.read_text() for path in TESTS.rglob("*.py") if path.name != Path(__file__).name}

    # when their reasons are read
    reasons = {(path.name, m.group(1)) for path, text in sources.items() for m in SKIP_CALL.finditer(text)}
    calls = sum(text.count("pytest.skip(") for text in sources.values())
    other = [path.name for path, text in sources.items() if "skipif" in text or "importorskip" in text]

    # then each starts with a prefix the CI hook turns into a failure, and no other kind of skip hides
    assert len(reasons) >= 1
    assert calls == sum(len(SKIP_CALL.findall(text)) for text in sources.values()), "a skip the regex cannot read"
    assert [r for r in reasons if not r[1].startswith(SERVICE_SKIP_PREFIXES)] == []
    assert other == [], "skipif/importorskip would skip silently in CI: use pytest.skip with a service prefix"


@pytest.mark.parametrize(("ci", "expected"), [("true", {"failed": 1, "skipped": 1}), ("", {"skipped": 2})])
def test_a_missing_service_fails_under_ci_and_skips_elsewhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, expected: dict[str, int]
) -> None:
    # given the suite's conftest, a test whose service is missing and one skipped for another reason
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        def redis():
            pytest.skip("REDIS NOT REACHABLE at 127.0.0.1:1: connection refused")

        def test_needs_redis(redis):
            pass

        def test_not_applicable_here():
            pytest.skip("nothing to do with a service")
    """)
    monkeypatch.setenv("CI", ci)

    # when run
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    # then under CI the missing service is a failure naming it; elsewhere both skip
    outcomes = result.parseoutcomes()
    if ci:
        assert outcomes.get("errors", 0) + outcomes.get("failed", 0) == expected["failed"]
        result.stdout.fnmatch_lines(["*CI=true: a required service is missing*REDIS NOT REACHABLE*"])
    assert outcomes.get("skipped", 0) == expected["skipped"]
