"""``persona status``: what this home has built, loaded, promoted, served and decided, in seconds.

Each section reads what its layer left on disk (file metadata, the Feast registry's rows, the
MLflow registry, the monitoring records) and never recomputes anything: consistency is the
stored result of the last ``persona features check`` unless ``--check`` asks for a small live
sample. A section whose inputs are missing says which command builds them; a section that
fails says why in one line, and the others still answer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core import catalog

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from core.settings import Settings

RAW_TABLES = ("customers", "transactions", "sessions", "reviews", "labels", "campaigns", "exposures", "consent")
TIME_COLUMN = {"customers": "signup_date", "campaigns": "start"}
LIVE_CHECK_SAMPLE = 50


@dataclass
class Section:
    """One part of the status: its lines for the terminal and its data for ``--json``.

    Attributes:
        name: the section's title.
        built: False when its inputs do not exist yet (``hint`` says what to run).
        lines: what the terminal shows.
        data: what ``--json`` shows.
        hint: ``not built yet: run ...`` or the one-line reason the section failed.
    """

    name: str
    built: bool = True
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None


def _missing(name: str, command: str) -> Section:
    return Section(name, built=False, hint=f"not built yet: run `{command}`")


def _iso(value: dt.datetime | Any | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


def parquet_rows(path: Path) -> int:
    """Rows of a parquet file, from its footer."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def parquet_span(path: Path, column: str) -> tuple[int, Any, Any]:
    """Rows, first and last value of ``column`` of a parquet file, from its footer when possible."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    rows = meta.num_rows
    if rows == 0 or column not in meta.schema.names:
        return rows, None, None
    index = meta.schema.names.index(column)
    stats = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
    if all(s is not None and s.has_min_max for s in stats):
        return rows, min(s.min for s in stats), max(s.max for s in stats)
    values = pq.read_table(path, columns=[column]).column(column)
    span = pc.min_max(values)
    return rows, span["min"].as_py(), span["max"].as_py()


# ---------------------------------------------------------------- sections
def data_section(settings: Settings) -> Section:
    """Rows and event-time span per raw table, with each table's last ingest (file time)."""
    tables = {t: catalog.raw_table(settings, t) for t in RAW_TABLES}
    present = {t: p for t, p in tables.items() if p.exists()}
    if not present:
        return _missing("data", "persona ingest --customers ... --transactions ...")
    section = Section("data")
    for table, path in present.items():
        rows, first, last = parquet_span(path, TIME_COLUMN.get(table, "event_timestamp"))
        quarantine = catalog.quarantine_table(settings, table)
        rejected = parquet_rows(quarantine) if quarantine.exists() else 0
        ingested = _mtime(path)
        section.data[table] = {"rows": rows, "first": _iso(first), "last": _iso(last),
                               "quarantined": rejected, "last_ingest": _iso(ingested)}
        section.lines.append(f"{table:<13} {rows:>10,} rows  {_iso(first) or '-'} .. {_iso(last) or '-'}  "
                             f"quarantined {rejected:,}  ingested {_iso(ingested)}")
    return section


def snapshots_section(settings: Settings) -> Section:
    """Feature snapshots in the offline store: how many, the last one, when they were built."""
    from store.offline import source_exists

    if not source_exists(settings, catalog.BEHAVIOR_SOURCE):
        return _missing("snapshots", "persona features build")
    if settings.profile != "local":
        from store.offline import source_span

        span = source_span(settings, catalog.BEHAVIOR_SOURCE)
        last = span[1] if span else None
        return Section("snapshots", lines=[f"last snapshot {_iso(last)}"], data={"last": _iso(last)})
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = catalog.offline_source(settings, catalog.BEHAVIOR_SOURCE)
    stamps = pc.unique(pq.read_table(path, columns=["event_timestamp"]).column("event_timestamp"))
    last = pc.max(stamps).as_py() if len(stamps) else None
    data = {"count": len(stamps), "last": _iso(last), "built": _iso(_mtime(path))}
    return Section("snapshots", data=data,
                   lines=[f"{len(stamps):,} snapshots, last {_iso(last)}, built {data['built']}"])


def views_section(settings: Settings) -> Section:
    """Registered feature views and how far each is materialized into the online store."""
    from store.registry_read import view_states, view_states_via_feast

    try:
        states = view_states(settings)
    except NotImplementedError:
        states = view_states_via_feast(settings)
    if not states:
        return _missing("feature views", "persona features apply")
    section = Section("feature views")
    for view in states:
        until = view.materialized_until
        section.data[view.name] = {"online": view.online, "materialized_until": _iso(until)}
        shown = _iso(until) if until else ("never: run `persona features materialize`" if view.online
                                           else "offline only")
        section.lines.append(f"{view.name:<20} materialized until {shown}")
    if any(v.online and v.materialized_until is None for v in states):
        section.hint = "not materialized yet: run `persona features materialize`"
    return section


