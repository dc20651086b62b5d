"""MLflow edges: tracking setup, aliases with a recorded history, promote and rollback.

Every alias move is written into model version tags (``persona.alias_history``, a JSON list of
``{seq, at, requested_at, alias, from, to, reason}``) on both the version that gains the alias
and the one that loses it; ``seq`` numbers the moves of one alias (1, 2, ...; the latest number
is the registered model tag ``persona.alias_moves.<alias>``). A version promoted to ``champion``
remembers whom it replaced (``persona.previous_champion``); ``rollback`` walks back along that chain.
The version that gains an alias also gets a description naming the alias, the time and the reason
(the gate's verdict, or the operator's), which the MLflow UI shows on the version page.

Concurrent moves (two ops promoting at once, a retrain's gate during a manual promotion): moves
of one alias are serialized by a lock, a Postgres advisory lock in the production profile and a
file lock beside the SQLite registry locally. Under the lock a move reads the current holder,
moves the alias and writes the history, so the moves form one chain (each ``from`` is the
previous ``to``) and none is lost. The winner is the move that takes the lock last: Postgres
grants a waited-for advisory lock first come, first served, so of promotions requested while
another held the lock, the one requested last wins. ``promote(..., expect_champion=v)`` and
``move_alias(..., expect_from=v)`` are compare-and-set moves: they fail (:class:`AliasMoved`) if
the alias moved away from ``v`` meanwhile, e.g. after a gate decided against ``v``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import catalog
from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.settings import Settings

CHAMPION = "champion"  # the alias serving, scoring and monitoring load
CHALLENGER = "challenger"  # a registered candidate the gate did not promote

HISTORY_TAG = "persona.alias_history"
PREVIOUS_CHAMPION_TAG = "persona.previous_champion"
SEQ_TAG_PREFIX = "persona.alias_moves."  # registered model tag: number of moves of an alias so far
LOCK_TIMEOUT_S = 120.0


def configure_mlflow(settings: Settings):
    """Point MLflow (tracking and registry) at this profile's store and return a client.

    The local profile keeps a SQLite backend under ``settings.mlflow_dir`` (absolute, so it
    does not depend on the working directory). A tracking server with authentication (the prod
    profile's) gets ``PERSONA_MLFLOW_USERNAME/PASSWORD`` through MLflow's own
    ``MLFLOW_TRACKING_USERNAME/PASSWORD``, the only way its clients take credentials.
    """
    import os

    import mlflow
    from mlflow import MlflowClient

    if settings.profile == "local" and not settings.mlflow_tracking_uri:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    if settings.mlflow_password is not None and settings.tracking_uri.startswith(("http://", "https://")):
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_password.get_secret_value()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_experiment(client, settings: Settings, name: str) -> str:
    """The experiment id, creating it with local artifacts (``settings.artifact_root``) if needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (
        settings.artifact_root if settings.profile == "local" and not settings.mlflow_tracking_uri else None
    )
    return client.create_experiment(name, artifact_location=location)


def alias_version(client, model: str, alias: str) -> str | None:
    """The version holding ``alias``, or None (also when the model is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def _history(client, model: str, version: str) -> list[dict]:
    tags = client.get_model_version(model, version).tags or {}
    try:
        return list(json.loads(tags.get(HISTORY_TAG, "[]")))
    except json.JSONDecodeError:
        return []


def alias_history(client, model: str, version: str) -> list[dict]:
    """Every alias move that touched ``version`` (oldest first)."""
    return _history(client, model, str(version))


# ---------------------------------------------------------------- one alias move at a time
def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock id for ``name`` (stable across processes and hosts)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def _advisory_lock(settings: Settings, name: str, timeout_s: float) -> Iterator[None]:
    """Hold a session-level Postgres advisory lock; Postgres grants waiters first come, first served."""
    import psycopg

    from store.offline import postgres_url

    try:
        conn = psycopg.connect(postgres_url(settings), connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        raise PersonaError(
            f"cannot reach Postgres at {settings.postgres_host}:{settings.postgres_port} (database "
            f"{settings.postgres_db}) to lock the model registry: {str(exc).strip().splitlines()[0]}; "
            "run `persona prod up`"
        ) from None
    with conn:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(timeout_s * 1000)}ms",))
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (_lock_key(name),))
        except psycopg.errors.LockNotAvailable:
            raise PersonaError(f"another alias move has held the registry lock for more than {timeout_s:g} s "
                               f"({name}); retry when it has finished") from None
        try:
            yield
        finally:
            # closing the session releases the lock too (also when this process dies)
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(name),))


@contextlib.contextmanager
def alias_lock(
    client,
    model: str,
    alias: str,
    settings: Settings | None = None,
    timeout_s: float = LOCK_TIMEOUT_S,
) -> Iterator[None]:
    """Hold the lock that serializes moves of ``model@alias`` (see module docstring).

    Scope: a SQLite registry is locked by a file beside its database; any other registry (the
    MLflow server of the production profile) by a Postgres advisory lock in Persona's database
    (``settings``, default: from the environment), keyed by registry URI, model and alias.

    Raises:
        PersonaError: the lock stayed held for ``timeout_s``, or Postgres is unreachable.
    """
    from core.locks import AlreadyRunning, exclusive

    uri = client.tracking_uri
    name = f"{uri}|{model}|{alias}"
    digest = hashlib.blake2b(f"{model}|{alias}".encode(), digest_size=6).hexdigest()
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        path = database.parent / "locks" / f"alias-{digest}.lock"
    else:
        if settings is None:
            from core.settings import load_settings

            settings = load_settings()
        if settings.profile == "prod":
            with _advisory_lock(settings, name, timeout_s):
                yield
            return
        path = catalog.locks_dir(settings) / f"alias-{digest}.lock"
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive(path, timeout_s=timeout_s, what=f"the registry lock of {model}@{alias}"))
        except AlreadyRunning as exc:
            raise PersonaError(f"{exc}; retry when that move has finished") from None
        yield


ANY_HOLDER = object()  # move_alias(expect_from=...): no expectation


class AliasMoved(PersonaError):
    """The alias is not where a compare-and-set move expected it."""

    def __init__(self, model: str, alias: str, current: str | None, expected: str | None) -> None:
        self.current, self.expected = current, expected
        super().__init__(
            f"{alias} of {model!r} is v{current or '-'}, not v{expected or '-'}: it moved meanwhile; "
            f"review v{current or '-'} and retry with --expect-{alias} {current or '-'} if still intended"
        )


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _next_seq(client, model: str, alias: str) -> int:
    tags = client.get_registered_model(model).tags or {}
    try:
        return int(tags.get(SEQ_TAG_PREFIX + alias, "0")) + 1
    except ValueError:
        return 1


def _move_locked(
    client,
    model: str,
    alias: str,
    version: str,
    reason: str,
    requested_at: dt.datetime,
    now: dt.datetime | None = None,
    record_previous: bool = True,
) -> dict:
    """The move itself; the caller holds :func:`alias_lock`."""
    previous = alias_version(client, model, alias)
    seq = _next_seq(client, model, alias)
    # number first: a move cut short leaves a gap in the numbering, never two moves with one number
    client.set_registered_model_tag(model, SEQ_TAG_PREFIX + alias, str(seq))
    entry = {
        "seq": seq,
        "at": (now or _utc_now()).isoformat(timespec="microseconds"),
        "requested_at": requested_at.isoformat(timespec="microseconds"),
        "alias": alias,
        "from": previous,
        "to": version,
        "reason": reason,
    }
    client.set_registered_model_alias(model, alias, version)
    for touched in sorted(v for v in {version, previous} if v is not None):
        history = _history(client, model, touched) + [entry]
        client.set_model_version_tag(model, touched, HISTORY_TAG, json.dumps(history))
    if alias == CHAMPION and record_previous and previous and previous != version:
        client.set_model_version_tag(model, version, PREVIOUS_CHAMPION_TAG, previous)
    client.update_model_version(model, version, description=version_description(entry))
    return entry


def version_description(entry: dict) -> str:
    """The registry description of the version an alias moved to: which alias, since when, and why.

    The MLflow UI shows descriptions on the version page, so the gate's reason (or a manual
    promotion's) is read there, not only in the JSON history tag.
    """
    previous = f", replacing v{entry['from']}" if entry.get("from") and entry["from"] != entry["to"] else ""
    return f"{entry['alias']} since {entry['at'][:19]}Z (move {entry['seq']}{previous}): {entry['reason']}"


def move_alias(
    client,
    model: str,
    alias: str,
    version: str,
    reason: str,
    now: dt.datetime | None = None,
    record_previous: bool = True,
    settings: Settings | None = None,
    expect_from: str | None | object = ANY_HOLDER,
) -> dict:
    """Move ``alias`` to ``version`` and record the move on the versions involved.

    The move holds :func:`alias_lock`: the replaced version (``from``) is read under the lock,
    so concurrent moves form one chain and none is lost.

    Args:
        client: MLflow client.
        model: registered model name.
        alias: e.g. ``champion``.
        version: the version that receives the alias.
        reason: why (shown in the history).
        now: time of the move (default: now, UTC).
        record_previous: for ``champion``, remember the replaced version for rollback.
        settings: where the production profile's lock lives (default: from the environment).
        expect_from: move only if ``alias`` is still on this version (None: on no version), e.g.
            the champion a gate decision was made against; default: whatever holds it.

    Returns:
        The history entry ``{seq, at, requested_at, alias, from, to, reason}``.

    Raises:
        AliasMoved: ``alias`` is not on ``expect_from`` (nothing was changed).
    """
    requested_at = _utc_now()
    with alias_lock(client, model, alias, settings):
        if expect_from is not ANY_HOLDER:
            current = alias_version(client, model, alias)
            expected = None if expect_from is None else str(expect_from)
            if current != expected:
                raise AliasMoved(model, alias, current, expected)
        return _move_locked(client, model, alias, str(version), reason, requested_at, now, record_previous)


@dataclass(frozen=True)
class AliasMove:
    """Result of promote/rollback, for the CLI."""

    model: str
    alias: str
    from_version: str | None
    to_version: str
    reason: str
    seq: int | None = None

    def summary(self) -> str:
        """One line for the terminal: which alias moved from which version to which, and why."""
        move = f" (move {self.seq})" if self.seq is not None else ""
        return (f"{self.model}@{self.alias}: v{self.from_version or '-'} -> v{self.to_version}{move} "
                f"({self.reason})")


def _check_version(client, model: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model, str(version))
    except MlflowException:
        raise PersonaError(
            f"model {model!r} has no version {version}; see the MLflow UI or `persona train` to register one"
        ) from None


def promote(
    settings: Settings,
    version: int | str,
    reason: str | None = None,
    expect_champion: int | str | None = None,
    model: str | None = None,
) -> AliasMove:
    """Make ``version`` the champion by hand (ops decision, bypassing the gate).

    The check and the move happen under :func:`alias_lock`; of concurrent promotions the one
    that takes the lock last is the champion afterwards (see module docstring).

    Args:
        settings: Persona settings.
        version: the version to promote.
        reason: why (kept in the alias history).
        expect_champion: promote only if this version is still the champion (compare-and-set).
        model: the registered model (default the persona model, ``settings.registered_model``;
            ``persona-<target>`` for a custom target).

    Raises:
        PersonaError: unknown version, it is already the champion, or the champion is not
            ``expect_champion`` any more.
    """
    requested_at = _utc_now()
    client = configure_mlflow(settings)
    model = model or settings.registered_model
    version = str(version)
    _check_version(client, model, version)
    with alias_lock(client, model, CHAMPION, settings):
        current = alias_version(client, model, CHAMPION)
        if expect_champion is not None and current != str(expect_champion):
            raise AliasMoved(model, CHAMPION, current, str(expect_champion))
        if current == version:
            raise PersonaError(f"v{version} is already the champion of {model!r}; nothing to do")
        entry = _move_locked(client, model, CHAMPION, version, reason or "manual promotion (persona promote)",
                             requested_at)
    with alias_lock(client, model, CHALLENGER, settings):
        if alias_version(client, model, CHALLENGER) == version:
            client.delete_registered_model_alias(model, CHALLENGER)
    return AliasMove(model, CHAMPION, entry["from"], version, entry["reason"], entry["seq"])


def rollback(settings: Settings, reason: str | None = None) -> AliasMove:
    """Move ``champion`` back to the version the current champion replaced.

    Raises:
        PersonaError: no champion, or the champion replaced nobody.
    """
    requested_at = _utc_now()
    client = configure_mlflow(settings)
    model = settings.registered_model
    with alias_lock(client, model, CHAMPION, settings):
        current = alias_version(client, model, CHAMPION)
        if current is None:
            raise PersonaError(f"model {model!r} has no champion to roll back; train one with `persona train`")
        tags = client.get_model_version(model, current).tags or {}
        target = tags.get(PREVIOUS_CHAMPION_TAG)
        if not target:
            raise PersonaError(
                f"champion v{current} of {model!r} replaced no earlier champion; nothing to roll back to"
            )
        _check_version(client, model, target)
        entry = _move_locked(client, model, CHAMPION, target, reason or f"rollback from v{current}",
                             requested_at, record_previous=False)
    return AliasMove(model, CHAMPION, entry["from"], target, entry["reason"], entry["seq"])
