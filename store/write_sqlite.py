"""Columnar writes into Persona's SQLite online store (one row per entity, newer wins).

Feast's local engine turns every feature value into a ``ValueProto`` object and writes every
(entity, feature) pair with its own ``execute`` call. Here a batch's rows are encoded column by
column (:func:`store.codec.encode_value_array`, the same bytes as Feast's encoders) and written
with one ``executemany`` (:meth:`store.online_sqlite.PersonaSqliteOnlineStore.write_rows`),
whose upsert never lets an older event replace a newer one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from store.codec import encode_value_array, name_prefix, prefix_framing, timestamp_text
from store.layout import encode_int64_entity_keys

if TYPE_CHECKING:
    from collections.abc import Callable

SQLITE_BATCH_ROWS = 100_000  # entity rows per write (one executemany)


def _timestamp_texts(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Fixed-width UTC texts (see :func:`store.codec.timestamp_text`), one per row."""
    series = pd.Series(column.to_pandas())
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    codes, uniques = pd.factorize(series)
    texts = [timestamp_text(ts.to_pydatetime()) for ts in uniques]
    return [texts[c] if c >= 0 else None for c in codes.tolist()]


def encode_payloads(batch: pa.Table, features: list[tuple[str, object]]) -> list[bytes]:
    """One payload per row: ``name_prefix + varint(len) + value`` for every feature, column by column."""
    chunks = [encode_value_array(batch.column(name), value_type, prefix_framing(name_prefix(name)))
              for name, value_type in features]
    if not chunks:
        return [b""] * batch.num_rows
    return pc.binary_join_element_wise(*chunks, pa.scalar(b"", pa.large_binary())).to_pylist()


def write_online(
    store,
    view,
    table: pa.Table,
    batch_rows: int = SQLITE_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Upsert the rows of ``table`` (one per entity) into the view's online table.

    Returns:
        Entity rows written.
    """
    from store.feast_internals import online_store_of

    online_store = online_store_of(store)
    join_key = view.entity_columns[0].name
    timestamp_field = view.batch_source.timestamp_field
    created_field = view.batch_source.created_timestamp_column
    features = [(f.name, f.dtype.to_value_type()) for f in view.features]
    written = 0
    for offset in range(0, table.num_rows, batch_rows):
        batch = table.slice(offset, batch_rows)
        keys = encode_int64_entity_keys(join_key, batch.column(join_key).to_numpy())
        event_ts = _timestamp_texts(batch.column(timestamp_field))
        created_ts = (_timestamp_texts(batch.column(created_field)) if created_field
                      else [None] * batch.num_rows)
        rows = sorted(zip(keys, event_ts, created_ts, encode_payloads(batch, features), strict=True))
        online_store.write_rows(store.config, view, rows)
        written += batch.num_rows
        if progress:
            progress(batch.num_rows)
    return written
