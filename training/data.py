"""The training data step: entities, labels and the point-in-time training frame, split by the plan.

The rows are chosen by a :class:`~training.plan.TrainingPlan` (time split or customer split),
built from the data's facts before any feature is fetched.

Pure helpers (snapshot choice, feature columns, ground-truth join) sit beside the readers of
the home's raw tables and the Feast join, so the job can say ``data = dataset.build(...)``
followed by ``split = dataset.split(...)`` without knowing where the rows came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core import catalog
from core.errors import PersonaError
from core.timegrid import utc
from model.preprocess import TEXT_PROJECTION_PREFIX
from training import plan as planning

if TYPE_CHECKING:
    from core.settings import Settings
    from model.bundle import PersonaPredictor
    from training.config import TrainConfig

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
LABELS = ("churned", "future_orders", "future_spend")
TEXT_COLUMNS_PREFIXES = (TEXT_PROJECTION_PREFIX, "sentiment_")


# --------------------------------------------------------------------------- pure helpers
def choose_snapshots(
    times: pd.DatetimeIndex | list,
    holdout_snapshots: int,
    train_snapshots: int,
    horizon_days: int,
    purge: bool,
) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """Pick training and holdout snapshot times (holdout = the latest ones).

    Args:
        times: label-complete snapshot times.
        holdout_snapshots: how many of the latest times form the holdout.
        train_snapshots: how many of the remaining latest times feed training.
        horizon_days: label window; with ``purge`` a training time ``t`` needs
            ``t + horizon <= first holdout time`` (no training label sees past the holdout's features).
        purge: apply the rule above.

    Returns:
        ``(train_times, holdout_times)``, each ascending.

    Raises:
        PersonaError: when no training time remains.
    """
    ordered = sorted(pd.DatetimeIndex(pd.unique(pd.DatetimeIndex(times))))
    if len(ordered) < 2:
        raise PersonaError(
            f"need at least 2 label-complete snapshots to split by time, found {len(ordered)}; "
            "use more history, a shorter --horizon-days or a later --as-of"
        )
    holdout = ordered[-holdout_snapshots:] if holdout_snapshots < len(ordered) else ordered[-1:]
    start = holdout[0]
    candidates = [t for t in ordered if t < start]
    if purge:
        candidates = [t for t in candidates if t + pd.Timedelta(days=horizon_days) <= start]
    if not candidates:
        raise PersonaError(
            f"no training snapshot ends its {horizon_days}-day label window before the holdout snapshot "
            f"{start.date()}; use more history or a shorter --horizon-days"
        )
    return candidates[-train_snapshots:], list(holdout)


def feature_columns_of(frame: pd.DataFrame, extra_exclude: tuple[str, ...] = ()) -> list[str]:
    """Columns of a training frame that are features (not keys, labels or bookkeeping)."""
    excluded = {ENTITY_KEY, TIMESTAMP, "created_timestamp", *LABELS, *extra_exclude}
    return [c for c in frame.columns if c not in excluded and not c.startswith("_")]


def is_text_feature(column: str) -> bool:
    """Text-derived features (embedding projection, sentiment)."""
    return column.startswith(TEXT_COLUMNS_PREFIXES)


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows of ``frame`` (a seeded sample when it holds more)."""
    return frame if len(frame) <= n else frame.sample(n, random_state=seed)


def attach_ground_truth(holdout: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Left-join the generator's ground truth on ``(customer_id, event_timestamp)``."""
    wanted = [
        c
        for c in ("true_churn_probability", "true_expected_orders", "true_expected_spend")
        if c in truth.columns
    ]
    right = truth[[ENTITY_KEY, TIMESTAMP, *wanted]].copy()
    right[TIMESTAMP] = pd.to_datetime(right[TIMESTAMP], utc=True)
    right[ENTITY_KEY] = right[ENTITY_KEY].astype("int64")
    left = holdout.drop(columns=[c for c in wanted if c in holdout.columns])
    return left.merge(right.drop_duplicates([ENTITY_KEY, TIMESTAMP]), on=[ENTITY_KEY, TIMESTAMP], how="left")


# --------------------------------------------------------------------------- readers (I/O)
def read_labels(path: Path) -> pd.DataFrame:
    """Read a labels file (parquet or CSV).

    Raises:
        PersonaError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"--labels {path}: file not found")
    try:
        return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:
        raise PersonaError(f"--labels {path}: cannot read it ({exc}); give a parquet or CSV file") from None


def read_transactions(settings: Settings) -> pd.DataFrame:
    """The ingested transactions' keys and amounts (labels are computed from them).

    Raises:
        PersonaError: nothing ingested yet.
    """
    path = catalog.raw_table(settings, "transactions")
    if not path.exists():
        raise PersonaError("no transactions ingested yet; run `persona ingest --transactions FILE` first")
    return pd.read_parquet(path, columns=[ENTITY_KEY, TIMESTAMP, "amount"])


def read_reviews(settings: Settings, until: pd.Timestamp | None) -> pd.DataFrame | None:
    """Reviews of the year before ``until`` (persona terms), or ``None`` when none were ingested."""
    path = catalog.raw_table(settings, "reviews")
    if not path.exists():
        return None
    reviews = pd.read_parquet(path, columns=[ENTITY_KEY, TIMESTAMP, "text"])
    if until is not None:
        ts = pd.to_datetime(reviews[TIMESTAMP], utc=True)
        reviews = reviews[(ts <= until) & (ts > until - pd.Timedelta(days=365))]
    return reviews


def read_ground_truth(path: Path | None) -> pd.DataFrame | None:
    """The generator's ground truth at ``path`` (``None``: not asked for, nothing is read).

    Only an explicit path is read (``TrainConfig.ground_truth_path``; the home names it with
    :func:`core.catalog.ground_truth`), so a file left in a home never changes a run silently.

    Raises:
        PersonaError: the file is missing or lacks the needed columns.
    """
    if path is None:
        return None
    if not Path(path).exists():
        raise PersonaError(f"--ground-truth {path}: file not found")
    truth = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)
    if not {ENTITY_KEY, TIMESTAMP, "true_churn_probability"} <= set(truth.columns):
        raise PersonaError(f"{path}: ground truth needs customer_id, event_timestamp, true_churn_probability")
    return truth


# --------------------------------------------------------------------------- the frame
@dataclass
class Dataset:
    """Labelled rows with features, and where they came from.

    Attributes:
        frame: one row per (customer, snapshot) with features and labels.
        as_of: the label cutoff used to build it (``None`` when the caller gave the frame).
        from_feast: built from the Feast feature service (so lineage and re-fetches apply).
        dropped_rows: custom labels dropped for unknown customers.
        plan: the plan the rows were chosen by (``None``: planned at :func:`split`).
    """

    frame: pd.DataFrame
    as_of: pd.Timestamp | None = None
    from_feast: bool = False
    dropped_rows: int = 0
    plan: planning.TrainingPlan | None = None


@dataclass
class Split:
    """The time split one run trains and evaluates on.

    Attributes:
        train: training rows (earlier snapshots).
        holdout: evaluation rows (the latest snapshots).
        features: feature columns in model order.
        window: the data window, logged as tags and kept in the bundle's metadata.
        plan: the plan with its row counts (printed and logged before fitting).
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    window: dict[str, str]
    plan: planning.TrainingPlan


def build(settings: Settings, config: TrainConfig) -> Dataset:
    """Labelled, point-in-time correct rows of the chosen train and holdout snapshots."""
    from features.build import entity_snapshots
    from features.dataset import build_training_set
    from training.labels import label_complete, latest_label_cutoff, make_labels

    cfg = config
    transactions = read_transactions(settings)
    ts = pd.to_datetime(transactions[TIMESTAMP], utc=True)
    first, last = (ts.min(), ts.max()) if len(ts) else (None, None)
    as_of = utc(pd.Timestamp(cfg.as_of)) if cfg.as_of else latest_label_cutoff(transactions)
    planning.check_as_of(as_of, last)
    as_of = utc(as_of)
    snaps = entity_snapshots(settings)
    complete = snaps[label_complete(snaps, as_of, cfg.horizon_days).to_numpy()]
    facts = planning.DataFacts(first, last, as_of, settings.snapshot_every_days)
    plan = planning.plan_snapshots(complete[TIMESTAMP].value_counts(), facts, cfg)
    train_mask, hold_mask = planning.assign(complete, plan)
    train_rows = sample_rows(complete[train_mask.to_numpy()], cfg.max_train_rows, cfg.seed)
    entities = pd.concat([train_rows, complete[hold_mask.to_numpy()]], ignore_index=True)
    labelled = make_labels(entities, transactions, cfg.horizon_days)
    frame = build_training_set(settings, labelled, cfg.feature_service)
    return Dataset(frame, as_of, from_feast=True, plan=plan)


def build_custom(settings: Settings, config: TrainConfig) -> Dataset:
    """Rows of a custom labels file (validated against known customers) joined with features."""
    from features.dataset import build_training_set
    from training.labels import validate_label_frame

    cfg = config
    assert cfg.target is not None
    assert cfg.labels_path is not None
    labels = read_labels(cfg.labels_path)
    known = known_for_labels(settings, cfg.feature_service)
    validated = validate_label_frame(labels, cfg.target, known, cfg.task)
    rows = validated.frame[[ENTITY_KEY, TIMESTAMP, cfg.target]]
    if cfg.as_of is not None:
        planning.check_as_of(pd.Timestamp(cfg.as_of), rows[TIMESTAMP].max() if len(rows) else None)
        rows = rows[rows[TIMESTAMP] <= pd.Timestamp(cfg.as_of)]
    frame = build_training_set(settings, rows.reset_index(drop=True), cfg.feature_service)
    return Dataset(frame, from_feast=True, dropped_rows=validated.dropped_rows)


def known_for_labels(settings: Settings, feature_service: str) -> pd.Series:
    """Customers a labels file may name: those with transactions, else those in the service's own sources.

    Custom features and labels need no transactions: without them the entity timeline is the
    rows of the feature service's views (:func:`features.dataset.service_timeline`).
    """
    if catalog.raw_table(settings, "transactions").exists():
        return read_transactions(settings)[ENTITY_KEY].drop_duplicates()
    from features.dataset import service_timeline

    return service_timeline(settings, feature_service)[ENTITY_KEY].drop_duplicates()


def feature_list(settings: Settings, config: TrainConfig, data: Dataset) -> list[str]:
    """The model's feature columns: the feature service's order when built from Feast."""
    frame = data.frame
    if data.from_feast:
        from features.dataset import feature_names

        columns = [c for c in feature_names(settings, config.feature_service) if c in frame.columns]
    else:
        columns = feature_columns_of(frame)
    return [c for c in columns if c != config.target]


def split(settings: Settings, config: TrainConfig, data: Dataset) -> Split:
    """Split the rows by the plan (made here when the caller gave the frame); attach ground truth if asked."""
    cfg, frame = config, data.frame
    plan = data.plan
    if plan is None:
        times = pd.to_datetime(frame[TIMESTAMP], utc=True)
        facts = planning.DataFacts(times.min(), times.max(), data.as_of, None)
        plan = planning.plan_snapshots(frame[TIMESTAMP].value_counts(), facts, cfg)
    train_mask, hold_mask = planning.assign(frame, plan)
    train = sample_rows(frame[train_mask.to_numpy()], cfg.max_train_rows, cfg.seed).reset_index(drop=True)
    holdout = frame[hold_mask.to_numpy()].reset_index(drop=True)
    plan = planning.with_counts(plan, train["churned"], holdout["churned"], classifier=True)
    truth = read_ground_truth(cfg.ground_truth_path)
    if truth is not None:
        holdout = attach_ground_truth(holdout, truth)
    window = plan.window()
    window.setdefault("data.as_of", str(max(plan.holdout_times)))
    return Split(train, holdout, feature_list(settings, cfg, data), window, plan)


def split_custom(settings: Settings, config: TrainConfig, data: Dataset) -> Split:
    """Split custom-label rows: by time over many label times, else by customer (stratified, seeded)."""
    frame, target = data.frame, str(config.target)
    plan = planning.plan_custom(frame[TIMESTAMP].value_counts(), config)
    train_mask, hold_mask = planning.assign(frame, plan, label=target)
    train = frame[train_mask.to_numpy()].reset_index(drop=True)
    holdout = frame[hold_mask.to_numpy()].reset_index(drop=True)
    plan = planning.with_counts(plan, train[target], holdout[target], classifier=config.task == "classification")
    window = {**plan.window(), "data.labels": str(config.labels_path)}
    return Split(train, holdout, feature_list(settings, config, data), window, plan)


def frame_for(
    settings: Settings, config: TrainConfig, data: Dataset, predictor: PersonaPredictor, holdout: pd.DataFrame
) -> pd.DataFrame | None:
    """The holdout with the features ``predictor`` needs (re-fetched from its feature service)."""
    if all(c in holdout.columns for c in predictor.feature_columns):
        return holdout
    service = predictor.metadata.get("feature_service")
    if not (data.from_feast and service):
        return None
    from features.dataset import build_training_set

    keep = [
        c
        for c in holdout.columns
        if c in (ENTITY_KEY, TIMESTAMP, *LABELS, config.target) or c.startswith("true_")
    ]
    return build_training_set(settings, holdout[keep], service)
