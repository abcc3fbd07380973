"""Column names and types shared by the engine, readers and writers."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

# Core columns every document has.
ID, TEXT, URL, SOURCE = "id", "text", "url", "source"
CORE_SCHEMA = pa.schema([(ID, pa.string()), (TEXT, pa.string()), (URL, pa.string()), (SOURCE, pa.string())])

# Engine-owned columns that travel with rejected rows between stages; never part of a stage's input.
REASON = "__reason__"
STAGE = "__stage__"
UNIT = "__unit__"  # the read unit a document came from: what resume and per-unit accounting key on
# Per-batch stage figures (seconds, counters) as JSON on one row of the batch: they travel with the rows to the
# writer and are counted from its commit record, so a retried task's figures count exactly once, like its rows.
STATS = "__stats__"
RESERVED = (REASON, STAGE, UNIT, STATS)

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
    table = table.drop_columns([c for c in (REASON, STAGE) if c in table.column_names])
    return table.append_column(REASON, reasons).append_column(STAGE, pa.array([stage] * n, pa.string()))


def merge_figures(into: dict[str, dict[str, Any]], figures: dict[str, dict[str, Any]]) -> None:
    """Add per-stage figures ({stage: {"seconds": s, "counters": {name: n}}}) into `into`."""
    for sid, f in figures.items():
        mine = into.setdefault(sid, {"seconds": 0.0, "counters": {}})
        mine["seconds"] += f.get("seconds", 0.0)
        for k, v in f.get("counters", {}).items():
            mine["counters"][k] = mine["counters"].get(k, 0) + v


def attach_figures(table: pa.Table, figures: dict[str, dict[str, Any]]) -> pa.Table:
    """Carry `figures` on the first row of `table` (merged with what that row already carries)."""
    if not figures or table.num_rows == 0:
        return table
    col = table.column(STATS).combine_chunks()
    first = col[0].as_py()
    if first:
        merged: dict[str, dict[str, Any]] = json.loads(first)
        merge_figures(merged, figures)
        figures = merged
    head = pa.array([json.dumps(figures, separators=(",", ":"))], pa.string())
    return table.set_column(table.schema.get_field_index(STATS), STATS, pa.concat_arrays([head, col.slice(1)]))


def collect_figures(table: pa.Table) -> dict[str, dict[str, Any]]:
    """The sum of the figures every row of `table` carries."""
    out: dict[str, dict[str, Any]] = {}
    if STATS not in table.column_names:
        return out
    col = table.column(STATS)
    if col.null_count == table.num_rows:
        return out
    for value in col.drop_null().to_pylist():
        merge_figures(out, json.loads(value))
    return out


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
