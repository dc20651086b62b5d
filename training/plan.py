"""The training plan: which rows train, which rows judge the model, and why, decided before any fit.

Pure functions of facts about the data (its span, the label-complete snapshot times and their
row counts) and the run's request (:class:`~training.config.TrainConfig`). The job prints the
plan and logs it to MLflow, so a reader sees the window, the rows and every adaptation before
trusting a metric.

Two layouts:

- **time split** (labels at many times): the latest snapshots are the holdout; with ``purge``
  a training snapshot must end its label window by the holdout's first snapshot.
- **customer split** (labels at one time, or too little history for a time split): a seeded
  share of customers (stratified by label when labels are known) is the holdout, at the same
  dates as training. A customer is never on both sides.

When the data cannot support the request, the plan adapts where a sound choice exists (and
says so in :attr:`TrainingPlan.notes`) or raises :class:`~core.errors.PersonaError` with one
line naming the fix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.errors import PersonaError

if TYPE_CHECKING:
    from training.config import TrainConfig

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
# A classifier needs this many rows of each class on each side, or its metrics mean little.
MIN_CLASS_ROWS = 5
# A custom target with labels at many times holds out the latest share of its distinct times.
CUSTOM_HOLDOUT_SHARE = 0.2


@dataclass(frozen=True)
class DataFacts:
    """What the plan needs to know about the data besides its labelled rows.

    Attributes:
        first_event: earliest event (``None`` when unknown, e.g. a frame given by a caller).
        last_event: latest event.
        as_of: the label cutoff the run uses.
        cadence_days: days between snapshots (``None`` for custom labels).
    """

    first_event: pd.Timestamp | None = None
    last_event: pd.Timestamp | None = None
    as_of: pd.Timestamp | None = None
    cadence_days: int | None = None


@dataclass(frozen=True)
class TrainingPlan:
    """The rows one run trains and evaluates on, and the reasons (printed and logged as plan.json).

    Attributes:
        target: what is learnt (``churn`` and value for the persona bundle, else the label column).
        split: ``time`` or ``customer``.
        split_reason: why that split.
        facts: the data's span, as-of and cadence.
        horizon_days: label window (``None`` for custom labels, whose window Persona cannot know).
        train_times: snapshot times of the training rows.
        holdout_times: snapshot times of the holdout rows.
        purged_times: snapshots dropped so no training label looks past the holdout's features.
        holdout_fraction: share of customers held out (customer split).
        seed: the customer split's seed.
        notes: adaptations to the request, each one line.
        train_rows / holdout_rows / train_positives / holdout_positives: filled by :func:`with_counts`.
    """

    target: str
    split: str
    split_reason: str
    facts: DataFacts
    horizon_days: int | None
    train_times: tuple[pd.Timestamp, ...]
    holdout_times: tuple[pd.Timestamp, ...]
    purged_times: tuple[pd.Timestamp, ...] = ()
    holdout_fraction: float | None = None
    seed: int = 7
    notes: tuple[str, ...] = field(default_factory=tuple)
    train_rows: int | None = None
    holdout_rows: int | None = None
    train_positives: int | None = None
    holdout_positives: int | None = None

    def window(self) -> dict[str, str]:
        """The data window as ``data.*`` tags (kept in the bundle's metadata too)."""
        out = {
            "data.split": self.split,
            "data.train_start": str(min(self.train_times)),
            "data.train_end": str(max(self.train_times)),
            "data.holdout_start": str(min(self.holdout_times)),
            "data.holdout_end": str(max(self.holdout_times)),
        }
        if self.facts.as_of is not None:
            out["data.as_of"] = str(self.facts.as_of)
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``plan.json``)."""
        raw = asdict(self)
        raw["facts"] = {k: _text(v) for k, v in asdict(self.facts).items()}
        for key in ("train_times", "holdout_times", "purged_times"):
            raw[key] = [str(t) for t in raw[key]]
        raw["notes"] = list(self.notes)
        return raw

    def tags(self) -> dict[str, str]:
        """Flat ``plan.*`` tags for MLflow (the full plan is the plan.json artifact)."""
        out = {
            "plan.split": self.split,
            "plan.split_reason": self.split_reason[:4000],
            "plan.train_snapshots": str(len(self.train_times)),
            "plan.holdout_snapshots": str(len(self.holdout_times)),
            "plan.train_rows": str(self.train_rows),
            "plan.holdout_rows": str(self.holdout_rows),
        }
        if self.train_positives is not None:
            out["plan.train_positives"] = str(self.train_positives)
            out["plan.holdout_positives"] = str(self.holdout_positives)
        if self.horizon_days is not None:
            out["plan.purged_snapshots"] = str(len(self.purged_times))
        if self.notes:
            out["plan.notes"] = " | ".join(self.notes)[:4000]
        return out

    def lines(self) -> list[str]:
        """The plan as a few lines for the terminal."""
        f = self.facts
        out = [f"training plan ({self.target})"]
        if f.first_event is not None and f.last_event is not None:
            days = (f.last_event - f.first_event) / pd.Timedelta(days=1)
            out.append(f"  data      {_day(f.first_event)} .. {_day(f.last_event)} ({days:.0f} days)")
        head = []
        if f.as_of is not None:
            head.append(f"as-of {_day(f.as_of)}")
        if self.horizon_days is not None:
            head.append(f"horizon {self.horizon_days} days")
        if f.cadence_days is not None:
            head.append(f"snapshots every {f.cadence_days} days")
        if head:
            out.append("  window    " + " · ".join(head))
        out.append(f"  split     {self.split}: {self.split_reason}")
        out.append(
            f"  train     {_times(self.train_times)}: {_rows(self.train_rows, self.train_positives)}"
        )
        out.append(
            f"  holdout   {_times(self.holdout_times)}: {_rows(self.holdout_rows, self.holdout_positives)}"
        )
        if self.horizon_days is not None and self.split == "customer":
            out.append("  purged    none needed: customers, not times, separate train and holdout")
        elif self.horizon_days is not None:
            if self.purged_times:
                out.append(
                    f"  purged    {len(self.purged_times)} snapshot(s) {_times(self.purged_times)}: their "
                    f"{self.horizon_days}-day label windows reach past the holdout's first snapshot"
                )
            else:
                out.append("  purged    none")
        out.extend(f"  note      {note}" for note in self.notes)
        return out


def _text(value: object) -> object:
    return str(value) if isinstance(value, pd.Timestamp) else value


def _day(ts: pd.Timestamp) -> str:
    return str(pd.Timestamp(ts).date())


def _times(times: tuple[pd.Timestamp, ...]) -> str:
    if not times:
        return "none"
    if len(times) == 1:
        return f"1 snapshot {_day(times[0])}"
    return f"{len(times)} snapshots {_day(min(times))} .. {_day(max(times))}"


def _rows(rows: int | None, positives: int | None) -> str:
    if rows is None:
        return "rows not counted yet"
    return f"{rows:,} rows" + ("" if positives is None else f", {positives:,} positive")


# --------------------------------------------------------------------------- checks
def check_as_of(as_of: pd.Timestamp | None, last_event: pd.Timestamp | None) -> None:
    """Refuse an ``--as-of`` after the data ends: every label there would be an empty window.

    Raises:
        PersonaError: naming the data's end date.
    """
    if as_of is None or last_event is None:
        return
    if pd.Timestamp(as_of).normalize() > pd.Timestamp(last_event).normalize():
        raise PersonaError(
            f"--as-of {_day(as_of)} is after the data's last event ({_day(last_event)}): labels there "
            f"would see no activity; use --as-of {_day(last_event)} or earlier"
        )


def _too_short(facts: DataFacts, horizon: int) -> str:
    """The one-line fix when the data is too short for a horizon."""
    if facts.first_event is None or facts.as_of is None:
        return f"use a shorter --horizon-days than {horizon} or more history"
    span = (facts.as_of - facts.first_event) / pd.Timedelta(days=1)
    fits = max(1, math.floor(span / 2))
    return (
        f"the data spans {span:.0f} days up to the as-of {_day(facts.as_of)}, a {horizon}-day horizon needs "
        f"about {2 * horizon}; use --horizon-days {fits} or less, or more history"
    )


# --------------------------------------------------------------------------- planning
def plan_snapshots(counts: pd.Series, facts: DataFacts, config: TrainConfig) -> TrainingPlan:
    """Plan the persona bundle's rows from the label-complete snapshot times and their row counts.

    Args:
        counts: rows per label-complete snapshot time (index: times).
        facts: the data's span, as-of and cadence.
        config: the request (horizon, purge, snapshots, holdout size, seed).

    Raises:
        PersonaError: no label-complete snapshot, or too few rows even for a customer split.
    """
    horizon = config.horizon_days
    ordered = sorted(pd.DatetimeIndex(counts.index).unique())
    if not ordered:
        raise PersonaError(f"no snapshot has a complete {horizon}-day label window: {_too_short(facts, horizon)}")
    rows = {pd.Timestamp(t): int(n) for t, n in counts.items()}
    n_hold = min(config.holdout_snapshots, max(1, len(ordered) - 1))
    holdout = ordered[-n_hold:]
    before = [t for t in ordered if t < holdout[0]]
    window = pd.Timedelta(days=horizon)
    purged = [t for t in before if config.purge and t + window > holdout[0]]
    train = [t for t in before if t not in purged][-config.train_snapshots :]
    train_rows = sum(rows[t] for t in train)
    if len(train) >= config.min_train_snapshots and train_rows >= config.min_train_rows:
        reason = "labels at many snapshot times: the latest snapshots judge a model trained on earlier ones"
        return TrainingPlan(
            "churn and value", "time", reason, facts, horizon, train_times=tuple(train),
            holdout_times=tuple(holdout), purged_times=tuple(purged), seed=config.seed,
        )
    # Too little history for a time split: hold out customers instead, at the same dates.
    times = ordered[-config.train_snapshots :]
    latest = times[-1]
    held = round(rows[latest] * config.holdout_fraction)
    if held < config.min_holdout_rows or rows[latest] - held < 1:
        raise PersonaError(
            f"too few rows for a holdout ({rows[latest]} customers at {_day(latest)}): "
            f"{_too_short(facts, horizon)}"
        )
    found = f"{len(train)} training snapshot(s) with {train_rows} rows"
    why = (
        f"a time split left {found} ({len(purged)} purged; needs {config.min_train_snapshots} snapshots and "
        f"{config.min_train_rows} rows)"
    )
    note = (
        f"adapted: {why}; held out {config.holdout_fraction:.0%} of customers (seeded {config.seed}) at the "
        f"same dates instead, so no training label looks past a holdout customer's own features"
    )
    return TrainingPlan(
        "churn and value", "customer", f"too little history for a time split: {why}", facts, horizon,
        train_times=tuple(times), holdout_times=(latest,),
        holdout_fraction=config.holdout_fraction, seed=config.seed, notes=(note,),
    )


def plan_custom(counts: pd.Series, config: TrainConfig) -> TrainingPlan:
    """Plan a custom target's rows: a time split over many label times, else a customer split.

    Raises:
        PersonaError: no labelled rows.
    """
    ordered = sorted(pd.DatetimeIndex(counts.index).unique())
    target = str(config.target)
    if not ordered:
        raise PersonaError(f"no labelled rows of {target} remain; check --labels and --as-of")
    facts = DataFacts(first_event=ordered[0], last_event=ordered[-1])
    if len(ordered) >= 2:
        cut = ordered[min(len(ordered) - 1, max(1, math.floor((1 - CUSTOM_HOLDOUT_SHARE) * len(ordered))))]
        reason = (
            f"labels at {len(ordered)} times: the latest {CUSTOM_HOLDOUT_SHARE:.0%} of times judge a model "
            "trained on earlier ones (no purge: a custom label's window is not known)"
        )
        return TrainingPlan(
            target, "time", reason, facts, None,
            train_times=tuple(t for t in ordered if t < cut), holdout_times=tuple(t for t in ordered if t >= cut),
            seed=config.seed,
        )
    reason = (
        f"labels at one time ({_day(ordered[0])}): {config.holdout_fraction:.0%} of customers, stratified by "
        f"{target} and seeded ({config.seed}), judge a model trained on the others"
    )
    return TrainingPlan(
        target, "customer", reason, facts, None, train_times=tuple(ordered), holdout_times=tuple(ordered),
        holdout_fraction=config.holdout_fraction, seed=config.seed,
    )


# --------------------------------------------------------------------------- applying
def holdout_customers(
    ids: pd.Series, labels: pd.Series | None, fraction: float, seed: int
) -> np.ndarray:
    """A seeded share of customers, stratified by label when labels are given (sorted ids).

    Without labels each customer is held out by a seeded hash of its id, so the choice does not
    depend on which other customers are present (a sampled frame splits as its source did).

    Args:
        ids: customer ids (one per row; duplicates are one customer).
        labels: each row's label, or ``None`` (no stratification).
        fraction: share of customers held out (each stratum rounds on its own).
        seed: the random seed.
    """
    if labels is None:
        unique = pd.Series(pd.unique(ids.to_numpy()))
        hashed = pd.util.hash_pandas_object(unique, index=False, hash_key=f"persona{seed:09d}"[-16:])
        share = (hashed.to_numpy() % np.uint64(1_000_000)).astype(float) / 1_000_000
        return np.sort(unique.to_numpy()[share < fraction])
    frame = pd.DataFrame({"id": ids.to_numpy(), "y": labels.to_numpy()})
    per_customer = frame.drop_duplicates("id", keep="last").sort_values("id")
    rng = np.random.default_rng(seed)
    chosen = []
    for _, group in per_customer.groupby("y", sort=True):
        members = group["id"].to_numpy()
        chosen.append(rng.permutation(members)[: round(len(members) * fraction)])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype="int64")


def assign(frame: pd.DataFrame, plan: TrainingPlan, label: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Boolean masks ``(train, holdout)`` of ``frame``'s rows under ``plan``.

    Args:
        frame: rows with ``customer_id`` and ``event_timestamp`` (and ``label`` to stratify on).
        plan: the plan.
        label: label column to stratify the customer split on (``None``: not stratified).
    """
    times = frame[TIMESTAMP]
    in_train, in_hold = times.isin(plan.train_times), times.isin(plan.holdout_times)
    if plan.split == "time":
        return in_train, in_hold
    at_holdout = frame[in_hold]
    labels = at_holdout[label] if label is not None and label in frame else None
    held = holdout_customers(at_holdout[ENTITY_KEY], labels, plan.holdout_fraction or 0.0, plan.seed)
    is_held = frame[ENTITY_KEY].isin(held)
    return in_train & ~is_held, in_hold & is_held


