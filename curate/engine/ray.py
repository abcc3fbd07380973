"""The Ray Data runner: a streaming DAG of read tasks, fused stage segments and one writer.

Stateless segments run as tasks (Ray fuses them into the read); a segment with a stage that has setup() runs in
an actor pool so that models load once per actor. Global stages hash-partition the live documents by key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from curate.config import Pipeline
from curate.engine.core import Ledger, Segment, SegmentRunner, counting
from curate.engine.globals import finish_global, live_only
from curate.io.base import Reader, ReadUnit
from curate.io.sink import ShardWriter
from curate.schema import ID, REASON

log = logging.getLogger("curate.engine")

PART = "__part__"


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect to the cluster at `address` (or RAY_ADDRESS), else start an embedded local Ray. Returns a label."""
    import ray

    if ray.is_initialized():
        return "attached"
    address = address or os.environ.get("RAY_ADDRESS") or None
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **common)
        return f"cluster {address}"
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **common)
    return "local"


class RayReporter:
    """What a worker uses to report to the ledger actor; synchronous, so counts are in before the run ends."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def stage_batch(self, stage: str, docs_in: int, rejected: dict, seconds: float, counters: dict) -> None:
        import ray

        ray.get(self.actor.stage_batch.remote(stage, docs_in, rejected, seconds, counters))

    def add_errors(self, stage: str, n: int) -> int:
        import ray

        return ray.get(self.actor.add_errors.remote(stage, n))

    def unit_done(self, key: str, docs: int) -> None:
        import ray

        ray.get(self.actor.unit_done.remote(key, docs))


def _datasource(reader: Reader, units: list[ReadUnit], reporter: RayReporter) -> Any:
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class CurateSource(Datasource):
        def get_name(self) -> str:
            return reader.format.capitalize()

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(u.size_bytes for u in units) or None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, **_: Any) -> list:
            tasks = []
            for unit in units:

                def read(unit: ReadUnit = unit) -> Iterable[pa.Table]:
                    return counting(lambda: reader.read(unit), unit.key, reporter.unit_done)

                meta = BlockMetadata(
                    num_rows=None, size_bytes=unit.size_bytes or None, exec_stats=None, input_files=(unit.path,)
                )
                tasks.append(ReadTask(read, meta))
            return tasks

    return CurateSource()


class _SegmentActor:
    """An actor of a stateful segment: builds and sets up its stages once."""

    def __init__(self, specs: list, reporter: RayReporter, max_errors: int) -> None:
        self.runner = SegmentRunner(specs, reporter, max_errors)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.runner(batch)


def _segment_task(specs: list, reporter: RayReporter, max_errors: int) -> Callable[[pa.Table], pa.Table]:
    runner: list[SegmentRunner] = []

    def run(batch: pa.Table) -> pa.Table:
        if not runner:  # built once per deserialised function, i.e. once per worker process
            runner.append(SegmentRunner(specs, reporter, max_errors))
        return runner[0](batch)

    return run


class RayDocs:
    """The Docs handle of the Ray runner over a lazy Dataset that still carries earlier rejected rows."""

    def __init__(self, ds: Any, reporter: RayReporter, sid: str, partitions: int) -> None:
        self.ds = ds
        self.reporter = reporter
        self.sid = sid
        self.partitions = partitions

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> RayDocs:
        ds = self.ds.map_batches(live_only(fn, self.reporter, self.sid), batch_format="pyarrow", batch_size=None)
        return RayDocs(ds, self.reporter, self.sid, self.partitions)

    def partition_by(self, key: str, fn: Callable[[pa.Table], pa.Table]) -> RayDocs:
        def add_part(batch: pa.Table) -> pa.Table:
            import pyarrow.compute as pc

            # Rows rejected earlier have no key: spread them by id rather than piling them on one partition.
            keys = pc.cast(batch.column(key), pa.string()) if key in batch.column_names else batch.column(ID)
            dead = pc.is_valid(batch.column(REASON))
            part = pc.if_else(dead, pc.binary_join_element_wise("~", batch.column(ID), ""), keys)
            return batch.append_column(PART, pc.fill_null(part, ""))

        inner = live_only(fn, self.reporter, self.sid)

        def run(batch: pa.Table) -> pa.Table:
            return inner(batch.drop_columns([PART]))

        ds = self.ds.map_batches(add_part, batch_format="pyarrow", batch_size=None)
        # Ray's own groupby().map_groups relies on the same guarantee: a hash partition is one block.
        ds = ds.repartition(self.partitions, keys=[PART])
        ds = ds.map_batches(run, batch_format="pyarrow", batch_size=None)
        return RayDocs(ds, self.reporter, self.sid, self.partitions)


def _datasink(writer: ShardWriter, min_rows: int) -> Any:
    from ray.data import Datasink

    class CurateSink(Datasink):
        def __init__(self) -> None:
            self.results: list[dict[str, Any]] = []

        def get_name(self) -> str:
            return "WriteShards"

        @property
        def min_rows_per_write(self) -> int:
            return min_rows

        def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
            return writer.write(blocks, f"{ctx.task_idx:05d}")

        def on_write_complete(self, write_result: Any) -> None:
            self.results = list(write_result.write_returns)

    return CurateSink()


def run_ray(pipeline: Pipeline, segments: list[Segment], writer: ShardWriter, ledger_actor: Any) -> list[dict]:
    import ray
    import ray.data

    from curate.registry import user_modules

    for module in user_modules.values():
        ray.cloudpickle.register_pickle_by_value(module)  # ship the user's own stage code with the tasks
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = os.environ.get("CURATE_RAY_PROGRESS", "") == "1"
    ctx.verbose_stats_logs = False
    # A stage's own error (StageError over the cap, a setup failure) surfaces as itself, not as Ray's wrapper.
    ctx.raise_original_map_exception = True
    reporter = RayReporter(ledger_actor)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = min(cpus, pipeline.engine.max_workers or cpus)
    units = pipeline.input.units()
    ds = ray.data.read_datasource(_datasource(pipeline.input, units, reporter), override_num_blocks=max(1, len(units)))
    batch = pipeline.engine.batch_rows
    max_errors = pipeline.engine.max_stage_errors
    for seg in segments:
        res = dict(seg.resources)
        num_cpus = res.pop("num_cpus", None)
        num_gpus = res.pop("num_gpus", None)
        opts: dict[str, Any] = {"batch_format": "pyarrow", "batch_size": batch, "zero_copy_batch": True}
        if num_cpus is not None:
            opts["num_cpus"] = num_cpus
        if num_gpus is not None:
            opts["num_gpus"] = num_gpus
        if res:
            opts["resources"] = res
        if seg.kind == "row" and seg.stateful:
            ds = ds.map_batches(
                _SegmentActor,
                fn_constructor_args=(seg.specs, reporter, max_errors),
                concurrency=(1, workers),
                **opts,
            )
        elif seg.kind == "row":
            ds = ds.map_batches(_segment_task(seg.specs, reporter, max_errors), **opts)
        else:
            spec = seg.specs[0]
            stage = spec.build()
            stage.setup()
            docs = stage.apply_global(RayDocs(ds, reporter, spec.id, max(2, 2 * cpus)))  # type: ignore[attr-defined]
            ds = docs.ds.map_batches(
                lambda t, stage=stage, sid=spec.id: finish_global(t, stage, sid),
                batch_format="pyarrow",
                batch_size=None,
            )
    sink = _datasink(writer, pipeline.output.shard_rows)
    ds.write_datasink(sink)
    return sink.results


def new_ledger() -> Any:
    import ray

    return ray.remote(num_cpus=0)(Ledger).remote()
