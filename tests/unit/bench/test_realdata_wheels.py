"""The real-data wheels: pinned once, fetched by `make setup`, and a missing or altered one fails with its fix."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
from typing import TYPE_CHECKING

import pytest

from bench import realdata_bench
from bench.realdata_bench import ISLP_WHEEL, WHEELS_FILE, islp_table, pinned_wheel_hash
from core.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def no_installed_islp(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ISLP" else real(name, *a))


def test_the_makefile_downloads_the_pinned_wheel_the_bench_reads() -> None:
    # given the Makefile and the pinned requirements file
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    # then setup fetches the wheel the bench reads, hash-checked, from the file that pins it
    assert re.search(rf"^ISLP_WHEEL := {re.escape(ISLP_WHEEL)}$", makefile, re.M)
    assert re.search(r"^setup: .*\$\(REALDATA_WHEELS\)/\$\(ISLP_WHEEL\)", makefile, re.M)
    assert "--require-hashes" in makefile
    assert f"-r bench/{WHEELS_FILE.name}" in makefile
    assert re.fullmatch(r"[0-9a-f]{64}", pinned_wheel_hash())


@pytest.mark.usefixtures("no_installed_islp")
def test_a_missing_wheel_names_make_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an empty wheels folder
    monkeypatch.setenv("REALDATA_WHEELS", str(tmp_path))
    # then reading Caravan fails with one line saying what to run
    with pytest.raises(FileNotFoundError, match=r"^Caravan ships in .*islp-0\.6\.0.*\(missing\); run `make setup`"):
        islp_table("Caravan")


@pytest.mark.usefixtures("no_installed_islp")
def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a wheel of the right name whose bytes are not the pinned ones
    (tmp_path / ISLP_WHEEL).write_bytes(b"not the wheel")
    monkeypatch.setenv("REALDATA_WHEELS", str(tmp_path))
    # then it is refused before it is read
    with pytest.raises(FileNotFoundError, match=r"does not match the sha256 pinned in realdata-wheels\.txt"):
        islp_table("Caravan")


@pytest.mark.usefixtures("no_installed_islp")
def test_the_pinned_wheel_gives_the_whole_caravan_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the wheel `make setup` downloaded, in a folder of its own
    wheel = realdata_bench.wheels_dir() / ISLP_WHEEL
    if not wheel.is_file():
        pytest.fail(f"{wheel} is missing; run `make setup`", pytrace=False)
    shutil.copy(wheel, tmp_path / ISLP_WHEEL)
    monkeypatch.setenv("REALDATA_WHEELS", str(tmp_path))
    # when Caravan is read from it
    table = islp_table("Caravan")
    # then it is the published table: 5,822 customers, 85 attributes and Purchase, 348 buyers
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == pinned_wheel_hash()
    assert table.shape == (5822, 86)
    assert (table["Purchase"] == "Yes").sum() == 348