def with_counts(plan: TrainingPlan, y_train: pd.Series, y_holdout: pd.Series, classifier: bool) -> TrainingPlan:
    """The plan with its row (and positive) counts; refuses a classifier too few of either class.

    Raises:
        PersonaError: a side with fewer than :data:`MIN_CLASS_ROWS` rows of a class.
    """
    counted = replace(plan, train_rows=len(y_train), holdout_rows=len(y_holdout))
    if not classifier:
        return counted
    pos_train, pos_hold = int(np.sum(y_train == 1)), int(np.sum(y_holdout == 1))
    counted = replace(counted, train_positives=pos_train, holdout_positives=pos_hold)
    for side, rows, positives in (("training", len(y_train), pos_train), ("holdout", len(y_holdout), pos_hold)):
        if min(positives, rows - positives) < MIN_CLASS_ROWS:
            fix = (
                _too_short(plan.facts, plan.horizon_days)
                if plan.horizon_days is not None
                else "give labels of more customers, with both classes"
            )
            raise PersonaError(
                f"the {side} rows hold {positives} positive and {rows - positives} negative {plan.target} "
                f"labels (need {MIN_CLASS_ROWS} of each): {fix}"
            )
    return counted


def after_training_window(champion: object, holdout: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The holdout rows after the champion's own training window, or why there are none.

    A champion scored on rows it trained on would look better than it is, so only rows at
    snapshot times after its ``data.train_end`` count. A customer split trains at the holdout's
    own dates, so its champion is never comparable on a later run's holdout of the same dates.

    Args:
        champion: a loaded bundle (its ``metadata`` holds the window it was trained on).
        holdout: this run's holdout rows.

    Returns:
        ``(rows, "")`` when rows remain, else ``(empty rows, reason)``.
    """
    metadata = getattr(champion, "metadata", {}) or {}
    end = metadata.get("data.train_end")
    if not end:
        return holdout.iloc[:0], "its training window is not recorded"
    train_end = pd.Timestamp(end)
    times = pd.to_datetime(holdout[TIMESTAMP], utc=True)
    rows = holdout[(times > (train_end if train_end.tzinfo else train_end.tz_localize("UTC"))).to_numpy()]
    if rows.empty:
        return rows, f"it trained on snapshots up to {_day(train_end)}, this holdout has none later"
    return rows.reset_index(drop=True), ""
