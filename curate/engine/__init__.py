"""Running a pipeline: prepare the output, run on Ray or in process, account for every document, commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from curate.config import Pipeline
from curate.engine.core import Phase, UnitSkip, build_stats, plan_phases, preflight, rejected_schemas, stage_schemas
from curate.errors import ConservationError, CurateError
from curate.io import sink
from curate.io.base import Reader, ReadUnit
from curate.io.checkpoint import CheckpointReader
from curate.io.lock import OutputLock
from curate.io.progress import CHECKPOINT, PROGRESS, RunState
from curate.io.sink import ShardWriter

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
        with _Progress(executor.snapshot, pipeline, started):
            for phase in phases:
                if state.phase_done(phase.index):
                    log.info("phase %d already finished in an earlier attempt", phase.index)
                    continue
                reader, units, skip = _phase_input(pipeline, phase, state, schemas)
                kept_dir = sink.DATA_DIR if phase.final else state.checkpoint_dir(phase.index)
                phase_schema = kept_schema if phase.final else schemas[phases[phase.index + 1].first_stage]
                writer = ShardWriter(pipeline.output, state, phase.index, kept_dir, phase_schema, rejected)
                phase_started = time.time()
                ran = _unwrap_ray_errors(
                    executor.run_phase, phase, reader, units, skip, writer, f"a{attempt}p{phase.index}"
                )
                for sid, stage in ran:  # driver-side figures of global stages (clusters, rounds), once per phase
                    counters = stage.take_counts()
                    state.global_done(phase.index, sid, counters, time.time() - phase_started)
                finished = state.units(phase.index)
                missing = [u.key for u in units if u.key not in finished]
                if missing:
                    raise ConservationError(
                        f"phase {phase.index}: {len(missing)} input unit(s) never finished reading, e.g. {missing[0]}"
                    )
                state.mark_phase_done(phase.index)
    finally:
        executor.close()
    stats = build_stats(pipeline, phases, state, time.time() - started, runner, attempt)
    lock.check()  # a run that lost its output to another must not commit it
    _finish(out, state, phases, stats)
    return stats


def _executor(runner: str, pipeline: Pipeline, address: str | None) -> Any:
    if runner == "local":
        from curate.engine.local import LocalExecutor

        return LocalExecutor(pipeline)
    from curate.engine.ray import RayExecutor

    return RayExecutor(pipeline, address)


def _phase_input(
    pipeline: Pipeline, phase: Phase, state: RunState, schemas: dict[str, Any]
) -> tuple[Reader, list[ReadUnit], dict[str, UnitSkip] | None]:
    """What a phase reads, minus what earlier attempts committed (phases that start with a global stage redo)."""
    if phase.index > 0 or phase.starts_global:
        state.discard_phase(phase.index)
    if phase.index > 0:
        shards = [
            {
                "url": sink.join(pipeline.output.path, f["path"]),
                "key": f["path"],
                "sha256": f["sha256"],
                "bytes": f["bytes"],
            }
            for c in state.commits(phase.index - 1)
            for f in c["files"]
            if f["kind"] == "kept"
        ]
        reader: Reader = CheckpointReader(
            shards=shards, stored_schema=schemas[phase.first_stage], batch_rows=pipeline.engine.batch_rows
        )
        return reader, reader.units(), None
    reader = pipeline.input
    units = reader.units()
    commits = state.commits(0)
    state.check_inputs(sorted({u.path for u in units}), committed=bool(commits))  # never mix old and new input
    if not commits:
        return reader, units, None
    state.verify_files(commits)
    written, totals = state.written_per_unit(0), state.units(0)
    over = [k for k, n in written.items() if k in totals and n > totals[k]]
    if over:
        raise ConservationError(f"an earlier attempt committed unit {over[0]} more than once")
    done = {k for k, n in totals.items() if written.get(k, 0) == n}
    partial = set(written) - done
    todo = [u for u in units if u.key not in done]
    skip = _unit_skips(pipeline.output.path, commits, partial)
    log.info(
        "resume: %d of %d input unit(s) already done, %d partly (%d documents already written are skipped)",
        len(done),
        len(units),
        len(partial),
        sum(len(s.first) + sum(s.copies.values()) for s in skip.values()),
    )
    return reader, todo, skip or None


def _unit_skips(out: str, commits: list[dict[str, Any]], partial: set[str]) -> dict[str, UnitSkip]:
    """Per partly committed unit, the documents its commits already hold (from each commit's ids sidecar)."""
    first: dict[str, set[str]] = {u: set() for u in partial}
    copies: dict[str, dict[str, int]] = {u: {} for u in partial}
    for c in commits:
        if not partial & set(c["units"]):
            continue
        ids = pq.read_table(sink.join(out, c["ids"])).to_pydict()
        for doc_id, unit, copy in zip(ids["id"], ids["unit"], ids["copy"]):
            if unit not in partial:
                continue
            if copy:
                copies[unit][doc_id] = copies[unit].get(doc_id, 0) + 1
            else:
                first[unit].add(doc_id)
    return {u: UnitSkip(frozenset(first[u]), copies[u]) for u in partial}


def _finish(out: str, state: RunState, phases: list[Phase], stats: dict[str, Any]) -> None:
    """Commit the run: orphans out, manifest and stats in, _SUCCESS last; then drop the run's scratch state."""
    last = phases[-1].index
    final = [
        f
        for phase in state.phases()
        for c in state.commits(phase)
        for f in c["files"]
        if f["kind"] == "rejected" or phase == last  # kept rows of earlier phases are checkpoints
    ]
    side = [f for phase in state.phases() for f in state.side_files(phase)]
    for root, files in _by_root([f for f in side if f.get("root")]).items():
        sink.write_json(root, sink.SIDE_MANIFEST, {"pipeline": stats["pipeline"], "output": out, "files": files})
    final += [f for f in side if not f.get("root")]
    removed = sink.remove_orphans(out, [f["path"] for f in final])
    if removed:
        log.info("removed %d shard file(s) that no commit lists (failed attempts)", removed)
    manifest: dict[str, Any] = {"pipeline": stats["pipeline"], "shards": final}
    if any(f.get("root") for f in side):
        manifest["external"] = [f for f in side if f.get("root")]
    sink.write_json(out, sink.MANIFEST, manifest)
    sink.write_json(out, sink.STATS, stats)
    sink.write_text(out, sink.SUCCESS, "")
    sink.remove_tree(out, CHECKPOINT)
    sink.remove_tree(out, PROGRESS)


def _by_root(files: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        out.setdefault(f["root"], []).append(f)
    return out


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


class _Progress:
    """Logs one line per interval on long runs: documents in and kept per stage so far."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]], pipeline: Pipeline, started: float) -> None:
        self.snapshot = snapshot
        self.pipeline = pipeline
        self.started = started
        self.interval = pipeline.engine.progress_seconds
        self.files = len(pipeline.input.units()) if self.interval > 0 else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="curate-progress")

    def __enter__(self) -> _Progress:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                line = progress_line(self.snapshot(), self.pipeline, self.files, time.time() - self.started)
                log.info(line)
            except Exception:  # progress is best effort; never let it kill a run
                pass


def progress_line(snapshot: dict[str, Any], pipeline: Pipeline, units: int, elapsed: float) -> str:
    parts = [f"{elapsed:.0f}s", f"inputs {len(snapshot['units'])}/{units} read"]
    for spec in pipeline.stages:
        s = snapshot["stages"].get(spec.id)
        if not s:
            continue
        rej = sum(s["rejected"].values())
        if s["docs_in"]:
            parts.append(f"{spec.id} {s['docs_in']:,} in {s['docs_in'] - rej:,} kept")
        else:
            parts.append(f"{spec.id} {s['seconds']:.0f}s")
    return "progress " + " | ".join(parts)
