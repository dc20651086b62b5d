"""Declared feature types against the source's real column types, checked at ``persona features apply``.

A view that declares ``points: Int64`` over a float column is accepted by Feast's apply and fails
only when its rows are encoded at materialize. Checking at apply names the view, the column, the
declared and the found type in one line, before anything is registered.

The comparison is pure (:func:`type_mismatch` on kind strings); reading a parquet schema or a
Postgres table's column types is the only I/O (:func:`source_columns`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from core.settings import Settings

# Feast value type (``dtype.to_value_type().name``) -> the column kinds that encode to it.
_ACCEPTS: dict[str, frozenset[str]] = {
    "INT32": frozenset({"int"}),
    "INT64": frozenset({"int"}),
    "FLOAT": frozenset({"float", "int"}),
    "DOUBLE": frozenset({"float", "int"}),
    "STRING": frozenset({"string"}),
    "BYTES": frozenset({"binary"}),
    "BOOL": frozenset({"bool"}),
    "UNIX_TIMESTAMP": frozenset({"timestamp"}),
}

# Postgres ``udt_name`` -> column kind (an array's udt_name is the element's with a leading ``_``).
_PG_KINDS = {
    "int2": "int", "int4": "int", "int8": "int",
    "float4": "float", "float8": "float", "numeric": "float",
    "text": "string", "varchar": "string", "bpchar": "string", "name": "string",
    "bool": "bool", "bytea": "binary",
    "timestamp": "timestamp", "timestamptz": "timestamp", "date": "timestamp",
}


def arrow_kind(dtype: pa.DataType) -> str:
    """The kind of an Arrow column type (``int``, ``float``, ``list<float>``, ...), or its own name."""
    if pa.types.is_dictionary(dtype):
        return arrow_kind(dtype.value_type)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        return f"list<{arrow_kind(dtype.value_type)}>"
    checks = (
        (pa.types.is_boolean, "bool"), (pa.types.is_integer, "int"), (pa.types.is_floating, "float"),
        (pa.types.is_decimal, "float"), (pa.types.is_string, "string"), (pa.types.is_large_string, "string"),
        (pa.types.is_binary, "binary"), (pa.types.is_large_binary, "binary"), (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "timestamp"), (pa.types.is_null, "null"),
    )
    return next((kind for check, kind in checks if check(dtype)), str(dtype))


def postgres_kind(udt_name: str) -> str:
    """The kind of a Postgres column from its ``information_schema`` ``udt_name``."""
    if udt_name.startswith("_"):
        return f"list<{postgres_kind(udt_name[1:])}>"
    return _PG_KINDS.get(udt_name, udt_name)


def accepts(value_type: str, kind: str) -> bool:
    """Whether a column of ``kind`` encodes to Feast's ``value_type`` (``FLOAT_LIST`` takes ``list<float>``)."""
    if kind == "null":  # an all-null column says nothing about its type
        return True
    if value_type.endswith("_LIST"):
        element = value_type.removesuffix("_LIST")
        return kind.startswith("list<") and accepts(element, kind[len("list<"):-1])
    allowed = _ACCEPTS.get(value_type)
    return allowed is None or kind in allowed  # a type Persona does not know is left to Feast


def type_mismatch(view: str, column: str, declared: str, value_type: str, found: str | None, where: str) -> str | None:
    """One line when ``column`` of ``view`` cannot hold its declared type, else None.

    Args:
        view: the feature view.
        column: the declared field.
        declared: the declared Feast type as written (``Int64``).
        value_type: its Feast value type name (``INT64``).
        found: the source column's kind, None when the source has no such column.
        where: the source (path or table), for the message.
    """
    if found is None:
        return (f"feature view {view}: column {column} is declared {declared} but {where} has no column {column}; "
                "fix the view's schema or the source")
    if accepts(value_type, found):
        return None
    return (f"feature view {view}: column {column} is declared {declared} but {where} has {found}; "
            "fix the Field dtype in the view or the column's type in the source")


def source_columns(settings: Settings, source) -> tuple[dict[str, str], str] | None:
    """``({column: kind}, where)`` of a view's batch source; None when it cannot be read here.

    A parquet file missing on disk, a query source or a remote URI is left to Feast's own checks.
    """
    path = getattr(source, "path", None)
    if path is not None:
        from store.source_state import source_file

        file = None if "://" in str(path) else source_file(settings, source)
        if file is None or not file.is_file():
            return None
        schema = pq.read_schema(file)
        return {name: arrow_kind(schema.field(name).type) for name in schema.names}, str(file)
    table = getattr(source, "table", None)
    if not table:
        return None
    from store.offline import column_types

    types = column_types(settings, table)
    if not types:
        return None
    return {name: postgres_kind(udt) for name, udt in types.items()}, f"table {table}"


def check_declared_types(settings: Settings, views) -> list[str]:
    """One line per declared field whose source column is missing or of another type (empty when all fit)."""
    problems: list[str] = []
    for view in views:
        declared = list(view.features)
        if not declared or view.batch_source is None:
            continue  # a schema Feast infers from the source fits it by construction
        columns = source_columns(settings, view.batch_source)
        if columns is None:
            continue
        kinds, where = columns
        for feature in declared:
            line = type_mismatch(view.name, feature.name, str(feature.dtype), feature.dtype.to_value_type().name,
                                 kinds.get(feature.name), where)
            if line is not None:
                problems.append(line)
    return problems
