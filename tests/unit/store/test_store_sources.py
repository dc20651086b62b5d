"""Pure pieces of the Feast edge's source handling: declared types, failure remedies, copied homes, the repo folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from core import catalog
from core.errors import PersonaError
from core.settings import FEATURE_REPO_DIR, load_settings

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("value_type", "column", "fits"),
    [
        ("FLOAT", pa.float64(), True),
        ("FLOAT", pa.int64(), True),
        ("INT64", pa.float32(), False),
        ("INT64", pa.int32(), True),
        ("STRING", pa.string(), True),
        ("STRING", pa.dictionary(pa.int32(), pa.string()), True),
        ("FLOAT_LIST", pa.list_(pa.float32()), True),
        ("FLOAT_LIST", pa.float32(), False),
        ("BOOL", pa.int64(), False),
        ("INT64", pa.null(), True),
    ],
)
def test_a_column_fits_its_declared_type_only_when_it_encodes_to_it(value_type, column, fits):
    from store.source_types import accepts, arrow_kind

    assert accepts(value_type, arrow_kind(column)) is fits


def test_postgres_column_kinds_match_arrow_kinds():
    from store.source_types import arrow_kind, postgres_kind

    assert postgres_kind("float4") == arrow_kind(pa.float32())
    assert postgres_kind("int8") == arrow_kind(pa.int64())
    assert postgres_kind("_float4") == arrow_kind(pa.list_(pa.float32()))
    assert postgres_kind("text") == arrow_kind(pa.string())


def test_a_type_mismatch_is_one_line_naming_view_column_declared_and_found():
    from store.source_types import type_mismatch

    # when / then
    line = type_mismatch("loyalty", "points", "Int64", "INT64", "float", "/data/loyalty.parquet")
    assert line is not None
    assert "\n" not in line
    assert line.startswith("feature view loyalty: column points is declared Int64 but /data/loyalty.parquet has float")
    missing = type_mismatch("loyalty", "points", "Int64", "INT64", None, "/data/loyalty.parquet")
    assert missing is not None
    assert "has no column points" in missing
    assert type_mismatch("loyalty", "points", "Float32", "FLOAT", "float", "x") is None


def test_only_a_passing_outage_is_told_to_rerun():
    from store.materialize_view import failure_remedy

    class OperationalError(Exception):  # as psycopg and SQLAlchemy name theirs
        pass

    assert "converges" in failure_remedy(ConnectionRefusedError("refused"))
    assert "converges" in failure_remedy(OperationalError("server closed the connection"))
    assert "a rerun will not fix this" in failure_remedy(TypeError("must be real number, not list"))
    assert "converges" not in failure_remedy(ValueError("bad value"))


def test_persona_sources_of_another_home_give_that_home_away(tmp_path: Path):
    from store.home_sources import foreign_home

    # given the registry paths of this home, of another home, and a user's own file
    settings = load_settings(home=tmp_path / "copy")
    own = {f"{name}_source": str(catalog.offline_source(settings, name)) for name in catalog.BUILT_SOURCES}
    other = load_settings(home=tmp_path / "original")
    theirs = {f"{name}_source": str(catalog.offline_source(other, name)) for name in catalog.BUILT_SOURCES}

    # then only Persona's sources under another home count
    assert foreign_home(settings, {**own, "loyalty_source": "/data/loyalty.parquet"}) is None
    assert foreign_home(settings, theirs) == other.home


def test_the_feature_repo_setting_defaults_to_the_packaged_folder_and_refuses_an_empty_one(tmp_path: Path):
    # given / when / then
    assert load_settings().feature_repo == FEATURE_REPO_DIR
    assert load_settings(feature_repo=tmp_path).feature_repo == tmp_path.resolve()
    with pytest.raises(PersonaError, match="PERSONA_FEATURE_REPO"):
        load_settings(feature_repo=" ")


def test_feasts_yaml_comes_from_the_users_folder_only_when_it_has_one(tmp_path: Path):
    # given a folder without and then with its own yaml
    settings = load_settings(feature_repo=tmp_path)
    assert settings.feature_store_yaml == FEATURE_REPO_DIR / "feature_store.yaml"

    # when the folder gets one, then it is used
    (tmp_path / "feature_store.yaml").write_text("project: mine\n")
    assert settings.feature_store_yaml == tmp_path / "feature_store.yaml"


def test_a_missing_user_folder_is_refused_with_the_setting_named(tmp_path: Path):
    from store.repo_files import parse_definitions

    with pytest.raises(PersonaError, match=r"PERSONA_FEATURE_REPO=.*nowhere: no such folder"):
        parse_definitions(load_settings(feature_repo=tmp_path / "nowhere"))


def test_a_user_module_named_like_an_installed_module_is_refused(tmp_path: Path):
    from store.repo_files import parse_definitions

    # given a user file that would shadow an installed module
    (tmp_path / "yaml.py").write_text("X = 1\n")

    # when / then
    with pytest.raises(PersonaError, match=r"yaml\.py: module name 'yaml' is taken by an installed module"):
        parse_definitions(load_settings(feature_repo=tmp_path))


def test_definitions_read_under_another_homes_settings_are_parsed_again_then_refused(tmp_path, monkeypatch):
    import store.repo_files as repo_files

    # given a parse that first yields the definitions of another home (as when another thread imported them)
    here = load_settings(home=tmp_path / "here")
    there = load_settings(home=tmp_path / "there")
    real_parse = repo_files._parse_folder
    stale = _parse_under(there, real_parse)
    calls = []

    def parse_stale_once(folder):
        calls.append(folder)
        return stale if len(calls) == 1 else real_parse(folder)

    monkeypatch.setattr(repo_files, "_parse_folder", parse_stale_once)

    # when the definitions are parsed for this home, then the second, fresh parse is used
    parsed = repo_files.parse_definitions(here)
    paths = {s.name: s.path for s in parsed.contents.data_sources}
    assert paths["customer_behavior_source"] == str(catalog.offline_source(here, "customer_behavior"))
    assert len(calls) == 2

    # and when every parse is stale, the definitions are refused with both homes named
    monkeypatch.setattr(repo_files, "_parse_folder", lambda folder: stale)
    with pytest.raises(PersonaError, match=r"settings of another home \(.*there\) instead of .*here"):
        repo_files.parse_definitions(here)


def _parse_under(settings, parse):
    """What ``parse`` of the packaged folder gives under ``settings``."""
    from core.runtime import using

    with using(settings):
        return parse(FEATURE_REPO_DIR.resolve())
