"""Labels: what each customer does in the ``horizon_days`` after a snapshot, and checks for custom labels.

For a row ``(customer_id, t)`` the label window is ``(t, t + horizon]``: an order exactly at
``t`` belongs to the features (which use events ``<= t``), never to the label, and an order
exactly at ``t + horizon`` is still in the window. Each transaction row is one order.

- ``future_orders``: orders in the window (int).
- ``future_spend``: sum of ``amount`` in the window (float).
- ``churned``: 1 when ``future_orders == 0``, else 0.

A label is only trustworthy once its whole window has been observed: see :func:`label_complete`
and :func:`latest_label_cutoff`.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY, TIMESTAMP
from core.errors import PersonaError
from features.transforms.events import NS_PER_DAY, EventIndex, require_columns, to_utc_ns

LABEL_COLUMNS = ("churned", "future_orders", "future_spend")

logger = logging.getLogger(__name__)


def _check_horizon(horizon_days: int) -> None:
    if horizon_days < 1:
        raise PersonaError(f"horizon_days must be at least 1, got {horizon_days}; set PERSONA_HORIZON_DAYS")


def make_labels(entities: pd.DataFrame, transactions: pd.DataFrame, horizon_days: int = 90) -> pd.DataFrame:
    """Add ``future_orders``, ``future_spend`` and ``churned`` for the window ``(t, t + horizon]``.

    Args:
        entities: ``customer_id``, ``event_timestamp`` and any other columns (kept as they are).
        transactions: ``customer_id``, ``event_timestamp``, ``amount``.
        horizon_days: label window length in days.

    Returns:
        A copy of ``entities`` (same index and order) with the three :data:`LABEL_COLUMNS`.
        Customers without transactions in the window get 0 orders, 0 spend and ``churned == 1``.
    """
    _check_horizon(horizon_days)
    require_columns(entities, (ENTITY_KEY, TIMESTAMP), "entities")
    require_columns(transactions, (ENTITY_KEY, TIMESTAMP, "amount"), "transactions")
    t_ns = to_utc_ns(entities[TIMESTAMP])
    if (t_ns == np.iinfo(np.int64).min).any():
        raise PersonaError("entities have missing event_timestamp values; give every row a time")
    codes, customers = pd.factorize(entities[ENTITY_KEY])
    amount = pd.to_numeric(transactions["amount"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(amount).any():
        raise PersonaError(
            f"transactions.amount has {int(np.isnan(amount).sum())} missing or non-numeric value(s); "
            "run `persona ingest`"
        )
    index = EventIndex(
        pd.Index(customers).get_indexer(transactions[ENTITY_KEY])
        if len(transactions)
        else np.empty(0, np.int64),
        to_utc_ns(transactions[TIMESTAMP]),
        {"amount": amount},
    )
    at_t, at_end = index.positions_upto(codes, t_ns, (0, -horizon_days * NS_PER_DAY))
    future_orders = (at_end - at_t).astype(np.int64)
    out = entities.copy()
    out["future_orders"] = future_orders
    out["future_spend"] = index.window_sum("amount", at_t, at_end)
    out["churned"] = (future_orders == 0).astype(np.int64)
    return out


def label_complete(entities: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int = 90) -> pd.Series:
    """Whether each row's label window ``(t, t + horizon]`` lies fully at or before ``as_of``.

    Args:
        entities: frame with ``event_timestamp``.
        as_of: the last moment for which the data is complete (see :func:`latest_label_cutoff`).
        horizon_days: label window length in days.

    Returns:
        A bool Series aligned with ``entities`` named ``label_complete``.
    """
    _check_horizon(horizon_days)
    require_columns(entities, (TIMESTAMP,), "entities")
    cutoff = to_utc_ns(pd.DatetimeIndex([pd.Timestamp(as_of)]))[0]
    ends = to_utc_ns(entities[TIMESTAMP]) + horizon_days * NS_PER_DAY
    valid = to_utc_ns(entities[TIMESTAMP]) != np.iinfo(np.int64).min
    return pd.Series(valid & (ends <= cutoff), index=entities.index, name="label_complete")


def latest_label_cutoff(transactions: pd.DataFrame) -> pd.Timestamp:
    """Default ``as_of`` for :func:`label_complete`: the last observed transaction time.

    Nothing is known after the newest transaction, so a window ending later may still receive
    orders; treating it as complete would mislabel active customers as churned.

    Args:
        transactions: frame with ``event_timestamp``.

    Returns:
        The latest transaction time, tz-aware UTC.
    """
    require_columns(transactions, (TIMESTAMP,), "transactions")
    times = pd.to_datetime(transactions[TIMESTAMP], utc=True)
    if times.notna().sum() == 0:
        raise PersonaError(
            "transactions have no timestamps, so no label window can be complete; ingest transactions"
        )
    return times.max()


class ValidatedLabels(NamedTuple):
    """Result of :func:`validate_label_frame`.

    Attributes:
        frame: the label rows that belong to known customers, with ``customer_id`` int64,
            ``event_timestamp`` tz-aware UTC and the target as int64 0/1 (classification) or
            float64 (regression); other columns are kept.
        dropped_rows: rows dropped because their customer is unknown.
        unknown_customers: distinct unknown customer ids among the dropped rows.
    """

    frame: pd.DataFrame
    dropped_rows: int
    unknown_customers: int


def _parse_timestamps(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        raise PersonaError(
            "labels.event_timestamp holds numbers, not dates; "
            "write ISO-8601 times such as 2024-05-01T00:00:00Z"
        )
    else:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        example = values[bad].iloc[0]
        raise PersonaError(
            f"labels.event_timestamp has {int(bad.sum())} missing or unparseable value(s) "
            f"(first: {example!r}); write ISO-8601 times such as 2024-05-01T00:00:00Z"
        )
    return parsed


def _parse_customer_ids(values: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() | (numeric != np.round(numeric))
    if bad.any():
        example = values[bad].iloc[0]
        raise PersonaError(
            f"labels.customer_id has {int(bad.sum())} missing or non-integer value(s) (first: {example!r}); "
            "use the integer customer_id of your transactions"
        )
    return numeric.astype(np.int64)


def _parse_target(values: pd.Series, target: str, task: str) -> pd.Series:
    missing = values.isna()
    if missing.any():
        raise PersonaError(
            f"labels.{target} has {int(missing.sum())} missing value(s); fill them or drop those rows"
        )
    if pd.api.types.is_bool_dtype(values.dtype):
        numeric = values.astype(np.int64)
    elif pd.api.types.is_numeric_dtype(values.dtype):
        numeric = values.astype(np.float64)
    else:
        numeric = values.map(lambda v: v if isinstance(v, bool | int | float | np.number) else np.nan)
        numeric = pd.to_numeric(numeric, errors="coerce")
        bad = numeric.isna()
        if bad.any():
            kind = "0/1 or True/False" if task == "classification" else "numbers"
            raise PersonaError(
                f"labels.{target} must hold {kind}; {int(bad.sum())} value(s) do not "
                f"(first: {values[bad].iloc[0]!r})"
            )
    if task == "classification":
        bad = ~numeric.isin([0, 1])
        if bad.any():
            found = sorted({repr(v) for v in values[bad].unique()[:5]})
            raise PersonaError(
                f"labels.{target} must be binary (0/1 or True/False) for classification; "
                f"found {', '.join(found)}; recode the labels or train a regression target"
            )
        return numeric.astype(np.int64)
    numeric = numeric.astype(np.float64)
    if not np.isfinite(numeric).all():
        raise PersonaError(f"labels.{target} has infinite value(s); replace them with finite numbers")
    return numeric


def validate_label_frame(
    labels: pd.DataFrame,
    target: str,
    known_customers: pd.Series,
    task: Literal["classification", "regression"],
) -> ValidatedLabels:
    """Check a bring-your-own label frame and keep the rows of known customers.

    Args:
        labels: ``customer_id``, ``event_timestamp`` and the ``target`` column (others are kept).
        target: name of the label column.
        known_customers: customer ids Persona has data for (e.g. the transactions' ``customer_id``).
        task: ``"classification"`` (target must be 0/1/True/False) or ``"regression"`` (numbers).

    Returns:
        :class:`ValidatedLabels` with the kept frame and how many rows / customers were dropped
        as unknown (also logged as a warning; never dropped silently).

    Raises:
        PersonaError: missing columns, no rows, unparseable timestamps or customer ids, missing
            labels, non-binary labels for classification, non-numeric labels for regression, or
            no row for a known customer.
    """
    if task not in ("classification", "regression"):
        raise PersonaError(f"task must be 'classification' or 'regression', got {task!r}")
    require_columns(labels, (ENTITY_KEY, TIMESTAMP, target), "labels")
    if labels.empty:
        raise PersonaError("labels have no rows; give at least one (customer_id, event_timestamp, label) row")
    frame = labels.copy()
    frame[TIMESTAMP] = _parse_timestamps(frame[TIMESTAMP])
    frame[ENTITY_KEY] = _parse_customer_ids(frame[ENTITY_KEY])
    frame[target] = _parse_target(frame[target], target, task)

    known = frame[ENTITY_KEY].isin(pd.to_numeric(pd.Series(known_customers), errors="coerce").dropna())
    dropped_rows = int((~known).sum())
    unknown_customers = int(frame.loc[~known, ENTITY_KEY].nunique())
    if not known.any():
        examples = ", ".join(str(v) for v in frame[ENTITY_KEY].drop_duplicates().head(3))
        raise PersonaError(
            f"none of the {len(frame)} label rows belongs to a known customer ({unknown_customers} unknown "
            f"customer_id(s), e.g. {examples}); use the customer_id of your transactions"
        )
    if dropped_rows:
        logger.warning(
            "dropped %d label row(s) of %d unknown customer_id(s) not found in the data",
            dropped_rows,
            unknown_customers,
        )
    return ValidatedLabels(frame.loc[known], dropped_rows, unknown_customers)
