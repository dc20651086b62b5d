"""Edges to Feast: open the store for a profile, apply the repo, materialize, check consistency.

Nothing here runs at import; every function takes :class:`core.settings.Settings` and nothing
touches the process environment: Feast's config is built from the profile's yaml with its
``${VAR}``s expanded from the settings, and the definitions read the settings of the job through
:func:`core.runtime.using`, so one process can open two homes side by side.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.errors import PersonaError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime
    from pathlib import Path

    from core.progress import ProgressEvent
    from core.settings import Settings

ENTITY_KEY = "customer_id"


def load_feast() -> None:
    """Import Feast now (it resets warning filters on import; callers silence warnings after it)."""
    import feast  # noqa: F401


# ``$NAME`` or ``${NAME}``, as ``os.path.expandvars`` (which Feast's own loader uses) finds them.
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)


def expand_variables(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``$NAME`` / ``${NAME}`` of ``values`` replaced (others left as they are)."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        name = name[1:-1] if name.startswith("{") else name
        return values.get(name, match.group(0))

    return _VARIABLE.sub(value_of, text)


def repo_config(settings: Settings):
    """Feast's ``RepoConfig`` of this profile and home, read as ``feast`` reads ``feature_store*.yaml``.

    The yaml's variables are expanded from :meth:`Settings.feast_env` (any other variable a
    deployment added comes from the environment, which is read, never written).

    Returns:
        feast.repo_config.RepoConfig with ``repo_path`` set to the feature repo folder (``PERSONA_FEATURE_REPO``).
    """
    import yaml
    from feast.repo_config import RepoConfig

    values = {**os.environ, **settings.feast_env()}
    raw = yaml.safe_load(expand_variables(settings.feature_store_yaml.read_text(), values))
    if raw.get("project") == type(settings).model_fields["project"].default:  # the local yaml names the default,
        raw["project"] = settings.project  # so plain `feast` needs no PERSONA_PROJECT; a renamed project goes here
    config = RepoConfig(**raw)
    config.repo_path = settings.feature_repo
    return config


def _open_store(settings: Settings):
    from feast import FeatureStore

    if settings.profile == "local":
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    try:
        return FeatureStore(config=repo_config(settings), repo_path=str(settings.feature_repo))
    except Exception as exc:  # feast raises many kinds on a bad config
        reason = " ".join(str(exc).split())
        raise PersonaError(f"{settings.feature_store_yaml}: cannot open the feature store: {reason}") from exc


def get_store(settings: Settings):
    """Open the Feast store of this profile and home.

    Raises:
        PersonaError: the config is bad, or the registry reads another home's files (a copied or
            moved home; :mod:`store.home_sources`).

    Returns:
        feast.FeatureStore configured from the profile's ``feature_store*.yaml``.
    """
    from store.home_sources import check_home_sources

    store = _open_store(settings)
    check_home_sources(settings, store)
    return store


def repo_contents(settings: Settings):
    """Feast's ``RepoContents`` of Persona's definitions plus the user's folder (:mod:`store.repo_files`)."""
    from store.repo_files import parse_definitions

    return parse_definitions(settings).contents


def apply_repo(settings: Settings) -> list[str]:
    """Register the repo's entities, views and services; remove objects no longer defined.

    The definitions are Persona's packaged ones plus the user's folder (``PERSONA_FEATURE_REPO``;
    the rule is in :mod:`store.repo_files`). Each view's declared field types are checked against
    its source's columns first (:mod:`store.source_types`), so a wrong dtype fails here, not at
    materialize.

    Returns:
        Lines describing what is registered, each view and service with the file that defines it.

    Raises:
        PersonaError: when an offline source is missing (run ``persona features build`` first), a
            declared type does not fit its source column, or the definitions cannot be parsed.
    """
    from store.feast_internals import apply_repo_objects
    from store.offline import source_exists
    from store.repo_files import parse_definitions
    from store.source_types import check_declared_types

    for source in ("customer_profile", "customer_behavior", "customer_text"):
        if not source_exists(settings, source):
            raise PersonaError(
                f"offline source {source} is missing ({settings.profile} profile); run `persona features build` first"
            )
    from store.scores_source import ensure_scores_source

    ensure_scores_source(settings)  # written by `persona score`; empty until then
    store = _open_store(settings)  # applying is how a copied home registers its own files
    parsed = parse_definitions(settings)
    repo = parsed.contents
    problems = check_declared_types(settings, repo.feature_views)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PersonaError(problems[0] + more)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            apply_repo_objects(store, repo)
    except Exception as exc:
        raise PersonaError(f"feast apply failed: {exc}") from exc
    lines = [
        f"project {store.project}: {len([e for e in repo.entities if not e.name.startswith('__')])} entities, "
        f"{len(repo.feature_views)} feature views, "
        f"{len(repo.feature_services)} feature services",
    ]
    lines.append("  definitions from " + " + ".join(str(folder) for folder in parsed.folders))
    lines += [f"  view {fv.name}: {len(fv.features)} features  ({parsed.origin(fv)})" for fv in repo.feature_views]
    lines += [f"  service {fs.name}  ({parsed.origin(fs)})" for fs in repo.feature_services]
    return lines


