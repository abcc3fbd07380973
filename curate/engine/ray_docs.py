"""The Docs and Table handles of the Ray runner: a global stage's view of the documents as a lazy Dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.engine.globals import (
    GlobalContext,
    concat,
    derived_isolated,
    drop_null_keys,
    join_by,
    live_only,
    null_spread_key,
)
from curate.io.base import expand_paths
from curate.output import sink
from curate.schema import UNIT, conform, split_live

PART = "__part__"
# A group_by over a table smaller than this runs as one task on one block instead of a hash shuffle: Ray's hash
# shuffle starts aggregator actors, 10-20 s per shuffle on a small machine, which made a 700-document MinHash take a
# minute. 0 forces the shuffle (the tests do, to cover it).
SMALL_GROUP_BYTES = 64 << 20


def _pyarrow(fn: Callable[[pa.Table], pa.Table], ds: Any) -> Any:
    return ds.map_batches(fn, batch_format="pyarrow", batch_size=None, zero_copy_batch=True)


class RayTable:
    """The Table of the Ray runner: a lazy Dataset of arbitrary rows."""

    def __init__(self, ds: Any, partitions: int) -> None:
        self.ds = ds
        self.partitions = partitions

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> RayTable:
        return RayTable(_pyarrow(_empty_safe(fn), self.ds), self.partitions)

    def group_by(self, key: str | list[str], fn: Callable[[pa.Table], pa.Table]) -> RayTable:
        keys = [key] if isinstance(key, str) else list(key)

        def run(batch: pa.Table) -> pa.Table:
            if batch.num_rows == 0:
                return pa.table({})
            batch = drop_null_keys(batch, keys)
            return fn(batch) if batch.num_rows else pa.table({})

        # A hash partition is one block (Ray's groupby().map_groups relies on the same guarantee), so a call
        # sees whole groups; rows with a null key hash together but are dropped before fn sees them. A small table
        # is one block: one call sees every group.
        ds = self.ds.materialize()
        if ds.size_bytes() <= SMALL_GROUP_BYTES:
            ds = ds.repartition(1)
        else:
            ds = ds.repartition(self.partitions, keys=keys)
        return RayTable(_pyarrow(run, ds), self.partitions)

    def union(self, *others: RayTable) -> RayTable:
        return RayTable(self.ds.union(*(o.ds for o in others)), self.partitions) if others else self

    def materialize(self) -> RayTable:
        return RayTable(self.ds.materialize(), self.partitions)

    def count(self) -> int:
        return int(self.ds.count())

    def collect(self) -> pa.Table:
        import ray

        return concat([t for t in ray.get(self.ds.to_arrow_refs()) if t.num_rows])


def _empty_safe(fn: Callable[[pa.Table], pa.Table]) -> Callable[[pa.Table], pa.Table]:
    """Ray hands empty blocks to map functions too; a stage's function only ever sees rows."""

    def run(batch: pa.Table) -> pa.Table:
        return fn(batch) if batch.num_rows else pa.table({})

    return run


