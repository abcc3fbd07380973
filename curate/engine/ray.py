"""The Ray Data runner: a streaming DAG of read tasks, fused stage segments and one writer.

Stateless segments run as tasks (Ray fuses them into the read); a segment with a stage that has setup() runs in
an actor pool so that models load once per actor. Global stages hash-partition the live documents by key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import pyarrow as pa

from curate.config import Pipeline
from curate.engine import embedded
from curate.engine.globals import GlobalContext, run_global
from curate.engine.isolate import limits_for
from curate.engine.plan import PhaseJob, Segment
from curate.engine.ray_docs import RayDocs
from curate.engine.read import read_unit
from curate.engine.segment import SegmentRunner
from curate.io.base import Reader, ReadUnit
from curate.ledger import Ledger
from curate.output.figures import Figures
from curate.output.resume import UnitSkip
from curate.output.sink import ShardWriter
from curate.output.state import RunState
from curate.stage import Stage

log = logging.getLogger("curate.engine")


_JOINED: str | None = None  # the cluster this process joined (None: an embedded Ray, or none yet)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect to the cluster at `address` (or RAY_ADDRESS), else start an embedded local Ray. Returns a label."""
    import ray

    global _JOINED
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        if not address or address == _JOINED:
            return "attached"
        # An embedded Ray (or another cluster) from an earlier run in this process: a run that names a cluster
        # goes there, not silently to the one already up (curate.run twice in a notebook).
        log.info("ray: leaving the Ray instance of an earlier run for the cluster at %s", address)
        ray.shutdown()  # (engine.embedded keys on the instance's GCS address: a cluster's is not the embedded one's)
    quiet_ray(verbose())
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **common)
        _JOINED = address
        return f"cluster {address}"
    _JOINED = None
    # "local": a fresh embedded instance even if a `ray start` cluster runs on this machine (joining one is explicit)
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **common)
    embedded.started_here()  # Ray Data without the services of a cluster (see curate.engine.embedded)
    return "local"


def verbose() -> bool:
    """`curate -v`: the curate logger at DEBUG."""
    return logging.getLogger("curate").getEffectiveLevel() <= logging.DEBUG


# Ray's own notices that a default run should not print: its INFO lines (execution plans, "finished in"), and the
# token-auth notice every local start prints (the token is used either way). `curate -v` shows them.
_RAY_NOISE = {
    "ray.data": logging.WARNING,
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
}


def quiet_ray(show: bool) -> None:
    for name, level in _RAY_NOISE.items():
        logging.getLogger(name).setLevel(logging.INFO if show else level)


def worker_logging(show: bool) -> None:
    """In a worker: a stage's warnings were already printed once by the driver's preflight (engine.segment), so
    workers (whose logs Ray forwards to the driver) keep only errors unless the run is verbose."""
    logging.getLogger("curate").setLevel(logging.DEBUG if show else logging.ERROR)
    logging.getLogger("curate.isolation").setLevel(logging.DEBUG if show else logging.WARNING)  # one line a record


