"""The in-process runner: same plan, same segment runner, same writer as the Ray runner, in one process.

For debugging (a breakpoint in a stage works) and for tiny inputs; a test checks it keeps the same documents as
the Ray runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.config import Pipeline
from curate.engine.core import Ledger, Phase, SegmentRunner, read_unit
from curate.engine.globals import finish_global, live_only
from curate.io.base import Reader, ReadUnit
from curate.io.sink import ShardWriter
from curate.schema import REASON


class LocalDocs:
    """The Docs handle of the local runner: every batch in memory."""

    def __init__(self, tables: list[pa.Table], reporter: Ledger, sid: str) -> None:
        self.tables = tables
        self.reporter = reporter
        self.sid = sid

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> LocalDocs:
        wrapped = live_only(fn, self.reporter, self.sid)
        return LocalDocs([wrapped(t) for t in self.tables], self.reporter, self.sid)

    def partition_by(self, key: str, fn: Callable[[pa.Table], pa.Table]) -> LocalDocs:
        if not self.tables:
            return self
        whole = pa.concat_tables(self.tables, promote_options="permissive")
        alive = pc.is_null(whole.column(REASON))
        live, dead = whole.filter(alive), whole.filter(pc.invert(alive))
        wrapped = live_only(fn, self.reporter, self.sid)
        # One partition holds every key group; a stage must decide each group on its own, so the Ray runner's
        # many partitions give the same result.
        return LocalDocs([wrapped(live), dead], self.reporter, self.sid)


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

    def run_phase(
        self,
        phase: Phase,
        reader: Reader,
        units: list[ReadUnit],
        skip_ids: frozenset[str] | None,
        writer: ShardWriter,
        write_prefix: str,
    ) -> None:
        state = writer.state

        def done(key: str, docs: int, counters: dict[str, int]) -> None:
            state.unit_done(phase.index, key, docs, counters)
            self.ledger.unit_done(key, docs)

        def source() -> Iterator[pa.Table]:
            for unit in units:
                yield from read_unit(reader, unit, done, skip_ids)

        stream: Iterable[pa.Table] = source()
        for seg in phase.segments:
            if seg.kind == "row":
                runner = SegmentRunner(seg.specs, self.ledger, self.pipeline.engine.max_stage_errors)
                stream = map(runner, _rebatch(stream, self.pipeline.engine.batch_rows))
            else:
                spec = seg.specs[0]
                stage = spec.build()
                stage.setup()
                docs = stage.apply_global(LocalDocs(list(stream), self.ledger, spec.id))  # type: ignore[attr-defined]
                stream = [finish_global(t, stage, spec.id) for t in docs.tables]
        for i, bundle in enumerate(_bundles(stream, self.pipeline.output.shard_rows)):
            writer.write(bundle, f"{write_prefix}-{i:05d}")
