"""The Ray Data runner: a streaming DAG of read tasks, fused stage segments and one writer.

Stateless segments run as tasks (Ray fuses them into the read); a segment with a stage that has setup() runs in
an actor pool so that models load once per actor. Global stages hash-partition the live documents by key.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from curate.config import Pipeline
from curate.engine.core import Ledger, Phase, Segment, SegmentRunner, read_unit
from curate.engine.globals import finish_global, live_only
from curate.io.base import Reader, ReadUnit
from curate.io.progress import RunState
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
    # "local": a fresh embedded instance even if a `ray start` cluster runs on this machine (joining one is explicit)
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **common)
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


def _datasource(
    reader: Reader,
    units: list[ReadUnit],
    on_done: Callable[[str, int, dict[str, int]], None],
    skip_ids: frozenset[str] | None,
) -> Any:
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
                    return read_unit(reader, unit, on_done, skip_ids)

                meta = BlockMetadata(
                    num_rows=None, size_bytes=unit.size_bytes or None, exec_stats=None, input_files=(unit.path,)
                )
                tasks.append(ReadTask(read, meta))
            return tasks

    return CurateSource()


class _UnitDone:
    """Run in read tasks when a unit is read to the end: the on-disk marker (resume), then the ledger (progress)."""

    def __init__(self, state: RunState, phase: int, reporter: RayReporter) -> None:
        self.state = state
        self.phase = phase
        self.reporter = reporter

    def __call__(self, key: str, docs: int, counters: dict[str, int]) -> None:
        self.state.unit_done(self.phase, key, docs, counters)
        self.reporter.unit_done(key, docs)


class _SegmentActor:
    """An actor of a stateful segment: builds and sets up its stages once."""

    def __init__(self, specs: list, reporter: RayReporter, max_errors: int) -> None:
        self.runner = SegmentRunner(specs, reporter, max_errors)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.runner(batch)


# Segment runners of this worker process, by segment token: a task-run segment's stages are built (and set up)
# once per worker process, not once per task, because Ray reuses worker processes across tasks.
_RUNNERS: dict[str, SegmentRunner] = {}


class _SegmentTask:
    """A segment run as tasks. An instance (not a class), so Ray runs it as tasks; it reaches the process-wide
    cache through this module's globals when called, so its stages are built once per worker process."""

    def __init__(self, specs: list, reporter: RayReporter, max_errors: int) -> None:
        self.token = uuid.uuid4().hex
        self.specs = specs
        self.reporter = reporter
        self.max_errors = max_errors
        self.__name__ = "+".join(s.id for s in specs)  # Ray names the operator after the function

    def __call__(self, batch: pa.Table) -> pa.Table:
        runner = _RUNNERS.get(self.token)
        if runner is None:
            runner = _RUNNERS[self.token] = SegmentRunner(self.specs, self.reporter, self.max_errors)
        return runner(batch)


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


def _datasink(writer: ShardWriter, min_rows: int, write_prefix: str) -> Any:
    from ray.data import Datasink

    class CurateSink(Datasink):
        def get_name(self) -> str:
            return "WriteShards"

        @property
        def min_rows_per_write(self) -> int:
            return min_rows

        def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
            # The task index is the same when Ray retries this task: same file names, same commit.
            return writer.write(blocks, f"{write_prefix}-{ctx.task_idx:05d}")

    return CurateSink()


class RayExecutor:
    name = "ray"

    def __init__(self, pipeline: Pipeline, address: str | None) -> None:
        import ray
        import ray.data

        self.pipeline = pipeline
        where = ensure_ray(address)
        log.info("ray: %s", where)
        from curate.registry import user_modules

        for module in user_modules.values():
            ray.cloudpickle.register_pickle_by_value(module)  # ship the user's own stage code with the tasks
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = os.environ.get("CURATE_RAY_PROGRESS", "") == "1"
        # curate prints its own per-stage progress; Ray's notice that its bars are off is noise
        for handler in logging.getLogger("ray.data").handlers:
            handler.addFilter(lambda r: "Progress bars disabled" not in r.getMessage())
        ctx.verbose_stats_logs = False
        # A stage's own error (StageError over the cap, a setup failure) surfaces as itself, not as Ray's wrapper.
        ctx.raise_original_map_exception = True
        # Ray Data reserves half the CPUs for operators in equal shares; a curate pipeline is one heavy fused map
        # between a light read and a light write, so the reservation leaves the map a fraction of the machine (on
        # 2 CPUs it ran one task at a time: 1.6x slower end to end). Object-store backpressure still applies.
        ctx.op_resource_reservation_enabled = False
        self.actor = ray.remote(num_cpus=0)(Ledger).remote()
        self.reporter = RayReporter(self.actor)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def snapshot(self) -> dict[str, Any]:
        import ray

        return ray.get(self.actor.snapshot.remote())

    def close(self) -> None:
        import ray

        ray.kill(self.actor)

    def run_phase(
        self,
        phase: Phase,
        reader: Reader,
        units: list[ReadUnit],
        skip_ids: frozenset[str] | None,
        writer: ShardWriter,
        write_prefix: str,
    ) -> None:
        import ray.data

        engine = self.pipeline.engine
        workers = min(self.cpus, engine.max_workers or self.cpus)
        on_done = _UnitDone(writer.state, phase.index, self.reporter)
        source = _datasource(reader, units, on_done, skip_ids)
        ds = ray.data.read_datasource(source, override_num_blocks=max(1, len(units)))
        for seg in phase.segments:
            ds = self._segment(ds, seg, workers)
        # The writer gathers shard_rows rows per task (min_rows_per_write). Its own (smaller) CPU request keeps Ray
        # from fusing it into the stages: fused, that bundling would funnel every batch into one task at a time.
        ds.write_datasink(
            _datasink(writer, self.pipeline.output.shard_rows, write_prefix), ray_remote_args={"num_cpus": 0.5}
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Ray Data execution of phase %d:\n%s", phase.index, ds.stats())

    def _segment(self, ds: Any, seg: Segment, workers: int) -> Any:
        import ray.data

        engine = self.pipeline.engine
        res = dict(seg.resources)
        opts: dict[str, Any] = {"batch_format": "pyarrow", "batch_size": engine.batch_rows, "zero_copy_batch": True}
        for name in ("num_cpus", "num_gpus"):
            if name in res:
                opts[name] = res.pop(name)
        if res:
            opts["resources"] = res
        if seg.in_actors:
            return ds.map_batches(
                _SegmentActor,
                fn_constructor_args=(seg.specs, self.reporter, engine.max_stage_errors),
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
                **opts,
            )
        if seg.kind == "row":
            return ds.map_batches(_SegmentTask(seg.specs, self.reporter, engine.max_stage_errors), **opts)
        spec = seg.specs[0]
        stage = spec.build()
        stage.setup()
        docs = stage.apply_global(RayDocs(ds, self.reporter, spec.id, max(2, 2 * self.cpus)))  # type: ignore[attr-defined]
        return docs.ds.map_batches(
            lambda t, stage=stage, sid=spec.id: finish_global(t, stage, sid), batch_format="pyarrow", batch_size=None
        )
