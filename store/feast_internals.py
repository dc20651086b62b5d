"""The one place Persona touches Feast's private names and storage internals.

Persona's fast paths write and read Feast's online storage directly (the SQLite store's rows,
the Redis store's hashes), so they depend on how Feast lays that storage out: the v3 serialized
entity key, the mmh3-hashed Redis field names, the versioned view name, the provider's online
store object and its redis-py client, the protobuf value classes. Each of those is reached here
and nowhere else in ``store/``, so a Feast upgrade has one module to review, and
``tests/test_feast_internals.py`` checks the layout computed from these names against Feast's own
functions. Feast is pinned to the tested minor in ``pyproject.toml``.

Importing this module imports Feast; modules on the serving hot path import it lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType as ValueTypeProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.repo_config import RepoConfig

__all__ = [
    "EntityKeyProto",
    "OnlineStore",
    "RedisType",
    "ValueProto",
    "ValueTypeProto",
    "apply_repo_objects",
    "hashed_field_name",
    "int64_entity_key",
    "offline_store_of",
    "online_store_of",
    "parse_redis_connection_string",
    "parse_repo_modules",
    "postgres_offline_connection",
    "python_value",
    "python_value_of",
    "redis_client_of",
    "redis_store_with_client",
    "serialize_entity_key",
    "value_bytes",
    "versioned_view_name",
]


# ---- online storage layout ----
def hashed_field_name(view_name: str, feature: str) -> bytes:
    """The Redis hash field of ``feature`` of view ``view_name`` (Feast's ``_mmh3("<view>:<feature>")``)."""
    return _mmh3(f"{view_name}:{feature}")


def versioned_view_name(view: FeatureView, config: RepoConfig) -> str:
    """The view's name as Feast's Redis store writes it (with a version suffix when versioning is on)."""
    return _versioned_fv_name(view, config)


def int64_entity_key(join_key: str, value: int, version: int = 3) -> bytes:
    """Feast's serialized entity key of one INT64 join key (the reference for the vectorized encoder)."""
    proto = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=int(value))])
    return serialize_entity_key(proto, entity_key_serialization_version=version)


# ---- values ----
def value_bytes(values: list, value_type: Any) -> list[bytes]:
    """Feast's own serialized ``ValueProto`` of each Python value (``feast.value_type.ValueType``)."""
    return [proto.SerializeToString() for proto in python_values_to_proto_values(values, value_type)]


def python_value(raw: bytes) -> object:
    """The Python value of a serialized ``ValueProto`` by Feast's own conversion."""
    return python_value_of(ValueProto.FromString(raw))


def python_value_of(proto: ValueProto) -> object:
    """The Python value of a ``ValueProto`` by Feast's own conversion."""
    return feast_value_type_to_python_type(proto)


# ---- the provider's stores and clients ----
def online_store_of(store: FeatureStore) -> Any:
    """The online store object Feast's provider reads and writes through."""
    return store._get_provider().online_store


def redis_client_of(store: FeatureStore) -> Any:
    """The redis-py client of the store's Redis online store (Feast creates it on first use)."""
    return online_store_of(store)._get_client(store.config.online_store)


def parse_redis_connection_string(connection_string: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(startup nodes, client options)`` of a Feast Redis connection string, as Feast parses it."""
    return RedisOnlineStore._parse_connection_string(connection_string)


def redis_store_with_client(client: Any) -> RedisOnlineStore:
    """A Feast ``RedisOnlineStore`` that reads and writes through ``client`` (Feast uses a set client)."""
    store = RedisOnlineStore()
    store._client = client
    return store


def offline_store_of(config: RepoConfig) -> Any:
    """Feast's offline store object for ``config``."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    return get_offline_store_from_config(config.offline_store)


def postgres_offline_connection(config: RepoConfig) -> Any:
    """A psycopg connection to the Postgres offline store, opened the way Feast opens it (a context manager)."""
    from feast.infra.utils.postgres.connection_utils import _get_conn

    return _get_conn(config.offline_store)


# ---- the repo (what ``feast apply`` does) ----
def parse_repo_modules(repo_dir: Any) -> tuple[Any, list[str]]:
    """``(parse function, module names)`` of the repo's definition files (honouring ``.feastignore``).

    The caller drops the module names from ``sys.modules`` before parsing, so definitions are
    imported afresh (see :func:`store.repo.repo_contents`).
    """
    from feast.repo_operations import get_repo_files, parse_repo, py_path_to_module

    return parse_repo, [py_path_to_module(path) for path in get_repo_files(repo_dir)]


def apply_repo_objects(store: FeatureStore, repo: Any) -> None:
    """Register ``repo``'s objects and remove those no longer defined, as ``feast apply`` does."""
    from feast.repo_operations import apply_total_with_repo_instance

    apply_total_with_repo_instance(store, store.project, store.registry, repo, skip_source_validation=False)

