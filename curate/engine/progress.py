"""A run's live progress on stderr: per-stage counts and rates, and the fraction done with an ETA.

The executors' ledger (curate.ledger) is polled once a second; its snapshot is {"units": {key: docs}, "stages":
{stage: StageFigures}, "errors": {stage: n}}.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from curate.config import Pipeline
from curate.engine.plan import Phase
from curate.io.base import ReadUnit
from curate.output.figures import StageFigures

log = logging.getLogger("curate")


class Progress:
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

    def __enter__(self) -> Progress:
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
        (fig := stages.get(sid)) is not None and (fig.docs_in or fig.seconds) for sid in _phase_stages(pipeline, phase)
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
        fig = snapshot["stages"].get(sid) or StageFigures()
        rej = sum(fig.rejected.values())
        rate = fig.docs_in / elapsed if elapsed > 0 else 0.0
        stages.append(
            {
                "id": sid,
                "in": fig.docs_in,
                "kept": fig.docs_in - rej,
                "rejected": rej,
                "rate": rate,
                "seconds": fig.seconds,
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