def view_source_frame(settings: Settings, view) -> pd.DataFrame:
    """All rows of a view's offline source (parquet file or Postgres table)."""
    from store.offline import read_source
    from store.source_state import source_file

    source = view.batch_source
    file = source_file(settings, source)
    if file is not None:
        return pd.read_parquet(file)
    return read_source(settings, source.get_table_query_string().strip('"'))


def view_event_keys(settings: Settings, view_names: Sequence[str]) -> pd.DataFrame:
    """``customer_id`` and ``event_timestamp`` (UTC) of every row of these views' offline sources.

    Which feature rows exist offline, without reading their values (the skew replay compares
    only served rows whose snapshot the offline store still holds).
    """
    import pyarrow.parquet as pq

    from store.offline import read_source
    from store.source_state import source_file

    store = get_store(settings)
    frames = []
    for name in view_names:
        source = store.get_feature_view(name).batch_source
        columns = [ENTITY_KEY, source.timestamp_field]
        file = source_file(settings, source)
        if file is not None:
            frame = pq.read_table(file, columns=columns).to_pandas()
        else:
            frame = read_source(settings, source.get_table_query_string().strip('"'), columns)
        frame = frame.rename(columns={source.timestamp_field: "event_timestamp"})
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        frames.append(frame)
    if not frames:
        return pd.DataFrame({ENTITY_KEY: pd.Series(dtype="int64"),
                             "event_timestamp": pd.Series(dtype="datetime64[us, UTC]")})
    return pd.concat(frames, ignore_index=True).drop_duplicates()


def _view_span(settings: Settings, view) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Min and max event timestamp of a view's offline source (None when empty)."""
    from store.offline import parquet_span, source_span
    from store.source_state import source_file

    source = view.batch_source
    file = source_file(settings, source)
    if file is None:
        return source_span(settings, source.get_table_query_string().strip('"'))
    return parquet_span(file, source.timestamp_field)


def _utc(ts: pd.Timestamp | datetime) -> datetime:
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def materialize(
    settings: Settings,
    end: datetime | None = None,
    batch_rows: int | None = None,
    on_progress: ProgressEvent | None = None,
    views: Sequence[str] | None = None,
) -> list[str]:
    """Load the latest values of every online feature view into the online store.

    Incremental: a view already materialized continues from where it stopped, and a view whose
    source changed since (late or corrected rows, a rebuilt file) re-reads the latest row per
    entity from the earliest changed event time (:mod:`store.source_state`). The first run
    starts at the earliest row of the view's source, so data from any period (1997 or last
    week) is loaded, not just the last TTL before now. A run that was killed part way leaves
    an inconsistent online store (``check_consistency`` says so); running again converges. A
    failure a rerun cannot cure (a value that does not fit its declared type) says so.

    Args:
        settings: Persona settings.
        end: materialize rows with event timestamps up to this time (default: newest row).
        batch_rows: entity rows per online-store write (one SQLite ``executemany``, one round trip
            to Redis; default: ``settings.materialize_batch_rows``, else the writer's own). Redis
            itself is held by one script call of at most ``store.write_redis.REDIS_KEYS_PER_CALL``
            entities at a time, whatever the batch.
        on_progress: hears the rows written so far of the view in progress (``note``: the view).
        views: only these views (default: every online view).

    Returns:
        One line per view.
    """
    if batch_rows is None:
        batch_rows = settings.materialize_batch_rows
    if batch_rows is not None and batch_rows < 1:
        raise PersonaError(f"batch rows must be at least 1, got {batch_rows}")
    from store.materialize_view import failure_remedy
    from store.source_state import read_state, record, recorded, run_start

    store = get_store(settings)
    previous = recorded(settings)
    lines: list[str] = []
    for view in store.list_feature_views():
        if not view.online or (views is not None and view.name not in views):
            continue
        span = _view_span(settings, view)
        if span is None:
            lines.append(f"{view.name}: source is empty, nothing to materialize")
            continue
        first, last = span
        state = read_state(settings, view)
        stop = _utc(end) if end is not None else _utc(last + pd.Timedelta(seconds=1))
        start, changed = run_start(settings, view, first, previous.get(view.name), state)
        if start >= stop:
            if previous.get(view.name) is None:
                record(settings, view.name, state)
            lines.append(f"{view.name}: up to date (materialized until {start.isoformat()})")
            continue
        try:
            rows = _materialize_one(store, view, start, stop, batch_rows, on_progress)
        except Exception as exc:
            raise PersonaError(f"materializing {view.name} failed: {exc}; {failure_remedy(exc)}") from exc
        record(settings, view.name, state)
        count = f"{rows:,} rows" if rows >= 0 else "latest rows"
        why = " (source changed)" if changed else ""
        lines.append(f"{view.name}: materialized {count}{why}, {start.isoformat()} -> {stop.isoformat()}")
    if not lines:
        raise PersonaError("no feature views registered; run `persona features apply` first")
    return lines


