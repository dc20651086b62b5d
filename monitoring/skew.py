"""Skew replay: were the features served online the features the offline store holds for them?

Training reads features offline (Feast point-in-time retrieval); serving reads them online. Any
difference between the two paths (a rewritten offline row, an encoder or type change, a
materialization from another source, a bug in a fast reader) means the model is served inputs
unlike those it learned from, and no drift test sees it. The prediction log holds every served
feature vector and ``features_at``, the newest event time of the online rows served (what the
online store held when the request came). The replay takes a sample of logged ``predict`` rows,
rebuilds their features offline as of that time through the feature service of the model
version that served them, and compares value by value: per feature the share of rows that
differ and by how much. A share above the policy's ``skew.max_mismatch_rate`` blocks promotion
(:func:`training.gate.skew_hold` reads the verdict this writes) until a clean replay.

Pure selection and comparison here; Feast and MLflow only in :func:`replay`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core import catalog
from serving.prediction_log import FEATURES_AT, META_COLUMNS, REASON_COLUMN, read_prediction_log

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from core.settings import Settings
    from monitoring.policy import SkewPolicy

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class FeatureSkew:
    """One feature's replay: rows compared, how many differ and how much.

    No customer ids: the verdict is a report, and reports never hold who was served.
    """

    feature: str
    compared: int
    mismatches: int
    mean_abs_diff: float | None
    max_abs_diff: float | None

    @property
    def rate(self) -> float:
        """Share of compared rows whose served value differs from the offline one."""
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass
class SkewReport:
    """A replay's result and verdict (``blocked``: a feature's rate exceeds ``threshold``)."""

    at: str
    start: str | None
    end: str
    threshold: float
    counts: dict[str, int]
    features: list[FeatureSkew] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Served rows replayed."""
        return self.counts.get("replayed", 0)

    @property
    def skewed(self) -> list[FeatureSkew]:
        """Features beyond the threshold, worst first."""
        out = [f for f in self.features if f.rate > self.threshold]
        return sorted(out, key=lambda f: (-f.rate, f.feature))

    @property
    def blocked(self) -> bool:
        """Whether promotion is held back."""
        return bool(self.skewed)

    @property
    def mismatch_rate(self) -> float:
        """The largest per-feature mismatch rate (0 for a clean replay or no rows)."""
        return max((f.rate for f in self.features), default=0.0)

    def reason(self) -> str:
        """One line naming the skewed features, their rates and sizes (empty when clean)."""
        parts = [
            f"{f.feature} {f.rate:.1%} of {f.compared:,} rows"
            + (f" (mean |diff| {f.mean_abs_diff:.4g})" if f.mean_abs_diff is not None else "")
            for f in self.skewed[:5]
        ]
        return ("training/serving skew: " + ", ".join(parts) + f" above {self.threshold:.1%}") if parts else ""

    def summary(self) -> str:
        """A line for the terminal."""
        head = (f"skew replay {self.start or '…'} – {self.end}: {self.rows:,} served rows replayed, "
                f"{len(self.features)} features, max mismatch {self.mismatch_rate:.1%}")
        extra = f" · {'; '.join(self.notes)}" if self.notes else ""
        if self.blocked:
            return f"{head} · BLOCKS PROMOTION · {self.reason()}{extra}"
        return f"{head} · clean{extra}"

    def table(self, limit: int = 20) -> list[str]:
        """Per-feature lines, worst first (features that all matched are summed up in one line)."""
        differing = sorted((f for f in self.features if f.mismatches), key=lambda f: (-f.rate, f.feature))
        lines = [f"{'feature':<28} {'compared':>9} {'mismatched':>10} {'share':>7} {'mean |diff|':>12}"]
        for f in differing[:limit]:
            size = f"{f.mean_abs_diff:.4g}" if f.mean_abs_diff is not None else "missing"
            lines.append(f"{f.feature:<28} {f.compared:>9,} {f.mismatches:>10,} {f.rate:>7.1%} {size:>12}")
        matched = len(self.features) - len(differing)
        if matched:
            lines.append(f"{matched} feature(s) matched on every replayed row")
        return lines if self.features else []

    def to_dict(self) -> dict:
        """Plain data (the verdict file and the monitoring summary)."""
        return {
            "at": self.at, "start": self.start, "end": self.end, "threshold": self.threshold,
            "counts": dict(self.counts), "rows": self.rows, "blocked": self.blocked,
            "mismatch_rate": self.mismatch_rate, "reason": self.reason(), "notes": list(self.notes),
            "features": [{**asdict(f), "rate": f.rate} for f in self.features],
        }


