"""The in-process runner: same plan, same segment runner, same writer as the Ray runner, in one process.

For debugging (a breakpoint in a stage works) and for tiny inputs; a test checks it keeps the same documents as
the Ray runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.config import Pipeline
from curate.engine.globals import (
    GlobalContext,
    concat,
    derived_isolated,
    drop_null_keys,
    join_by,
    live_only,
    run_global,
)
from curate.engine.isolate import close_all, limits_for
from curate.engine.plan import PhaseJob
from curate.engine.read import read_unit
from curate.engine.segment import SegmentRunner
from curate.io.base import expand_paths
from curate.ledger import Ledger
from curate.schema import RESERVED, UNIT, split_live
from curate.stage import Stage


class LocalTable:
    """The Table of the local runner: its pieces in memory."""

    def __init__(self, tables: list[pa.Table]) -> None:
        self.tables = [t for t in tables if t.num_columns]

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> LocalTable:
        return LocalTable([fn(t) for t in self.tables])

    def group_by(self, key: str | list[str], fn: Callable[[pa.Table], pa.Table]) -> LocalTable:
        keys = [key] if isinstance(key, str) else list(key)
        whole = drop_null_keys(concat(self.tables), keys) if self.tables else None
        # One piece holds every group; a stage must treat groups on their own, so Ray's many pieces agree.
        return LocalTable([fn(whole)] if whole is not None and whole.num_rows else [])

    def union(self, *others: LocalTable) -> LocalTable:
        return LocalTable(self.tables + [t for o in others for t in o.tables])

    def materialize(self) -> LocalTable:
        return self

    def count(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def collect(self) -> pa.Table:
        return concat(self.tables)


class LocalDocs:
    """The Docs handle of the local runner: every batch in memory."""

    def __init__(self, tables: list[pa.Table], ctx: GlobalContext) -> None:
        self.tables = tables
        self.ctx = ctx

    def _live(self, fn: Callable[[pa.Table], pa.Table]) -> Callable[[pa.Table], pa.Table]:
        return live_only(fn, self.ctx.reporter, self.ctx.sid)

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> LocalDocs:
        wrapped = live_only(fn, self.ctx.reporter, self.ctx.sid, self.ctx.limits)
        return LocalDocs([wrapped(t) for t in self.tables], self.ctx)

    def all_batches(self, fn: Callable[[pa.Table], pa.Table]) -> LocalDocs:
        """fn on every batch, rejected rows included (the engine's own finishing step)."""
        return LocalDocs([fn(t) for t in self.tables], self.ctx)

    def partition_by(self, key: str, fn: Callable[[pa.Table], pa.Table]) -> LocalDocs:
        if not self.tables:
            return self
        # The live rows keep the engine's columns (live_only hides them from fn); the rows rejected earlier pass
        # by once. One partition holds every key group; a stage must decide each group on its own, so the Ray
        # runner's many partitions give the same result.
        split = split_live(concat(self.tables), keep=RESERVED)
        tables = [self._live(fn)(split.body)] + ([split.dead] if split.dead is not None else [])
        return LocalDocs(tables, self.ctx)

    def derive(self, fn: Callable[[pa.Table], pa.Table]) -> LocalTable:
        out: list[pa.Table] = []
        isolated_fn = derived_isolated(fn, self.ctx)

        def collect(body: pa.Table) -> pa.Table:
            out.append(isolated_fn(body))
            return body

        for t in self.tables:
            self._live(collect)(t)
        return LocalTable(out)

    def derive_units(self, fn: Callable[[pa.Table], pa.Table]) -> LocalTable:
        """derive() for the engine itself: the live documents with their read unit."""
        bodies = [split_live(t, keep=(UNIT,)).body for t in self.tables]
        return LocalTable([fn(b) for b in bodies if b.num_rows])

    def join(self, table: LocalTable, on: str = "id") -> LocalDocs:
        right = table.collect()
        if not right.num_columns:
            return self
        return self.map_batches(lambda body: join_by(body, right, on, self.ctx.sid))

    def table(self, data: pa.Table | list[str]) -> LocalTable:
        if isinstance(data, pa.Table):
            return LocalTable([data])
        return LocalTable([pq.read_table(p) for p in expand_paths(data, (".parquet",))])

    def write_side(self, name: str, table: LocalTable, path: str | None = None) -> list[dict[str, Any]]:
        writer = self.ctx.side_writer(name, path)
        return [info for i, t in enumerate(table.tables) if "path" in (info := writer.write([t], i))]


def _rebatch(stream: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Batches of at most `rows` rows, as Ray's map_batches(batch_size=...) hands them to a segment."""
    for t in stream:
        for start in range(0, t.num_rows, rows):
            yield t.slice(start, rows)


def _bundles(stream: Iterable[pa.Table], rows: int) -> Iterator[list[pa.Table]]:
    bundle: list[pa.Table] = []
    n = 0
    for t in stream:
        if t.num_rows == 0:
            continue
        bundle.append(t)
        n += t.num_rows
        if n >= rows:
            yield bundle
            bundle, n = [], 0
    if bundle:
        yield bundle


class LocalExecutor:
    name = "local"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.ledger = Ledger()

    def snapshot(self) -> dict[str, Any]:
        return self.ledger.snapshot()

    def close(self) -> None:
        pass

    def run_phase(self, job: PhaseJob) -> list[tuple[str, Stage]]:
        """Run one phase; returns the global stages it ran (their driver-side figures are taken after)."""
        phase, reader, units, skip, writer, write_prefix = job
        state = writer.state

        def done(key: str, docs: int, counters: dict[str, int]) -> None:
            state.unit_done(phase.index, key, docs, counters)
            self.ledger.unit_done(key, docs)

        def source() -> Iterator[pa.Table]:
            for unit in units:
                yield from read_unit(reader, unit, done, (skip or {}).get(unit.key))

        stream: Iterable[pa.Table] = source()
        ran: list[tuple[str, Stage]] = []
        for seg in phase.segments:
            if seg.kind == "row":
                engine = self.pipeline.engine
                limits = limits_for(seg.specs, engine)
                tokenizer = self.pipeline.output.tokenizer
                runner = SegmentRunner(seg.specs, self.ledger, engine.max_stage_errors, limits, tokenizer)
                stream = map(runner, _rebatch(stream, self.pipeline.engine.batch_rows))
            else:
                engine = self.pipeline.engine
                ctx = GlobalContext(seg.specs[0], self.ledger, writer, limits_for(seg.specs, engine), engine.batch_rows)
                docs, stage = run_global(ctx, LocalDocs(list(stream), ctx))
                stream = docs.tables
                ran.append((ctx.sid, stage))
        try:
            for i, bundle in enumerate(_bundles(stream, self.pipeline.output.shard_rows)):
                writer.write(bundle, f"{write_prefix}-{i:05d}")
        finally:
            close_all()  # the phase's isolated children (engine/isolate.py)
        return ran