def _materialize_one(
    store, view, start: datetime, stop: datetime, batch_rows: int | None = None,
    on_progress: ProgressEvent | None = None,
) -> int:
    """Columnar fast path for Persona's SQLite store and Redis (:mod:`store.materialize_view`).

    Other online stores go through Feast's own engine.
    """
    from store.materialize_view import materialize_view_fast

    kind = store.config.online_store.type
    if not (kind.endswith("PersonaSqliteOnlineStore") or kind == "redis"):
        store.materialize(start_date=start, end_date=stop, feature_views=[view.name])
        return -1
    done = 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if on_progress is not None:
            on_progress(done, None, view.name)

    if on_progress is not None:
        on_progress(0, None, view.name)
    return materialize_view_fast(store, view, start, stop, progress=advance, batch_rows=batch_rows)


@dataclass
class ConsistencyResult:
    """Outcome of comparing online values with the latest offline rows.

    Attributes:
        checked: customers compared (the largest sample of any view).
        mismatches: ``view:feature`` -> customers whose online value differs from the offline one.
        missing_online: (customer, view) pairs with no online values at all.
        missing_by_view: view -> customers with no online values for it.
    """

    checked: int
    mismatches: dict[str, int] = field(default_factory=dict)
    missing_online: int = 0
    missing_by_view: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every checked customer's online values equal the latest offline ones."""
        return not self.mismatches and self.missing_online == 0

    def summary(self) -> str:
        """One line for the console: consistent, or what mismatches and what to do."""
        if self.ok:
            return f"consistent: {self.checked:,} customers, online == latest offline for every feature"
        worst = ", ".join(f"{k} ({v})" for k, v in sorted(self.mismatches.items(), key=lambda kv: -kv[1])[:5])
        missing = ", ".join(f"{k} ({v})" for k, v in sorted(self.missing_by_view.items(), key=lambda kv: -kv[1]))
        return (
            f"INCONSISTENT: {self.checked:,} customers checked, {self.missing_online:,} missing online"
            + (f" ({missing})" if missing else "")
            + f", mismatching features: {worst or 'none'}; rerun `persona features materialize`"
        )


def latest_offline_rows(source: str | Path | pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Latest row per customer of an offline source (ties broken by created_timestamp)."""
    frame = source if isinstance(source, pd.DataFrame) else pd.read_parquet(source)
    if as_of is not None:
        frame = frame[frame["event_timestamp"] <= as_of]
    order = ["event_timestamp", "created_timestamp"] if "created_timestamp" in frame else ["event_timestamp"]
    frame = frame.sort_values([ENTITY_KEY, *order], kind="stable")
    return frame.drop_duplicates(ENTITY_KEY, keep="last").reset_index(drop=True)


def _same(left: object, right: object) -> bool:
    if isinstance(left, (list, np.ndarray)) or isinstance(right, (list, np.ndarray)):
        if left is None or right is None:
            return False
        return bool(np.allclose(np.asarray(left, dtype=float), np.asarray(right, dtype=float), equal_nan=True))
    left_missing = bool(pd.isna(left))
    right_missing = bool(pd.isna(right))
    if left_missing or right_missing:
        return left_missing and right_missing
    if isinstance(left, (int, float, np.number)) and isinstance(right, (int, float, np.number)):
        return bool(np.isclose(float(left), float(right), rtol=1e-6, atol=1e-6))
    return left == right


def check_consistency(settings: Settings, sample: int = 1000, seed: int = 0) -> ConsistencyResult:
    """Compare online values with the latest offline row for a sample of customers.

    Only rows still within the view's TTL of the newest snapshot count (Feast serves nothing older).
    """
    store = get_store(settings)
    rng = np.random.default_rng(seed)
    result = ConsistencyResult(checked=0)
    for view in store.list_feature_views():
        if not view.online:
            continue
        latest = latest_offline_rows(view_source_frame(settings, view))
        if latest.empty:
            continue
        ids = latest[ENTITY_KEY].to_numpy()
        chosen = np.sort(rng.choice(ids, size=min(sample, len(ids)), replace=False))
        expected = latest.set_index(ENTITY_KEY).loc[chosen]
        names = [f.name for f in view.features]
        online = store.get_online_features(
            features=[f"{view.name}:{n}" for n in names],
            entity_rows=[{ENTITY_KEY: int(i)} for i in chosen],
        ).to_dict()
        result.checked = max(result.checked, len(chosen))
        for row, customer_id in enumerate(chosen):
            if all(online[n][row] is None for n in names):
                result.missing_online += 1
                result.missing_by_view[view.name] = result.missing_by_view.get(view.name, 0) + 1
                continue
            for n in names:
                if not _same(online[n][row], expected.at[customer_id, n]):
                    result.mismatches[f"{view.name}:{n}"] = result.mismatches.get(f"{view.name}:{n}", 0) + 1
    return result