class RayReporter:
    """What a worker uses to report live progress to the ledger actor. Fire and forget: the figures in stats.json
    come from commit records, so progress needs no round trip per batch. Only the error cap asks and waits."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def add(self, figures: Figures) -> None:
        self.actor.add.remote(figures)

    def add_errors(self, stage: str, n: int) -> int:
        import ray

        return ray.get(self.actor.add_errors.remote(stage, n))

    def unit_done(self, key: str, docs: int) -> None:
        self.actor.unit_done.remote(key, docs)

    def isolate(self, stage: str, records: list[dict[str, str]]) -> None:
        import ray

        ray.get(self.actor.isolate.remote(stage, records))  # waited for: the driver asks for them next

    def isolated(self, stage: str) -> dict[str, dict[str, str]]:
        import ray

        return ray.get(self.actor.isolated.remote(stage))


def _datasource(
    reader: Reader,
    units: list[ReadUnit],
    on_done: Callable[[str, int, dict[str, int]], None],
    skip: dict[str, UnitSkip] | None,
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
            per_unit = skip or {}  # each read task carries only its own unit's skip set
            for unit in units:

                def read(unit: ReadUnit = unit, left_out: UnitSkip | None = per_unit.get(unit.key)) -> Iterable:
                    return read_unit(reader, unit, on_done, left_out)

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


SHUFFLE_INPUT_BATCH_BYTES = 128 << 20


class _SegmentActor:
    """An actor of a stateful segment: builds and sets up its stages once (`make`: the segment's SegmentRunner)."""

    def __init__(self, make: Callable[[], SegmentRunner], show_logs: bool) -> None:
        worker_logging(show_logs)
        self.runner = make()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.runner(batch)


# Segment runners of this worker process, by segment token: a task-run segment's stages are built (and set up)
# once per worker process, not once per task, because Ray reuses worker processes across tasks.
_RUNNERS: dict[str, SegmentRunner] = {}


class _SegmentTask:
    """A segment run as tasks. An instance (not a class), so Ray runs it as tasks; it reaches the process-wide
    cache through this module's globals when called, so its stages are built once per worker process (`make`: the
    segment's SegmentRunner)."""

    def __init__(self, make: Callable[[], SegmentRunner], show_logs: bool, name: str) -> None:
        self.token = uuid.uuid4().hex
        self.make = make
        self.show_logs = show_logs
        self.__name__ = name  # Ray names the operator after the function

    def __call__(self, batch: pa.Table) -> pa.Table:
        runner = _RUNNERS.get(self.token)
        if runner is None:
            worker_logging(self.show_logs)
            while len(_RUNNERS) >= 4:  # a worker outlives runs: older segments' runners (and children) go
                _RUNNERS.pop(next(iter(_RUNNERS)))._sandbox.close()
            runner = _RUNNERS[self.token] = self.make()
        return runner(batch)


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


@contextlib.contextmanager
def _remote_args_allowed() -> Iterator[None]:
    """Ray 2.60 deprecates map_batches' **ray_remote_args, yet names no parameter for the retry bounds
    (max_retries, max_restarts, max_task_retries) that it otherwise sets to forever: its warning is not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        yield


class RayExecutor:
    name = "ray"

    def __init__(self, pipeline: Pipeline, address: str | None) -> None:
        import ray
        import ray.data

        self.pipeline = pipeline
        where = ensure_ray(address)
        log.info("ray: %s", where)
        from curate.config.registry import user_modules

        for name, module in user_modules.items():
            if sys.modules.get(name) is module:  # (one removed or reloaded since is not what this run's stages use)
                ray.cloudpickle.register_pickle_by_value(module)  # ship the user's own stage code with the tasks
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = os.environ.get("CURATE_RAY_PROGRESS", "") == "1"
        # curate prints its own per-stage progress; Ray's notice that its bars are off is noise
        for handler in logging.getLogger("ray.data").handlers:
            handler.addFilter(lambda r: "Progress bars disabled" not in r.getMessage())
        ctx.verbose_stats_logs = False
        ctx.print_on_execution_start = verbose()
        # A stage's own error (StageError over the cap, a setup failure) surfaces as itself, not as Ray's wrapper.
        ctx.raise_original_map_exception = True
        # Ray Data reserves half the CPUs for operators in equal shares; a curate pipeline is one heavy fused map
        # between a light read and a light write, so the reservation leaves the map a fraction of the machine (on
        # 2 CPUs it ran one task at a time: 1.6x slower end to end). Object-store backpressure still applies.
        ctx.op_resource_reservation_enabled = False
        # A hash shuffle's map task coalesces its input to this many bytes and partitions them at once (Ray's
        # default, 1 GiB, holds about 2 GiB in one worker whatever the partition count: it was the floor of
        # substring_dedup's memory per worker). 128 MiB keeps a map task's share of a global stage small.
        if hasattr(ctx, "shuffle_input_batch_bytes"):
            ctx.shuffle_input_batch_bytes = SHUFFLE_INPUT_BATCH_BYTES
        # On the driver's node: a lost worker node must not take the ledger with it (global stages ask it which
        # documents their derive() isolated as poison; the driver's node failing ends the run anyway).
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.actor = ray.remote(num_cpus=0, scheduling_strategy=here)(Ledger).remote()
        self.reporter = RayReporter(self.actor)
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def snapshot(self) -> dict[str, Any]:
        import ray

        return ray.get(self.actor.snapshot.remote())

    def close(self) -> None:
        import ray

        ray.kill(self.actor)

    def run_phase(self, job: PhaseJob) -> list[tuple[str, Stage]]:
        """Run one phase; returns the global stages it ran (their driver-side figures are taken after)."""
        phase, reader, units, skip, writer, write_prefix = job
        import ray.data

        engine = self.pipeline.engine
        ran: list[tuple[str, Stage]] = []
        workers = min(self.cpus, engine.max_workers or self.cpus)
        on_done = _UnitDone(writer.state, phase.index, self.reporter)
        source = _datasource(reader, units, on_done, skip)
        ds = ray.data.read_datasource(source, override_num_blocks=max(1, len(units)))
        for k, seg in enumerate(phase.segments):
            ds = self._segment(ds, seg, workers, writer, ran, from_reader=k == 0)
        # The writer gathers shard_rows rows per task (min_rows_per_write). Its own (smaller) CPU request keeps Ray
        # from fusing it into the stages: fused, that bundling would funnel every batch into one task at a time.
        ds.write_datasink(
            _datasink(writer, self.pipeline.output.shard_rows, write_prefix),
            ray_remote_args={"num_cpus": 0.5, "max_retries": self.pipeline.engine.task_retries},
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Ray Data execution of phase %d:\n%s", phase.index, ds.stats())
        return ran

    def _partitions(self) -> int:
        """Partitions of a shuffle: engine.shuffle_partitions, or twice the cluster's CPUs."""
        return self.pipeline.engine.shuffle_partitions or max(2, 2 * self.cpus)

    def _segment(
        self,
        ds: Any,
        seg: Segment,
        workers: int,
        writer: ShardWriter,
        ran: list[tuple[str, Stage]],
        from_reader: bool = False,
    ) -> Any:
        import ray.data

        engine = self.pipeline.engine
        res = dict(seg.resources)
        # Straight after the reader, every block is one of its batches (at most engine.batch_rows documents, one
        # read unit's): each is one task. With batch_size set, Ray bundles blocks up to that many rows per task, so
        # 1,468 pages in 33 blocks ran as two tasks of 1,000 and 468 rows, the second worker idle for the last
        # half of the run. Past a global stage a block can be any size, and batch_size slices it.
        batch_size = None if from_reader and seg.kind == "row" and not seg.in_actors else engine.batch_rows
        opts: dict[str, Any] = {"batch_format": "pyarrow", "batch_size": batch_size, "zero_copy_batch": True}
        for name in ("num_cpus", "num_gpus"):
            if name in res:
                opts[name] = res.pop(name)
        if res:
            opts["resources"] = res
        limits = limits_for(seg.specs, engine)
        # the segment's runner, built where it runs (an actor, or once per worker process for tasks)
        make = partial(
            SegmentRunner, seg.specs, self.reporter, engine.max_stage_errors, limits, self.pipeline.output.tokenizer
        )
        if seg.in_actors:
            # A dead actor is restarted and its batch run again, task_retries times (Ray's default: forever).
            opts["max_restarts"] = opts["max_task_retries"] = engine.task_retries
            with _remote_args_allowed():
                return ds.map_batches(
                    _SegmentActor,
                    fn_constructor_args=(make, verbose()),
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
                    **opts,
                )
        if seg.kind == "row":
            opts["max_retries"] = engine.task_retries  # a dead worker's task runs again this often, not forever
            task = _SegmentTask(make, verbose(), "+".join(s.id for s in seg.specs))
            with _remote_args_allowed():
                return ds.map_batches(task, **opts)
        ctx = GlobalContext(seg.specs[0], self.reporter, writer, limits_for(seg.specs, engine), engine.batch_rows)
        docs, stage = run_global(ctx, RayDocs(ds, ctx, self._partitions()))
        ran.append((ctx.sid, stage))
        return docs.ds
