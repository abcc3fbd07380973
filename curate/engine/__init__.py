"""Running a pipeline: prepare the output, run on Ray or in process, account for every document, commit."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from curate.config import Pipeline
from curate.engine.segment import Phase, UnitSkip, build_stats, plan_phases, preflight, rejected_schemas, stage_schemas
from curate.errors import ConservationError, CurateError
from curate.io.base import Reader, ReadUnit
from curate.run import sink
from curate.run.checkpoint import CheckpointReader
from curate.run.lock import OutputLock
from curate.run.sink import ShardWriter
from curate.run.state import CHECKPOINT, PROGRESS, RunState

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
        with _Progress(executor.snapshot, pipeline, started) as progress:
            for phase in phases:
                if state.phase_done(phase.index):
                    log.info("phase %d already finished in an earlier attempt", phase.index)
                    continue
                reader, units, skip = _phase_input(pipeline, phase, state, schemas)
                progress.phase(phase, units)
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
    """A run's live progress on stderr: per-stage counts and rates, and the fraction done with an ETA when the
    input's size is known. Redrawn in place on a terminal (rich); plain log lines every engine.progress_seconds
    otherwise (a log file, a Ray job's output, `curate submit`). Off under -q and with progress_seconds: 0."""

    def __init__(
        self, snapshot: Callable[[], dict[str, Any]], pipeline: Pipeline, started: float, stream: Any = None
    ) -> None:
        self.snapshot = snapshot
        self.pipeline = pipeline
        self.started = started
        self.interval = pipeline.engine.progress_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.on = self.interval > 0 and log.isEnabledFor(logging.INFO)
        self.live = self.on and _is_terminal(self.stream)
        # (phase, the units it reads, when it began): set by phase() from the main thread, read by the loop
        self._phase: tuple[Phase | None, list[ReadUnit], float] = (None, [], started)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="curate-progress")
        self._view: Any = None
        self._handlers: list[tuple[logging.StreamHandler, Any]] = []

    def __enter__(self) -> _Progress:
        if self.on:
            if self.live:
                self._start_live()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._view is not None:
            self._view.stop()
            for handler, stream in self._handlers:
                handler.setStream(stream)

    def phase(self, phase: Phase, units: list[ReadUnit]) -> None:
        """A phase starts, reading `units` (what earlier attempts finished is left out)."""
        self._phase = (phase, list(units), time.time())

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream, highlight=False)
        self._view = Live(console=console, auto_refresh=False, transient=True)
        before = sys.stderr
        self._view.start()
        # Log lines go through rich's proxy of stderr while the view is up, so that they print above it.
        proxy = sys.stderr if self.stream is before else console.file
        for handler in logging.getLogger("curate").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                self._handlers.append((handler, handler.stream))
                handler.setStream(proxy)

    def _loop(self) -> None:
        # Polled every second; rates and the ETA count from when the phase's first documents showed up (not from
        # its start, which on Ray includes starting the workers and loading models).
        tick = min(self.interval, 1.0)
        printed = time.time()
        flowing: tuple[Phase | None, float | None] = (None, None)
        while not self._stop.wait(tick):
            try:
                phase, units, _ = self._phase
                now = time.time()
                snap = self.snapshot()
                if flowing[0] is not phase:
                    flowing = (phase, None)
                if flowing[1] is None and _flowing(snap, self.pipeline, phase, units):
                    flowing = (phase, now - tick / 2)
                active = now - flowing[1] if flowing[1] is not None else 0.0
                if self._view is not None:
                    est = estimate(snap, self.pipeline, phase, units, active)
                    self._view.update(render_progress(est, self.pipeline, now - self.started), refresh=True)
                elif now - printed >= self.interval - tick / 2:
                    printed = now
                    log.info(progress_line(snap, self.pipeline, units, now - self.started, phase, active))
            except Exception:  # progress is best effort; never let it kill a run
                pass


def _flowing(snapshot: dict[str, Any], pipeline: Pipeline, phase: Phase | None, units: list[ReadUnit]) -> bool:
    """Whether documents of the phase have shown up: a unit read, or a stage that counted some."""
    if any(u.key in snapshot["units"] for u in units):
        return True
    stages = snapshot["stages"]
    return any(
        stages.get(sid, {}).get("docs_in") or stages.get(sid, {}).get("seconds")
        for sid in _phase_stages(pipeline, phase)
    )


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _phase_stages(pipeline: Pipeline, phase: Phase | None) -> list[str]:
    if phase is None:
        return [s.id for s in pipeline.stages]
    return [s.id for seg in phase.segments for s in seg.specs]


