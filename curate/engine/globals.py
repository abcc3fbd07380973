"""Helpers both runners use to run global stages: only live documents reach a stage's functions, and the
`reason` column a stage returns becomes the engine's rejection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import StageError
from curate.schema import REASON, RESERVED, STAGE
from curate.stage import Stage


def live_only(fn: Callable[[pa.Table], pa.Table], reporter: Any, sid: str) -> Callable[[pa.Table], pa.Table]:
    """Apply fn to the live rows of a batch; rows rejected earlier pass through untouched."""

    def wrapped(batch: pa.Table) -> pa.Table:
        reasons = batch.column(REASON)
        if reasons.null_count == batch.num_rows:
            live, dead = batch, None
        else:
            alive = pc.is_null(reasons)
            live, dead = batch.filter(alive), batch.filter(pc.invert(alive))
        if live.num_rows == 0:
            return _drop_temporary(batch)
        t0 = time.perf_counter()
        meta = live.select(list(RESERVED))
        body = live.drop_columns(list(RESERVED))
        out = fn(body)
        if out.num_rows != body.num_rows:
            raise StageError(f"global stage '{sid}' returned {out.num_rows} rows for {body.num_rows}")
        reporter.stage_batch(sid, 0, {}, time.perf_counter() - t0, {})
        # fn keeps rows in order (the Docs contract), so the engine's columns line up again by position
        for name in RESERVED:
            out = out.append_column(name, meta.column(name))
        if dead is None or dead.num_rows == 0:
            return out
        return pa.concat_tables([out, _drop_temporary(dead)], promote_options="permissive")

    return wrapped


def _drop_temporary(batch: pa.Table) -> pa.Table:
    """Passed-through rows may carry a global stage's temporary columns (`__group_key__`...) as nulls from an
    earlier block merge; they never need them, and a stale one could clash in type with a new one."""
    temp = [c for c in batch.column_names if c.startswith("__") and c not in RESERVED]
    return batch.drop_columns(temp) if temp else batch


def finish_global(batch: pa.Table, stage: Stage, sid: str) -> pa.Table:
    """Turn a global stage's `reason` column into rejections and check it added only declared columns."""
    if "reason" in batch.column_names:
        why = batch.column("reason")
        if why.null_count != batch.num_rows:
            new = pc.and_(pc.is_valid(why), pc.is_null(batch.column(REASON)))
            reason = pc.if_else(new, why, batch.column(REASON))
            stage_col = pc.if_else(new, pa.scalar(sid, pa.string()), batch.column(STAGE))
            batch = batch.set_column(batch.schema.get_field_index(REASON), REASON, reason)
            batch = batch.set_column(batch.schema.get_field_index(STAGE), STAGE, stage_col)
        batch = batch.drop_columns(["reason"])
    return _drop_temporary(batch)
