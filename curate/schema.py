"""Column names and types shared by the engine, readers and writers."""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

# Core columns every document has.
ID, TEXT, URL, SOURCE = "id", "text", "url", "source"
CORE_SCHEMA = pa.schema([(ID, pa.string()), (TEXT, pa.string()), (URL, pa.string()), (SOURCE, pa.string())])

# Engine-owned columns that travel with rejected rows between stages; never part of a stage's input.
REASON = "__reason__"
STAGE = "__stage__"
UNIT = "__unit__"  # the read unit a document came from: what resume and per-unit accounting key on
# The figures of the stages a batch went through (curate.output.figures), on one row of the batch: they travel with
# the rows to the writer and are counted from its commit record, so a retried task's figures count exactly once.
FIGURES = "__figures__"
RESERVED = (REASON, STAGE, UNIT, FIGURES)

# The name of the pseudo-stage for records rejected while reading (a corrupt record, a bad JSON line).
INPUT_STAGE = "input"
HTML = "html"
# A kept document's int column saying how many times the output holds it (`repeat`, `mix`): the final writer
# writes the document once as itself and k - 1 more times as copies with derived ids `<id>#2` ... `<id>#k`, in
# shards of kind "copy". Copies are counted apart (commit counts "copies", stats.json `copies`), never as
# documents: conservation stays documents read = kept + rejected.
COPIES = "copies"


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


class Live(NamedTuple):
    """A batch split for a stage: its live rows without the engine's columns (`body`), those columns of the same
    rows in the same order (`meta`), and the rows rejected earlier, untouched (`dead`, None when there are none)."""

    body: pa.Table
    meta: pa.Table
    dead: pa.Table | None

    def join(self, body: pa.Table, meta: pa.Table | None = None) -> pa.Table:
        """The batch again: `body` (the live rows as a stage left them, same order) with the engine's columns put
        back (`meta`, or this split's own), then the dead rows."""
        meta = self.meta if meta is None else meta
        for name in meta.column_names:
            body = body.append_column(name, meta.column(name))
        if self.dead is None or self.dead.num_rows == 0:
            return body
        return pa.concat_tables([body, self.dead], promote_options="permissive")


def split_live(batch: pa.Table, keep: tuple[str, ...] = ()) -> Live:
    """Split `batch` (which has the engine's columns) into its live rows and the rows rejected earlier; the live
    rows' engine columns go to `meta`, except those named in `keep`, which stay on the body too."""
    reasons = batch.column(REASON)
    if reasons.null_count == batch.num_rows:
        live, dead = batch, None
    else:
        alive = pc.is_null(reasons)
        live, dead = batch.filter(alive), batch.filter(pc.invert(alive))
    hidden = [c for c in RESERVED if c in live.column_names]
    return Live(live.drop_columns([c for c in hidden if c not in keep]), live.select(hidden), dead)


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