class RayDocs:
    """The Docs handle of the Ray runner over a lazy Dataset that still carries earlier rejected rows."""

    def __init__(self, ds: Any, ctx: GlobalContext, partitions: int) -> None:
        self.ds = ds
        self.ctx = ctx
        self.partitions = partitions

    def _with(self, ds: Any) -> RayDocs:
        return RayDocs(ds, self.ctx, self.partitions)

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> RayDocs:
        return self._with(_pyarrow(live_only(fn, self.ctx.reporter, self.ctx.sid, self.ctx.limits), self.ds))

    def all_batches(self, fn: Callable[[pa.Table], pa.Table]) -> RayDocs:
        return self._with(_pyarrow(fn, self.ds))

    def partition_by(self, key: str, fn: Callable[[pa.Table], pa.Table]) -> RayDocs:
        def add_part(batch: pa.Table) -> pa.Table:
            return batch.append_column(PART, null_spread_key(batch, key))

        inner = live_only(fn, self.ctx.reporter, self.ctx.sid)

        def run(batch: pa.Table) -> pa.Table:
            return inner(batch.drop_columns([PART]))

        ds = _pyarrow(add_part, self.ds).repartition(self.partitions, keys=[PART])
        return self._with(_pyarrow(run, ds))

    def derive(self, fn: Callable[[pa.Table], pa.Table]) -> RayTable:
        isolated = derived_isolated(fn, self.ctx)
        return RayTable(_pyarrow(_derived(isolated, False, self.ctx.batch_rows), self.ds), self.partitions)

    def derive_units(self, fn: Callable[[pa.Table], pa.Table]) -> RayTable:
        """derive() for the engine itself: the live documents with their read unit."""
        return RayTable(_pyarrow(_derived(fn, True, self.ctx.batch_rows), self.ds), self.partitions)

    def join(self, table: RayTable, on: str = "id") -> RayDocs:
        """By read unit, so the documents' text never moves: the narrow (on, unit) pairs of the documents meet the
        table's rows in a shuffle by `on`; the matched rows are written as one small file per unit; then each batch
        of documents reads its units' files and joins locally, keeping its order."""
        right = table.materialize()
        if right.count() == 0:
            return self
        schema = right.ds.schema()
        right_schema = pa.schema([(n, t) for n, t in zip(schema.names, schema.types)])
        both = pa.schema(list(right_schema) + [pa.field(UNIT, pa.string())])
        scratch = sink.join(self.ctx.writer.output.path, self.ctx.scratch())
        sid = self.ctx.sid

        def doc_units(body: pa.Table) -> pa.Table:
            return conform(body.select([on, UNIT]), both)

        def meet(group: pa.Table) -> pa.Table:
            # rows with a unit are the documents, the others the table's: give each table row its document's unit
            is_doc = pc.fill_null(pc.is_valid(group.column(UNIT)), False)
            docs_part = group.filter(is_doc).select([on, UNIT])
            rows = group.filter(pc.invert(is_doc)).drop_columns([UNIT])
            if rows.num_rows == 0:
                return pa.table({})
            joined = join_by(rows, docs_part, on, sid)
            return joined.filter(pc.is_valid(joined.column(UNIT)))

        units = self.derive_units(doc_units)
        rows = right.map_batches(lambda t: conform(t, both))
        matched = units.union(rows).group_by(on, meet)
        written = matched.group_by(UNIT, lambda t: _write_unit_files(t, scratch)).collect()
        files = dict(zip(written.column("unit").to_pylist(), written.column("file").to_pylist()))
        return self._with(_pyarrow(_UnitJoin(files, right_schema, on, self.ctx), self.ds))

    def table(self, data: pa.Table | list[str]) -> RayTable:
        import ray.data

        if isinstance(data, pa.Table):
            return RayTable(ray.data.from_arrow(data), self.partitions)
        return RayTable(ray.data.read_parquet(expand_paths(data, (".parquet",))), self.partitions)

    def write_side(self, name: str, table: RayTable, path: str | None = None) -> list[dict[str, Any]]:
        from ray.data import Datasink

        writer = self.ctx.side_writer(name, path)

        class SideSink(Datasink):
            def get_name(self) -> str:
                return "WriteSide"

            def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
                return writer.write(list(blocks), ctx.task_idx)

        table.ds.write_datasink(SideSink())
        return [f for f in self.ctx.state.side_files(self.ctx.writer.phase) if f.get("name") == name]


def _derived(fn: Callable[[pa.Table], pa.Table], keep_unit: bool, rows: int) -> Callable[[pa.Table], pa.Table]:
    """fn on the live documents of a block, `rows` documents per call (a Ray block may hold tens of thousands, and
    a derive function's intermediates are many times its input: substring_dedup's windows, bloom_dedup's n-grams);
    the engine's columns stay hidden (but the unit, for its own joins)."""

    def run(batch: pa.Table) -> pa.Table:
        if batch.num_rows == 0:
            return pa.table({})
        body = split_live(batch, keep=(UNIT,) if keep_unit else ()).body
        parts = [fn(body.slice(at, rows)) for at in range(0, body.num_rows, rows)]
        return concat(parts) if len(parts) != 1 else parts[0]

    return run


def _write_unit_files(table: pa.Table, scratch: str) -> pa.Table:
    """One Parquet file per read unit of the matched rows (names from the unit: a retried task rewrites them)."""
    from curate.output.sink import put_parquet
    from curate.output.state import unit_digest

    units, files = [], []
    for unit in pc.unique(table.column(UNIT)).to_pylist():
        rows = table.filter(pc.equal(table.column(UNIT), unit)).drop_columns([UNIT])
        rel = f"{unit_digest(unit)}.parquet"
        put_parquet(scratch, rel, rows, "zstd", None)
        units.append(unit)
        files.append(sink.join(scratch, rel))
    return pa.table({"unit": pa.array(units, pa.string()), "file": pa.array(files, pa.string())})


class _UnitJoin:
    """Joins a batch of documents with the rows its read units matched (one small file per unit, cached)."""

    def __init__(self, files: dict[str, str], schema: pa.Schema, on: str, ctx: GlobalContext) -> None:
        self.files = files
        self.schema = schema
        self.on = on
        self.ctx = ctx
        self._cache: dict[str, pa.Table] = {}

    def _rows(self, unit: str) -> pa.Table:
        if unit not in self._cache:
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            path = self.files.get(unit)
            self._cache[unit] = conform(pq.read_table(path), self.schema) if path else self.schema.empty_table()
        return self._cache[unit]

    def __call__(self, batch: pa.Table) -> pa.Table:
        if batch.num_rows == 0:
            return batch
        units = [u for u in pc.unique(batch.column(UNIT)).to_pylist() if u is not None]
        right = concat([self._rows(u) for u in units]) if units else self.schema.empty_table()
        if not right.num_columns:
            right = self.schema.empty_table()

        def join(body: pa.Table) -> pa.Table:
            return join_by(body, right, self.on, self.ctx.sid)

        return live_only(join, self.ctx.reporter, self.ctx.sid)(batch)
