"""Running a pipeline: plan it, take the output's lock, run each phase on Ray or in process, then build the
stats and commit the run. The output transaction itself (lock, state, writer, resume, stats, commit) is curate.output;
the executors are engine.ray and engine.local; the live view is engine.progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from curate.config import Pipeline
from curate.engine.plan import PhaseJob, plan_phases, rejected_schemas, stage_schemas
from curate.engine.progress import Progress, estimate, progress_line  # noqa: F401  (the progress view's API)
from curate.engine.segment import preflight
from curate.errors import ConservationError, CurateError
from curate.output import sink
from curate.output.commit import commit_run
from curate.output.figures import StageFigures
from curate.output.lock import OutputLock
from curate.output.resume import phase_input
from curate.output.sink import ShardWriter
from curate.output.state import RunState
from curate.output.stats import build_stats

log = logging.getLogger("curate")

RUNNERS = ("ray", "local")


def run(
    pipeline: Pipeline,
    runner: str = "ray",
    address: str | None = None,
    overwrite: bool = False,
    take_over: bool = False,
) -> dict[str, Any]:
    """Run `pipeline` (resuming an unfinished run in its output directory); returns the stats written to
    OUT/stats.json. Raises CurateError subclasses on user errors. The output's lock is held throughout (another
    run's output is refused; `take_over` takes it from a holder on another host that is known to be dead)."""
    with OutputLock(pipeline.output.path, take_over=take_over) as lock:
        return _run(pipeline, runner, address, overwrite, lock)


def _run(pipeline: Pipeline, runner: str, address: str | None, overwrite: bool, lock: OutputLock) -> dict[str, Any]:
    """The body of run(), with the output's lock held."""
    if runner not in RUNNERS:
        raise CurateError(f"unknown runner '{runner}'", hint=f"use one of {', '.join(RUNNERS)}")
    schemas, kept_schema = stage_schemas(pipeline)
    rejected = rejected_schemas(pipeline, schemas)
    if runner == "ray":
        preflight(pipeline.stages)
    phases = plan_phases(pipeline.stages, pipeline.engine.stateful_stages)
    out = pipeline.output.path
    resumed = sink.prepare(out, overwrite, pipeline.resolved)
    state = RunState(out)
    if not resumed:
        state.clear()
    attempt = state.new_attempt()
    lock.set_attempt(attempt)
    sink.write_text(out, sink.PIPELINE, pipeline.to_yaml())
    log.info(
        "%s %s: %d stage(s), %s on the %s runner -> %s",
        f"resuming (attempt {attempt})" if resumed else "running",
        pipeline.name,
        len(pipeline.stages),
        " || ".join(
            " | ".join(f"{s.label}{' (global)' if s.kind == 'global' else ''}" for s in p.segments) or "copy"
            for p in phases
        ),
        runner,
        out,
    )
    started = time.time()
    executor = _executor(runner, pipeline, address)
    try:
        with Progress(executor.snapshot, pipeline, started) as progress:
            for phase in phases:
                if state.phase_done(phase.index):
                    log.info("phase %d already finished in an earlier attempt", phase.index)
                    continue
                reader, units, skip = phase_input(pipeline, phase, state, schemas)
                progress.phase(phase, units)
                kept_dir = sink.DATA_DIR if phase.final else state.checkpoint_dir(phase.index)
                phase_schema = kept_schema if phase.final else schemas[phases[phase.index + 1].first_stage]
                writer = ShardWriter(pipeline.output, state, phase.index, kept_dir, phase_schema, rejected)
                phase_started = time.time()
                job = PhaseJob(phase, reader, units, skip, writer, f"a{attempt}p{phase.index}")
                ran = _unwrap_ray_errors(executor.run_phase, job)
                for sid, stage in ran:  # driver-side figures of global stages (clusters, rounds), once per phase
                    figures = StageFigures(seconds=time.time() - phase_started, counters=stage.take_counts())
                    state.global_done(phase.index, sid, figures)
                finished = state.units(phase.index)
                missing = [u.key for u in units if u.key not in finished]
                if missing:
                    raise ConservationError(
                        f"phase {phase.index}: {len(missing)} input unit(s) never finished reading, e.g. {missing[0]}"
                    )
                state.mark_phase_done(phase.index)
    finally:
        executor.close()
    layout = {sp.id: (seg.kind, ph.index) for ph in phases for seg in ph.segments for sp in seg.specs}
    indexes = [ph.index for ph in phases]
    stats = build_stats(pipeline, layout, indexes, state, time.time() - started, runner, attempt)
    lock.check()  # a run that lost its output to another must not commit it
    commit_run(out, state, phases[-1].index, stats)
    return stats


def _executor(runner: str, pipeline: Pipeline, address: str | None) -> Any:
    if runner == "local":
        from curate.engine.local import LocalExecutor

        return LocalExecutor(pipeline)
    from curate.engine.ray import RayExecutor

    return RayExecutor(pipeline, address)


def _unwrap_ray_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Ray wraps exceptions raised in tasks; surface our own user-facing errors as themselves."""
    try:
        return fn(*args)
    except CurateError:
        raise
    except Exception as e:
        cause = _find_curate_error(e)
        if cause is not None:
            raise cause from None
        raise


def _find_curate_error(e: BaseException | None, depth: int = 0) -> CurateError | None:
    if e is None or depth > 10:
        return None
    if isinstance(e, CurateError):
        # RayTaskError subclasses the cause's class: rebuild a plain instance with the original message.
        if type(e).__module__.startswith("curate"):
            return e
        for klass in type(e).__mro__:
            if issubclass(klass, CurateError) and klass.__module__.startswith("curate"):
                cause = getattr(e, "cause", None)
                if isinstance(cause, CurateError):
                    return cause
                return klass(str(getattr(e, "message", e)))
    # Ray keeps the original error as `cause`; an actor that died in its constructor keeps the creation
    # task's error in its arguments.
    linked = [getattr(e, "cause", None), e.__cause__, e.__context__]
    linked += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    for nxt in linked:
        found = _find_curate_error(nxt, depth + 1)
        if found is not None:
            return found
    return None
