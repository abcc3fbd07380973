"""Reading a unit into the engine: batches tagged with their unit, later copies of an id rejected, and on resume
the documents an earlier attempt committed left out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.output.resume import UnitSkip
from curate.schema import ID, INPUT_STAGE, REASON, STAGE, UNIT, with_reserved

DUPLICATE_ID = "duplicate_id"


def read_unit(
    reader: Any,
    unit: Any,
    on_done: Callable[[str, int, dict[str, int]], None],
    skip: UnitSkip | None = None,
) -> Iterator[pa.Table]:
    """A reader's batches for one unit, tagged with the unit, minus documents a previous attempt committed;
    reports the unit's full document count (and the reader's counters) once it has been read to the end.

    A later copy of an id already seen in the unit is rejected as duplicate_id (stage `input`): resume, dedup and
    joins name documents by id, so the first copy in reading order is the document."""
    reader.take_counts()
    n = 0
    seen: dict[str, int] = {}
    skipped_copies: dict[str, int] = {}
    for batch in reader.read(unit):
        n += batch.num_rows
        batch = with_reserved(batch)
        idx = batch.schema.get_field_index(UNIT)
        batch = batch.set_column(idx, UNIT, pa.array([unit.key] * batch.num_rows, pa.string()))
        copy, keep = [], []
        for doc_id in batch.column(ID).to_pylist():
            k = seen.get(doc_id, 0)
            seen[doc_id] = k + 1
            copy.append(k > 0)
            if skip is None:
                keep.append(True)
            elif k == 0:
                keep.append(doc_id not in skip.first)
            else:
                done = skipped_copies.get(doc_id, 0)
                drop = done < skip.copies.get(doc_id, 0)
                skipped_copies[doc_id] = done + drop
                keep.append(not drop)
        if any(copy):
            batch = _reject_where(batch, pa.array(copy, pa.bool_()), DUPLICATE_ID)
        if skip is not None and not all(keep):
            batch = batch.filter(pa.array(keep, pa.bool_()))
        if batch.num_rows:
            yield batch
    on_done(unit.key, n, reader.take_counts())


def _reject_where(batch: pa.Table, mask: pa.Array, reason: str) -> pa.Table:
    """Reject the rows of `mask` that are still live, at the input pseudo-stage."""
    new = pc.and_(mask, pc.is_null(batch.column(REASON)))
    for name, value in ((REASON, reason), (STAGE, INPUT_STAGE)):
        col = pc.if_else(new, pa.scalar(value, pa.string()), batch.column(name))
        batch = batch.set_column(batch.schema.get_field_index(name), name, col)
    return batch
