"""Our storage layout equals Feast's own for Persona's real views, and opening a home touches no environment.

``store.feast_internals`` is the only module of ``store/`` that reaches Feast's private names;
these tests check what ``store.layout`` computes from them (Redis hash keys, hashed field names,
serialized entity keys) against Feast's own functions, view by view, so a Feast upgrade that
changes the layout fails here first.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.settings import load_settings

IDS = [0, 1, 127, 128, 2**31, -1, 2**63 - 1, -(2**63)]


@pytest.fixture
def real_views(tmp_path):
    """Persona's feature views as ``feature_repo/`` defines them for a temporary home."""
    from store.repo import repo_contents

    settings = load_settings(home=tmp_path / "home")
    repo = repo_contents(settings)
    return settings, {view.name: view for view in repo.feature_views}


def _redis_config(project: str):
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.repo_config import RegistryConfig, RepoConfig

    return RepoConfig(
        project=project,
        provider="local",
        registry=RegistryConfig(path="unused.db"),
        online_store=RedisOnlineStoreConfig(connection_string="127.0.0.1:6379"),
        entity_key_serialization_version=3,
    )


def test_written_field_names_equal_feasts_hset_keys_for_every_real_view(real_views):
    from feast.infra.online_stores.redis import RedisOnlineStore

    from store.layout import redis_field_names

    # given Persona's views with a declared schema
    _, views = real_views
    declared = [view for view in views.values() if view.features]
    assert {"customer_behavior", "customer_text"} <= {view.name for view in declared}

    for view in declared:
        # when the writer computes the fields it sets
        ours = redis_field_names(view)

        # then they are Feast's: `_ts:<view>` first, then each feature's hashed name in schema order
        _, feast_keys = RedisOnlineStore()._generate_hset_keys_for_features(view)
        feast_keys = [k if isinstance(k, bytes) else k.encode() for k in feast_keys]
        assert ours == [feast_keys[-1], *feast_keys[:-1]], view.name


def test_reader_keys_and_fields_equal_feasts_for_the_behavior_view(real_views):
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from store.feast_internals import int64_entity_key
    from store.layout import RedisLayout, ViewPlan, encode_int64_entity_keys

    # given the real behavior view, every feature wanted, under a Redis config
    settings, views = real_views
    view = views["customer_behavior"]
    config = _redis_config(settings.project)
    slots = {f.name.encode(): (False, i) for i, f in enumerate(view.features)}
    layout = RedisLayout.build(config, [ViewPlan(view.name, view, slots, required=True)], "customer_id")

    # when keys are computed for ids across the int64 range
    keys = layout.keys(np.array(IDS, dtype=np.int64))
    entity_keys = encode_int64_entity_keys("customer_id", np.array(IDS, dtype=np.int64))

    # then keys, entity keys and field names are Feast's own
    for customer, key, entity_key in zip(IDS, keys, entity_keys, strict=True):
        proto = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=customer)])
        assert key == _redis_key(settings.project, proto, entity_key_serialization_version=3), customer
        assert entity_key == serialize_entity_key(proto, entity_key_serialization_version=3), customer
        assert entity_key == int64_entity_key("customer_id", customer), customer
    _, feast_fields = RedisOnlineStore()._generate_hset_keys_for_features(
        view, [f.name for f in view.features], fv_name_override=_versioned_fv_name(view, config)
    )
    assert list(layout.fields) == [k if isinstance(k, bytes) else k.encode() for k in feast_fields]


def test_two_homes_open_side_by_side_without_touching_the_environment(tmp_path):
    from store.online_sqlite import PersonaSqliteOnlineStore
    from store.repo import get_store, repo_contents

    # given two homes and a snapshot of the environment
    first = load_settings(home=tmp_path / "first")
    second = load_settings(home=tmp_path / "second", project="persona_second")
    before = dict(os.environ)

    # when both are opened and their definitions parsed in one process
    stores = [get_store(first), get_store(second)]
    sources = [
        {view.name: view.batch_source.path for view in repo_contents(s).feature_views} for s in (first, second)
    ]

    # then each reads its own home, and no variable was set or changed
    assert dict(os.environ) == before
    paths = [PersonaSqliteOnlineStore.db_path(store.config) for store in stores]
    assert paths == [str(first.feast_dir / "online_store.db"), str(second.feast_dir / "online_store.db")]
    assert [store.project for store in stores] == [first.project, "persona_second"]
    assert str(first.home) in stores[0].config.registry.path
    assert str(second.home) in stores[1].config.registry.path
    for settings, paths_by_view in zip((first, second), sources, strict=True):
        assert all(path.startswith(str(settings.home)) for path in paths_by_view.values()), paths_by_view


def test_yaml_variables_expand_from_the_given_values_only_where_named():
    from store.repo import expand_variables

    # given a yaml text with braced, bare and unknown variables
    text = "a: ${PERSONA_HOME}/x\nb: $PERSONA_PROJECT\nc: ${NOT_A_SETTING_Q}\nd: $$"

    # when expanded from a mapping
    out = expand_variables(text, {"PERSONA_HOME": "/h", "PERSONA_PROJECT": "p"})

    # then the named ones are replaced and the others kept as they are (as os.path.expandvars does)
    assert out == "a: /h/x\nb: p\nc: ${NOT_A_SETTING_Q}\nd: $$"


@pytest.mark.parametrize("project", ["persona", "shop_eu"])
def test_the_local_yaml_opens_the_settings_project_though_it_names_only_the_default(project, tmp_path):
    from store.repo import repo_config

    # given the local profile's yaml, which names the default project literally (plain `feast` needs no variable)
    settings = load_settings(home=tmp_path, project=project)
    # when Persona reads it
    config = repo_config(settings)
    # then the project is the settings' own, renamed or not
    assert config.project == project
