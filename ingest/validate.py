"""Validate rows against the data contract: every row is accepted or quarantined with a reason.

Pure (frames in, frames out). The reason recorded is the first failing rule, in contract
column order: ``bad_<col>`` for a missing required value or one that does not parse,
``negative_<col>`` for a negative amount, ``out_of_range_<col>`` for a share or rating outside
its range, ``<col>_over_max_<bound>`` for a value above its plausible bound (``amount`` and
``quantity``, from ``PERSONA_MAX_AMOUNT`` / ``PERSONA_MAX_QUANTITY``; e.g. ``amount_over_max_1e+07``),
``empty_<col>`` for a blank text and ``bad_timestamp`` for the event time. A row the reader
found damaged (``unterminated_quote``: its cell swallowed the rows after it) is quarantined with
that reason before any rule is checked. Optional
columns may be empty. Extra columns are kept (from CSV as text, from parquet with their own type).

Each accepted row gets a ``_row_id`` (uint64): a hash of its normalized contract values
(SipHash per value via :func:`pandas.util.hash_array`, combined in contract order) mixed with
its occurrence number among identical rows of the same file. Re-ingesting a file, or an export
that overlaps an earlier one, therefore adds nothing twice, while two genuinely identical
rows in one file are both kept. Extra columns do not take part in the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from pandas.api import types as ptypes

from core.errors import PersonaError
from ingest.parse import KIND_DTYPES, PARSERS, as_text, canonical_text, text_array

if TYPE_CHECKING:
    from collections.abc import Mapping

    from core.contract import TableSpec

ROW_ID = "_row_id"
REASON = "reason"
SOURCE_ROW = "source_row"


def _reason_codes(column: str, kind: str, spec: TableSpec) -> tuple[str, str]:
    """(code for a null/invalid value, code for an out-of-range value) of one column."""
    if kind == "timestamp" and column == spec.timestamp:
        return "bad_timestamp", "bad_timestamp"
    if kind == "text":
        return f"empty_{column}", f"empty_{column}"
    if kind == "float>=0":
        return f"bad_{column}", f"negative_{column}"
    return f"bad_{column}", f"out_of_range_{column}"


def missing_columns(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Required columns of ``spec`` that ``frame`` lacks, in contract order."""
    return [c for c in spec.required if c not in frame.columns]


# ---- row identity: explicit, so it does not depend on how pandas stores a dtype
MIX = np.uint64(0x100000001B3)
"""FNV-1a's multiplier, mixing per-column hashes into a row identity."""
_NULL_TEXT = "\x00<null>"


def column_hash(series: pd.Series) -> np.ndarray:
    """A uint64 hash per value (SipHash via :func:`pandas.util.hash_array`), nulls included."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or ptypes.is_datetime64_dtype(dtype):
        data = series.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view(np.int64)
    elif isinstance(dtype, pd.BooleanDtype):
        data = series.astype("Int8").fillna(-1).to_numpy(dtype=np.int8)
    elif ptypes.is_float_dtype(dtype):
        data = series.to_numpy(dtype=np.float64, na_value=np.nan) + 0.0
    elif ptypes.is_integer_dtype(dtype) and not series.hasnans:
        data = series.to_numpy(dtype=np.int64)
    else:  # text: hash each distinct value once
        encoded = pc.dictionary_encode(text_array(series)).combine_chunks()
        uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        hashes = pd.util.hash_array(np.append(uniques, _NULL_TEXT).astype(object), categorize=False)
        codes = pc.fill_null(encoded.indices, len(uniques)).to_numpy().astype(np.intp)
        return hashes[codes]
    return pd.util.hash_array(data, categorize=False)


def _row_ids(frame: pd.DataFrame) -> np.ndarray:
    """Hash of each row's values (in column order) mixed with its occurrence among identical rows."""
    combined = np.full(len(frame), np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    for name in frame.columns:
        combined = (combined ^ column_hash(frame[name])) * MIX
    occurrence = pd.Series(combined).groupby(combined, sort=False).cumcount().to_numpy(dtype=np.uint64)
    return pd.util.hash_array((combined ^ occurrence) * MIX, categorize=False)


def _normalize_extra(series: pd.Series) -> pd.Series:
    if ptypes.is_object_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype | pd.StringDtype):
        return canonical_text(series)
    return series


@dataclass
class Validation:
    """One frame split by the contract, with what the report needs to say about it.

    Attributes:
        accepted: rows that meet the contract (see :func:`validate_table`).
        quarantined: rows that do not, with ``source_row``, ``reason`` and ``_row_id``.
        truncated: accepted texts cut to the maximum length.
        reasons: quarantine reason code -> count.
    """

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    truncated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def over_max_reason(column: str, bound: float) -> str:
    """The reason code of a value above its plausible bound, naming the column and the bound."""
    return f"{column}_over_max_{bound:g}"