def record_check(settings: Settings, summary: str, ok: bool, checked: int) -> None:
    """Keep the result of ``persona features check`` for ``persona status`` (atomic write)."""
    path = catalog.last_check(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"at": _iso(dt.datetime.now(dt.UTC)), "ok": ok, "checked": checked, "summary": summary}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def consistency_section(settings: Settings, live: bool = False) -> Section:
    """Online vs offline: the last ``features check`` result, or a small live sample (``live``)."""
    if live:
        from store.repo import check_consistency

        result = check_consistency(settings, sample=LIVE_CHECK_SAMPLE)
        data = {"source": "live sample", "ok": result.ok, "checked": result.checked, "summary": result.summary()}
        return Section("consistency", data=data, lines=[f"live sample: {result.summary()}"])
    path = catalog.last_check(settings)
    if not path.exists():
        return Section("consistency", built=False,
                       hint="not checked yet: run `persona features check` (or `persona status --check`)")
    doc = json.loads(path.read_text())
    return Section("consistency", data={"source": "last features check", **doc},
                   lines=[f"last check {doc.get('at')}: {doc.get('summary')}"])


def embeddings_section(settings: Settings) -> Section:
    """The text source's embedding model and projection version, and the projections kept."""
    text = catalog.text_source(settings)
    projections = sorted(catalog.projections_dir(settings).glob("*.npz")) if settings.profile == "local" else []
    if not text.exists():
        return _missing("embeddings", "persona embed")
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(text, columns=["embedding_model", "text_projection_version"])
    models = sorted(str(v) for v in pc.unique(table.column("embedding_model")).to_pylist() if v)
    versions = sorted(str(v) for v in pc.unique(table.column("text_projection_version")).to_pylist() if v)
    from features.text_version import pinned_version

    pinned = pinned_version(settings)
    data = {"embedding_model": models, "projection_version": versions, "pinned_projection": pinned,
            "projections_kept": [p.stem for p in projections], "built": _iso(_mtime(text))}
    return Section("embeddings", data=data, lines=[
        f"model {', '.join(models) or '-'}; projection {', '.join(versions) or '-'} "
        f"(pinned {pinned or '-'}, {len(projections)} kept); built {data['built']}"])


def models_section(settings: Settings) -> Section:
    """Champion and challenger of the registered model, with the reason each holds its alias."""
    from model.registry import CHALLENGER, CHAMPION, configure_mlflow
    from model.versions import alias_info

    if settings.profile == "local" and not settings.mlflow_tracking_uri and not catalog.mlflow_db(settings).exists():
        return _missing("models", "persona train")
    client = configure_mlflow(settings)
    section = Section("models")
    for alias in (CHAMPION, CHALLENGER):
        info = alias_info(client, settings.registered_model, alias)
        if info is None:
            section.data[alias] = None
            section.lines.append(f"{alias:<11} none")
            continue
        section.data[alias] = {"version": info.version, "reason": info.reason, "created": _iso(info.created),
                               "run_id": info.run_id, "metrics": info.metrics}
        section.lines.append(f"{alias:<11} v{info.version} ({_iso(info.created)}): {info.reason or '-'}")
    if section.data.get(CHAMPION) is None:
        section.built, section.hint = False, "no champion yet: run `persona train`"
    return section


def record_serving(settings: Settings, host: str, port: int, pid: int | None = None) -> None:
    """Note the server this home starts (``persona serve``), so ``persona status`` can find it."""
    path = catalog.serving_state(settings)
    doc = {"pid": pid or os.getpid(), "host": host, "port": port, "started": _iso(dt.datetime.now(dt.UTC))}
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
    except OSError:  # a read-only home still serves; status then says "not running"
        return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serving_section(settings: Settings) -> Section:
    """Whether the server recorded by ``persona serve`` is still running, and where."""
    path = catalog.serving_state(settings)
    if not path.exists():
        return Section("serving", data={"running": False}, lines=["not running (start it with `persona serve`)"])
    doc = json.loads(path.read_text())
    running = _alive(int(doc.get("pid", 0) or 0))
    url = f"http://{doc.get('host')}:{doc.get('port')}"
    line = (f"running: pid {doc['pid']} on {url} since {doc.get('started')}" if running
            else f"not running (last started {doc.get('started')} on {url})")
    return Section("serving", data={"running": running, **doc}, lines=[line])


def _run_order(summary: Path) -> tuple[str, int]:
    """Monitor run folders are ``<UTC time>[-n]`` (``n`` counts runs within one second)."""
    stamp, _, n = summary.parent.name.partition("-")
    return stamp, int(n) if n.isdigit() else 1


