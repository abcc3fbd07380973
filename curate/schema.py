"""Column names and types shared by the engine, readers and writers."""

from __future__ import annotations

import pyarrow as pa

# Core columns every document has.
ID, TEXT, URL, SOURCE = "id", "text", "url", "source"
CORE_SCHEMA = pa.schema([(ID, pa.string()), (TEXT, pa.string()), (URL, pa.string()), (SOURCE, pa.string())])

# Engine-owned columns that travel with rejected rows between stages; never part of a stage's input.
REASON = "__reason__"
STAGE = "__stage__"
UNIT = "__unit__"  # the read unit a document came from: what resume and per-unit accounting key on
RESERVED = (REASON, STAGE, UNIT)

# The name of the pseudo-stage for records rejected while reading (a corrupt record, a bad JSON line).
INPUT_STAGE = "input"


def with_reserved(table: pa.Table) -> pa.Table:
    """Add the null reason/stage columns a reader's batch lacks."""
    for name in RESERVED:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def reject_rows(table: pa.Table, reason: str | list[str], stage: str = INPUT_STAGE) -> pa.Table:
    """Mark every row of `table` rejected (readers use this for records they could not decode)."""
    n = table.num_rows
    reasons = pa.array([reason] * n if isinstance(reason, str) else reason, pa.string())
    table = table.drop_columns([c for c in RESERVED if c in table.column_names])
    return table.append_column(REASON, reasons).append_column(STAGE, pa.array([stage] * n, pa.string()))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns in its order: missing ones null, extra ones dropped, cast."""
    cols = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            cols.append(col)
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=schema)