def validate(
    frame: pd.DataFrame,
    spec: TableSpec,
    *,
    max_values: Mapping[str, float] | None = None,
    damaged: np.ndarray | None = None,
) -> Validation:
    """Split ``frame`` as :func:`validate_table` does, keeping the counts the ingest report needs.

    Args:
        frame: rows as read.
        spec: the contract table.
        max_values: column -> largest plausible value (columns ``spec`` lacks are ignored); larger
            values are quarantined with :func:`over_max_reason`.
        damaged: per row, a reason the reader already found (``None`` where the row is intact).

    Raises:
        PersonaError: a required column is missing.
    """
    missing = missing_columns(frame, spec)
    if missing:
        raise PersonaError(f"{spec.name}: missing required column(s) {', '.join(missing)}; "
                           f"expected {', '.join(spec.required)}")
    reserved = [c for c in (ROW_ID, REASON) if c in frame.columns]
    if reserved:
        frame = frame.drop(columns=reserved)
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    n = len(frame)
    reason = np.full(n, None, dtype=object) if damaged is None else np.asarray(damaged, dtype=object).copy()
    normalized: dict[str, pd.Series] = {}
    truncated = np.zeros(n, dtype=bool)
    contract = {**spec.required, **spec.optional}
    for column, kind in contract.items():
        if column not in frame.columns:
            continue
        parsed = PARSERS[kind](frame[column])
        bad_code, range_code = _reason_codes(column, kind, spec)
        failed = parsed.invalid | (parsed.null if column in spec.required else False)
        reason = np.where((reason == None) & failed, bad_code, reason)  # noqa: E711 - elementwise
        if parsed.out_of_range is not None:
            reason = np.where((reason == None) & parsed.out_of_range, range_code, reason)  # noqa: E711
        bound = (max_values or {}).get(column)
        if bound is not None:
            with np.errstate(invalid="ignore"):
                too_big = (parsed.values.to_numpy(dtype=np.float64, na_value=np.nan) > bound)
            reason = np.where((reason == None) & too_big, over_max_reason(column, bound), reason)  # noqa: E711
        if parsed.truncated is not None:
            truncated |= parsed.truncated
        normalized[column] = parsed.values
    ok = reason == None  # noqa: E711
    n_ok = int(ok.sum())

    columns: dict[str, pd.Series] = {}
    for column, kind in contract.items():
        if column in normalized:
            values = normalized[column][ok].reset_index(drop=True)
        else:
            values = pd.Series(np.nan if KIND_DTYPES[kind] in ("float64", "datetime64[ns, UTC]") else pd.NA,
                               index=pd.RangeIndex(n_ok), dtype=object)
        columns[column] = values.astype(KIND_DTYPES[kind])
    accepted = pd.DataFrame(columns, index=pd.RangeIndex(n_ok))
    accepted[ROW_ID] = _row_ids(accepted)
    for column in frame.columns:
        if column not in contract:
            accepted[column] = _normalize_extra(frame[column][ok]).reset_index(drop=True)

    bad = frame[~ok]
    quarantined = pd.DataFrame({c: as_text(bad[c]).astype("string") for c in frame.columns},
                               index=bad.index)
    quarantined[SOURCE_ROW] = (bad.index.to_numpy() + 1).astype(np.int64)
    quarantined[REASON] = pd.Series(reason[~ok], index=bad.index, dtype="string")
    quarantined = quarantined.reset_index(drop=True)
    quarantined[ROW_ID] = _row_ids(quarantined[sorted(frame.columns)])
    reasons = {str(k): int(v) for k, v in quarantined[REASON].value_counts().items()}
    return Validation(accepted, quarantined, int((truncated & ok).sum()), reasons)


def validate_table(frame: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a raw frame into rows that meet the data contract and rows that do not.

    Pure: ``frame`` is not modified. Every input row ends up in exactly one output.

    Args:
        frame: rows as read (strings from CSV, typed from parquet).
        spec: the contract table the rows claim to belong to.

    Returns:
        ``(accepted, quarantined)``. ``accepted`` has every contract column (absent optional
        ones as nulls) with normalized dtypes (:data:`KIND_DTYPES`), then ``_row_id``, then
        extra columns (text from CSV, trimmed, empty -> NA; other types as they came).
        ``quarantined`` has the original values as strings plus ``source_row`` (1-based
        position in ``frame``), ``reason`` (first failing rule) and ``_row_id``.

    Raises:
        PersonaError: a required column is missing.
    """
    result = validate(frame, spec)
    return result.accepted, result.quarantined



__all__ = ["REASON", "ROW_ID", "SOURCE_ROW", "Validation", "missing_columns", "validate", "validate_table"]