def monitoring_section(settings: Settings) -> Section:
    """The last monitor run's decision and the retrain policy's cooldown."""
    from monitoring.policy import load_policy
    from monitoring.trigger import read_last_retrain

    runs = sorted(catalog.monitoring_reports(settings).glob("*/summary.json"), key=_run_order)
    policy = load_policy()
    last_retrain = read_last_retrain(settings)
    ready_at = last_retrain + dt.timedelta(hours=policy.cooldown_hours) if last_retrain else None
    cooling = ready_at is not None and ready_at > dt.datetime.now(dt.UTC)
    cooldown = (f"cooling down until {_iso(ready_at)}" if cooling else "no cooldown: a retrain may start") + (
        f" (last retrain {_iso(last_retrain)}, cooldown {policy.cooldown_hours:g} h)" if last_retrain
        else f" (no retrain yet, cooldown {policy.cooldown_hours:g} h)")
    data: dict[str, Any] = {"cooldown_hours": policy.cooldown_hours, "last_retrain": _iso(last_retrain),
                            "cooldown_until": _iso(ready_at) if cooling else None}
    if not runs:
        section = _missing("monitoring", "persona monitor")
        section.data, section.lines = data, [cooldown]
        return section
    latest = runs[-1]
    doc = json.loads(latest.read_text())
    data["last_run"] = {"at": doc.get("at"), "status": doc.get("status"), "decision": doc.get("decision"),
                        "champion": (doc.get("champion") or {}).get("version"), "report": str(latest.parent)}
    lines = [f"last run {doc.get('at')}: {doc.get('decision')}", cooldown]
    outcome = doc.get("retrain_outcome") or {}
    if outcome.get("summary"):
        data["last_run"]["retrain"] = outcome["summary"]
        lines.append(f"retrain: {outcome['summary']}")
    return Section("monitoring", data=data, lines=lines)


def skew_section(settings: Settings) -> Section:
    """The latest skew replay's verdict: clean, or the features that hold promotion."""
    from training.train import read_skew_verdict

    verdict = read_skew_verdict(settings)
    if verdict is None:
        return _missing("skew", "persona skew")
    data = {key: verdict.get(key) for key in ("at", "blocked", "mismatch_rate", "rows", "threshold", "reason")}
    worst = sorted((f for f in verdict.get("features", []) if f.get("rate")), key=lambda f: -f["rate"])[:3]
    data["worst"] = [{"feature": f["feature"], "rate": f["rate"]} for f in worst]
    rate = verdict.get("mismatch_rate")
    head = (f"replay {verdict.get('at', '?')}: {verdict.get('rows', 0):,} served rows, max mismatch "
            + (f"{rate:.1%}" if isinstance(rate, float) else "?"))
    if verdict.get("blocked"):
        return Section("skew", built=False, data=data, lines=[head, f"HOLDS PROMOTION: {verdict.get('reason')}"],
                       hint="fix the served features, then `persona skew` again")
    return Section("skew", data=data, lines=[f"{head}: clean"])


# ---------------------------------------------------------------- the whole view
def _guarded(name: str, build: Callable[[], Section]) -> Section:
    """A section, or the one-line reason it could not be read (the others still answer).

    Library warnings are silenced per section: importing Feast resets warning filters, and a
    read-only view has nothing to say about a library's deprecations.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build()
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return Section(name, built=False, hint=f"could not read: {reason}")


def collect(settings: Settings, live_check: bool = False) -> list[Section]:
    """Every section of the status of ``settings.home``."""
    return [
        _guarded("data", lambda: data_section(settings)),
        _guarded("snapshots", lambda: snapshots_section(settings)),
        _guarded("feature views", lambda: views_section(settings)),
        _guarded("consistency", lambda: consistency_section(settings, live_check)),
        _guarded("embeddings", lambda: embeddings_section(settings)),
        _guarded("models", lambda: models_section(settings)),
        _guarded("serving", lambda: serving_section(settings)),
        _guarded("monitoring", lambda: monitoring_section(settings)),
        _guarded("skew", lambda: skew_section(settings)),
    ]


def to_json(settings: Settings, sections: list[Section]) -> str:
    """The status as one JSON document (``persona status --json``)."""
    doc = {"home": str(settings.home), "profile": settings.profile,
           "sections": {s.name: {k: v for k, v in asdict(s).items() if k not in ("name", "lines")}
                        for s in sections}}
    return json.dumps(doc, indent=2, default=str)


def to_text(settings: Settings, sections: list[Section]) -> list[str]:
    """The status as terminal lines: a title per section, its lines, then its hint."""
    out = [f"home {settings.home} ({settings.profile} profile)"]
    for section in sections:
        out.append(f"\n{section.name}")
        out.extend(f"  {line}" for line in section.lines)
        if section.hint:
            out.append(f"  {section.hint}")
    return out
