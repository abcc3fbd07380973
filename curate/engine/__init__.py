"""Running a pipeline: prepare the output, run on Ray or in process, account for every document, commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from curate.config import Pipeline
from curate.engine.core import Ledger, build_stats, plan_segments, stage_schemas
from curate.errors import CurateError
from curate.io import sink
from curate.io.sink import ShardWriter

log = logging.getLogger("curate")

RUNNERS = ("ray", "local")


def run(
    pipeline: Pipeline,
    runner: str = "ray",
    address: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run `pipeline`; returns the stats written to OUT/stats.json. Raises CurateError subclasses on user errors."""
    if runner not in RUNNERS:
        raise CurateError(f"unknown runner '{runner}'", hint=f"use one of {', '.join(RUNNERS)}")
    schemas, kept_schema = stage_schemas(pipeline)
    segments = plan_segments(pipeline.stages)
    out = pipeline.output.path
    sink.prepare(out, overwrite)
    sink.write_text(out, sink.PIPELINE, pipeline.to_yaml())
    writer = ShardWriter(pipeline.output, kept_schema, schemas)
    log.info(
        "running %s: %d stage(s) in %d segment(s) [%s] on the %s runner -> %s",
        pipeline.name,
        len(pipeline.stages),
        len(segments),
        " | ".join(f"{s.label}{' (global)' if s.kind == 'global' else ''}" for s in segments),
        runner,
        out,
    )
    started = time.time()
    if runner == "local":
        ledger = Ledger()
        with _Progress(ledger.snapshot, pipeline, started):
            from curate.engine.local import run_local

            results = run_local(pipeline, segments, writer, ledger)
        snapshot = ledger.snapshot()
    else:
        import ray

        from curate.engine.ray import ensure_ray, new_ledger, run_ray

        where = ensure_ray(address)
        log.info("ray: %s", where)
        actor = new_ledger()
        with _Progress(lambda: ray.get(actor.snapshot.remote()), pipeline, started):
            results = _unwrap_ray_errors(lambda: run_ray(pipeline, segments, writer, actor))
        snapshot = ray.get(actor.snapshot.remote())
        ray.kill(actor)
    seconds = time.time() - started
    stats = build_stats(pipeline, results, snapshot, seconds, runner)
    shards = [s for r in results for s in r["shards"]]
    removed = sink.remove_orphans(out, shards)
    if removed:
        log.info("removed %d shard file(s) of failed attempts", removed)
    sink.write_json(out, sink.MANIFEST, {"pipeline": pipeline.name, "shards": shards})
    sink.write_json(out, sink.STATS, stats)
    sink.write_text(out, sink.SUCCESS, "")
    return stats


def _unwrap_ray_errors(fn: Callable[[], Any]) -> Any:
    """Ray wraps exceptions raised in tasks; surface our own user-facing errors as themselves."""
    try:
        return fn()
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
    for nxt in (getattr(e, "cause", None), e.__cause__, e.__context__):
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