def select_replayable(
    log: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp, sample_rows: int, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Logged ``predict`` rows in ``(start, end]`` that can be replayed, sampled to ``sample_rows``.

    Left out (and counted): what-if rows (``predict_features``: their values came from the
    caller, not the store), cold starts, and rows logged without ``features_at``.
    """
    counts = {"served": 0, "what_if": 0, "cold_start": 0, "no_feature_time": 0, "not_sampled": 0, "replayed": 0}
    if log.empty or "served_at" not in log:
        return pd.DataFrame(), counts
    served = pd.to_datetime(log["served_at"], utc=True)
    keep = served <= end
    if start is not None:
        keep &= served > start
    rows = log[keep]
    counts["served"] = len(rows)
    what_if = rows["endpoint"].astype(str) != "predict" if "endpoint" in rows else pd.Series(False, rows.index)
    counts["what_if"] = int(what_if.sum())
    rows = rows[~what_if]
    cold = rows[REASON_COLUMN].notna() if REASON_COLUMN in rows else pd.Series(False, rows.index)
    counts["cold_start"] = int(cold.sum())
    rows = rows[~cold]
    timed = rows[FEATURES_AT].notna() if FEATURES_AT in rows else pd.Series(False, rows.index)
    counts["no_feature_time"] = int((~timed).sum())
    rows = rows[timed]
    if len(rows) > sample_rows:
        counts["not_sampled"] = len(rows) - sample_rows
        rows = rows.sample(sample_rows, random_state=seed)
    counts["replayed"] = len(rows)
    return rows.reset_index(drop=True), counts


def compare(
    served: pd.DataFrame, offline: pd.DataFrame, features: Sequence[str], rtol: float, atol: float
) -> list[FeatureSkew]:
    """Per feature, served vs offline values of the same rows (same order).

    Numbers match within ``rtol``/``atol`` (the online store keeps 32-bit floats); both missing
    is a match, one missing is a mismatch of unknown size. Strings match exactly.
    """
    out = []
    for name in features:
        if name not in served or name not in offline:
            continue
        left, right = served[name].reset_index(drop=True), offline[name].reset_index(drop=True)
        numeric = pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right)
        if numeric or (_all_numbers(left) and _all_numbers(right)):
            a = pd.to_numeric(left, errors="coerce").to_numpy(float)
            b = pd.to_numeric(right, errors="coerce").to_numpy(float)
            both_missing = np.isnan(a) & np.isnan(b)
            close = np.isclose(a, b, rtol=rtol, atol=atol)
            differ = ~(close | both_missing)
            sized = differ & ~np.isnan(a) & ~np.isnan(b)
            diff = np.abs(a - b)[sized]
            mean = float(diff.mean()) if len(diff) else None
            top = float(diff.max()) if len(diff) else None
        else:
            a_text = left.astype(object).where(left.notna(), None).to_numpy()
            b_text = right.astype(object).where(right.notna(), None).to_numpy()
            differ = np.array([x != y for x, y in zip(a_text, b_text, strict=True)], dtype=bool)
            mean = top = None
        out.append(FeatureSkew(name, len(left), int(differ.sum()), mean, top))
    return out


def _all_numbers(values: pd.Series) -> bool:
    present = values.dropna()
    return bool(len(present)) and bool(pd.to_numeric(present, errors="coerce").notna().all())


def merge_skews(parts: Sequence[list[FeatureSkew]]) -> list[FeatureSkew]:
    """Per-version comparisons added up per feature (sizes weighted by their mismatches)."""
    merged: dict[str, list[FeatureSkew]] = {}
    for part in parts:
        for item in part:
            merged.setdefault(item.feature, []).append(item)
    out = []
    for name, items in merged.items():
        sized = [(f.mean_abs_diff, f.mismatches) for f in items if f.mean_abs_diff is not None and f.mismatches]
        weight = sum(w for _, w in sized)
        mean = sum(m * w for m, w in sized) / weight if weight else None
        tops = [f.max_abs_diff for f in items if f.max_abs_diff is not None]
        out.append(FeatureSkew(name, sum(f.compared for f in items), sum(f.mismatches for f in items), mean,
                               max(tops) if tops else None))
    return sorted(out, key=lambda f: f.feature)


def still_offline(entities: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """Per entity row, whether the offline store still holds a feature row at exactly its time.

    A served row is replayable only then: its snapshot may since have been rebuilt at other
    times, and the nearest older row would differ by construction, not by skew.
    """
    if entities.empty:
        return np.zeros(0, dtype=bool)
    found = keys[[ENTITY_KEY, TIMESTAMP]].drop_duplicates().assign(_found=True)
    left = entities[[ENTITY_KEY, TIMESTAMP]].astype({ENTITY_KEY: "int64"})
    found = found.astype({ENTITY_KEY: "int64"})
    left[TIMESTAMP] = pd.to_datetime(left[TIMESTAMP], utc=True).astype("datetime64[us, UTC]")
    found[TIMESTAMP] = pd.to_datetime(found[TIMESTAMP], utc=True).astype("datetime64[us, UTC]")
    merged = left.merge(found, on=[ENTITY_KEY, TIMESTAMP], how="left")
    return merged["_found"].eq(True).to_numpy(dtype=bool)


def feature_service_of(settings: Settings) -> Callable[[str], str]:
    """Model version -> the feature service its training run recorded (MLflow run tag)."""
    from model.registry import configure_mlflow
    from training.config import TrainConfig

    client = configure_mlflow(settings)
    default = str(TrainConfig.model_fields["feature_service"].default)
    cache: dict[str, str] = {}

    def lookup(version: str) -> str:
        if version not in cache:
            run_id = client.get_model_version(settings.registered_model, version).run_id
            cache[version] = str(client.get_run(run_id).data.tags.get("feature_service") or default) \
                if run_id else default
        return cache[version]

    return lookup


def replay(
    settings: Settings,
    policy: SkewPolicy,
    window_days: int,
    end: pd.Timestamp | None = None,
    service_of: Callable[[str], str] | None = None,
    log: pd.DataFrame | None = None,
    now: dt.datetime | None = None,
    seed: int = 0,
) -> SkewReport:
    """Replay a sample of the rows served in the last ``window_days`` up to ``end`` (default now).

    Args:
        settings: Persona settings.
        policy: sample size, tolerances and the blocking threshold.
        window_days: how far back served rows count.
        end: window end (UTC; default now).
        service_of: model version -> feature service (default: from MLflow).
        log: the prediction log (default: read from the home).
        now: the report's time (default now).
        seed: the sample's seed.
    """
    from features.dataset import build_training_set, service_views
    from store.repo import view_event_keys

    now = now or dt.datetime.now(dt.UTC)
    end = pd.Timestamp(end if end is not None else now)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    start = end - pd.Timedelta(days=window_days)
    if log is None:
        log = read_prediction_log(catalog.prediction_log(settings))
    rows, counts = select_replayable(log, start, end, policy.sample_rows, seed)
    report = SkewReport(now.isoformat(timespec="seconds"), start.isoformat(), end.isoformat(),
                        policy.max_mismatch_rate, counts)
    if rows.empty:
        report.notes.append("no served predict rows with feature times in the window; nothing to replay")
        return report
    service_of = service_of or feature_service_of(settings)
    parts = []
    counts["snapshot_gone"] = 0
    for version, group in rows.groupby(rows["model_version"].astype(str), sort=True):
        service = service_of(str(version))
        entities = pd.DataFrame({
            ENTITY_KEY: group[ENTITY_KEY].astype("int64").to_numpy(),
            TIMESTAMP: pd.to_datetime(group[FEATURES_AT], utc=True),
        })
        kept = still_offline(entities, view_event_keys(settings, service_views(settings, service)))
        counts["snapshot_gone"] += int((~kept).sum())
        group, entities = group[kept].reset_index(drop=True), entities[kept].reset_index(drop=True)
        if entities.empty:
            continue
        offline = build_training_set(settings, entities, service)
        features = [c for c in offline.columns if c not in (ENTITY_KEY, TIMESTAMP) and c in group.columns
                    and c not in META_COLUMNS]
        parts.append(compare(group.reset_index(drop=True), offline, features, policy.rtol, policy.atol))
    report.features = merge_skews(parts)
    counts["replayed"] -= counts["snapshot_gone"]
    if counts["snapshot_gone"]:
        report.notes.append(
            f"{counts['snapshot_gone']:,} served rows' feature snapshots are no longer in the offline store "
            "(rebuilt since, e.g. on a snapshot grid re-anchored by newer data); they cannot be replayed")
    return report


def write_verdict(settings: Settings, report: SkewReport) -> Path | None:
    """The latest replay, where the promotion gate reads it (atomically replaced).

    A replay of no rows checked nothing, so it leaves an earlier verdict (blocking or not) in place.
    """
    if not report.rows:
        return None
    path = catalog.skew_verdict(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    tmp.replace(path)
    return path


def run_skew(settings: Settings, window_days: int, as_of: dt.datetime | None = None,
             policy_path: Path | None = None) -> SkewReport:
    """``persona skew``: replay the window ending at ``as_of`` (default now) and write the verdict.

    Raises:
        PersonaError: a bad policy file, or a feature service the store does not know.
    """
    from monitoring.policy import load_policy

    policy = load_policy(policy_path)
    report = replay(settings, policy.skew, window_days, pd.Timestamp(as_of) if as_of is not None else None)
    write_verdict(settings, report)
    return report