def estimate(
    snapshot: dict[str, Any], pipeline: Pipeline, phase: Phase | None, units: list[ReadUnit], elapsed: float
) -> dict[str, Any]:
    """How far the phase is after `elapsed` seconds of work: units and bytes read, documents that left its stages
    (rejected, or past its last stage), and the fraction done with an ETA. The documents in the whole input are
    estimated from the units read so far (documents per byte), so the fraction is right even while reading runs
    ahead of the stages. A phase that starts with a global stage (a shuffle) has no ETA."""
    done_units = [u for u in units if u.key in snapshot["units"]]
    total_bytes = sum(u.size_bytes for u in units)
    read_bytes = sum(u.size_bytes for u in done_units)
    docs_read = sum(snapshot["units"][u.key] for u in done_units)
    ids = _phase_stages(pipeline, phase)
    stages = []
    for sid in ids:
        s = snapshot["stages"].get(sid) or {"docs_in": 0, "rejected": {}, "seconds": 0.0}
        rej = sum(s["rejected"].values())
        rate = s["docs_in"] / elapsed if elapsed > 0 else 0.0
        stages.append(
            {
                "id": sid,
                "in": s["docs_in"],
                "kept": s["docs_in"] - rej,
                "rejected": rej,
                "rate": rate,
                "seconds": s.get("seconds", 0.0),
            }
        )
    done = sum(s["rejected"] for s in stages) + (stages[-1]["kept"] if stages else docs_read)
    fraction: float | None = None
    if phase is not None and phase.starts_global:
        fraction = None
    elif total_bytes and read_bytes and docs_read:
        fraction = min(1.0, done / (docs_read * total_bytes / read_bytes))
    elif units and not total_bytes and done_units and docs_read:  # sizes unknown: count units
        fraction = min(1.0, done / (docs_read * len(units) / len(done_units)))
    # A few documents in (the first rejections) say little about the rest: no ETA below 2%.
    eta = elapsed * (1 - fraction) / fraction if fraction and fraction >= 0.02 and elapsed > 0 else None
    return {
        "phase": phase.index if phase is not None else 0,
        "units": len(units),
        "units_read": len(done_units),
        "bytes": total_bytes,
        "bytes_read": read_bytes,
        "docs_read": docs_read,
        "done": done,
        "fraction": fraction,
        "eta": eta,
        "elapsed": elapsed,
        "stages": stages,
    }


def _is_global(pipeline: Pipeline, sid: str) -> bool:
    return any(s.id == sid and s.cls.is_global for s in pipeline.stages)


def progress_line(
    snapshot: dict[str, Any],
    pipeline: Pipeline,
    units: int | list[ReadUnit],
    elapsed: float,
    phase: Phase | None = None,
    phase_elapsed: float | None = None,
) -> str:
    """One plain progress line: inputs read (and bytes), the fraction done and ETA, and per stage documents in,
    kept and per second (a global stage: its seconds so far)."""
    unit_list = units if isinstance(units, list) else []
    n_units = len(unit_list) if isinstance(units, list) else units
    est = estimate(snapshot, pipeline, phase, unit_list, phase_elapsed if phase_elapsed is not None else elapsed)
    read = est["units_read"] if unit_list else len(snapshot["units"])
    parts = [f"{elapsed:.0f}s", f"inputs {read}/{n_units} read"]
    if est["bytes"]:
        parts[-1] += f" ({_size(est['bytes_read'])} of {_size(est['bytes'])})"
    if phase is not None and phase.index:
        parts.append(f"phase {phase.index + 1}")
    if est["fraction"] is not None:
        parts.append(f"{100 * est['fraction']:.0f}% done, ETA {_duration(est['eta'])}")
    for s in est["stages"]:
        if s["in"]:
            parts.append(f"{s['id']} {s['in']:,} in {s['kept']:,} kept {s['rate']:,.0f}/s")
        elif _is_global(pipeline, s["id"]) or s["seconds"]:
            parts.append(f"{s['id']} {s['seconds']:.0f}s")
    return "progress " + " | ".join(parts)


def render_progress(est: dict[str, Any], pipeline: Pipeline, elapsed: float) -> Any:
    """The terminal view: a bar with the fraction done and ETA, what was read, a row per stage."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    head = Table.grid(padding=(0, 1))
    head.add_row(
        Text(f"{pipeline.name} phase {est['phase'] + 1}", style="bold"),
        ProgressBar(total=1.0, completed=est["fraction"] or 0.0, width=40),
        Text(f"{100 * est['fraction']:.0f}%  ETA {_duration(est['eta'])}" if est["fraction"] is not None else "..."),
        Text(f"elapsed {_duration(elapsed)}"),
    )
    read = f"input: {est['units_read']}/{est['units']} units read"
    if est["bytes"]:
        read += f", {_size(est['bytes_read'])} of {_size(est['bytes'])}"
    read += f", {est['docs_read']:,} documents; {est['done']:,} done"
    table = Table(box=None, padding=(0, 1), show_edge=False)
    for name in ("stage", "in", "kept", "rejected", "docs/s"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for s in est["stages"]:
        if not s["in"] and _is_global(pipeline, s["id"]):
            table.add_row(s["id"], "", "", "", f"{s['seconds']:.0f}s (global)")
            continue
        table.add_row(s["id"], f"{s['in']:,}", f"{s['kept']:,}", f"{s['rejected']:,}", f"{s['rate']:,.0f}")
    return Group(head, Text(read), table)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
