"""How the serving reader talks to an online store that may be down: errors, timeouts, the Redis client.

A store that cannot be reached must not hang a request: the Redis client the reader uses has
short socket timeouts and at most one immediate reconnect (Feast's own client has no timeout
and retries three times with backoff of up to seconds). Failures are sorted into "unreachable"
(retry later, HTTP 503) and "answered with an error".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

DEFAULT_TIMEOUT_SECONDS = 0.3  # connect and read timeout of one online-store call (the settings' default)


class FeatureStoreError(RuntimeError):
    """The online store cannot answer (missing table, unreadable file, unknown view)."""


class OnlineStoreUnavailable(FeatureStoreError):
    """The online store cannot be reached (down, hung, refusing connections); retrying later may work.

    Attributes:
        retry_after: seconds after which the reader tries the store again.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def online_store_timeout(settings: Settings) -> float:
    """Seconds one online-store call may take (``settings.online_store_timeout_seconds``, validated > 0)."""
    return settings.online_store_timeout_seconds


def _redis_nodes(connection_string: str) -> str:
    """``host:port`` entries of a Feast Redis connection string (options such as passwords left out)."""
    return ",".join(part for part in connection_string.split(",") if "=" not in part)


def bounded_redis_client(config, timeout: float):
    """A redis-py client for Feast's Redis online store that gives up after ``timeout`` seconds.

    Feast builds its redis-py client from the connection string only, with no socket timeout
    (a hung Redis blocks forever) and redis-py's default retry policy (three retries with
    exponential backoff, seconds in total). This client has the connection string's own
    options, ``timeout`` as connect and read timeout unless the string sets them, and one
    immediate reconnect on a refused or dropped connection (a pooled connection left over from
    before a Redis restart); a timeout is not retried. Wrapped in a Feast store
    (:func:`store.feast_internals.redis_store_with_client`), Feast's own ``online_read`` reads
    through it, so keys and values are exactly Feast's.

    Args:
        config: the store's ``RedisOnlineStoreConfig``.
        timeout: seconds.
    """
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    from store.feast_internals import RedisType, parse_redis_connection_string

    nodes, kwargs = parse_redis_connection_string(config.connection_string)
    kwargs.setdefault("socket_timeout", timeout)
    kwargs.setdefault("socket_connect_timeout", timeout)
    kwargs["retry"] = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    client: Any
    if config.redis_type == RedisType.redis_cluster:
        from redis.cluster import ClusterNode, RedisCluster

        client = RedisCluster(startup_nodes=[ClusterNode(**node) for node in nodes], **kwargs)
    elif config.redis_type == RedisType.redis_sentinel:
        from redis.sentinel import Sentinel

        hosts = [(node["host"], int(node["port"])) for node in nodes]
        client = Sentinel(hosts, **kwargs).master_for(config.sentinel_master)
    else:
        client = Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)
    return client


def is_redis_error(exc: BaseException) -> bool:
    """Whether ``exc`` is any redis-py error (False when redis-py is not installed)."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return False
    return isinstance(exc, RedisError)


def is_unreachable(exc: BaseException) -> bool:
    """A connection-level failure (refused, reset, timed out), not a bad answer."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def describe_online_store(config) -> str:
    """``redis 127.0.0.1:6379`` / ``sqlite /path/online_store.db``: where reads go (no credentials)."""
    kind = str(getattr(config, "type", "") or type(config).__name__)
    connection = getattr(config, "connection_string", None)
    if connection:
        return f"{kind} {_redis_nodes(connection)}"
    path = getattr(config, "path", None)
    return f"{kind} {path}" if path else kind
