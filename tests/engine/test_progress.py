"""Live progress: the fraction done and ETA from the input's size, plain lines when stderr is not a terminal,
redrawn in place (rich) when it is."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
import time

import pytest
from helpers import SLOW_FILTERS, curate_command, parts, run_curate

from curate import config
from curate.engine.plan import plan_phases
from curate.engine.progress import Progress, estimate, progress_line
from curate.io.base import ReadUnit
from curate.output.figures import StageFigures

ETA = re.compile(r"(\d+)% done, ETA (\d+s|\d+m\d\ds)")


@pytest.fixture
def workdir(make_workdir):
    return make_workdir(
        files={"slow_filters.py": SLOW_FILTERS},
        docs=parts(4, 30),
        pipeline="""
        name: slowly
        input: {format: parquet, path: in}
        output: {path: out}
        engine: {batch_rows: 5, progress_seconds: 0.5}
        stages:
          - {id: slow, uses: "slow_filters:slow", with: {seconds: 0.02}}
          - {id: dedup, uses: exact_dedup}
        """,
    )


def _snapshot(units: dict[str, int], slow_in: int, slow_rejected: int) -> dict:
    stages = {"slow": StageFigures(docs_in=slow_in, rejected={"odd_topic": slow_rejected}, seconds=1.0)}
    return {"units": units, "stages": stages, "errors": {}}


def test_estimate_extrapolates_documents_from_the_bytes_read(workdir):
    p = config.load("p.yaml")
    phases = plan_phases(p.stages)
    units = [ReadUnit(f"u{i}", f"u{i}", 1000) for i in range(4)]
    # one unit of four read (25% of the bytes, 30 documents): about 120 documents in all; 60 have left the stage
    est = estimate(_snapshot({"u0": 30}, 60, 5), p, phases[0], units, elapsed=10.0)
    assert est["bytes_read"] == 1000 and est["bytes"] == 4000
    assert est["done"] == 60
    assert est["fraction"] == pytest.approx(0.5)
    assert est["eta"] == pytest.approx(10.0)
    # everything read: the fraction is exact
    est = estimate(_snapshot({f"u{i}": 30 for i in range(4)}, 90, 5), p, phases[0], units, elapsed=9.0)
    assert est["fraction"] == pytest.approx(0.75) and est["eta"] == pytest.approx(3.0)
    # nothing read to the end yet, or too little done: no ETA rather than a wild one
    assert estimate(_snapshot({}, 10, 0), p, phases[0], units, 5.0)["eta"] is None
    assert estimate(_snapshot({"u0": 30}, 1, 0), p, phases[0], units, 5.0)["eta"] is None
    # the phase that starts with the global stage (a shuffle) has none either
    assert estimate(_snapshot({"u0": 30}, 60, 5), p, phases[1], units, 5.0)["fraction"] is None


def test_progress_line_has_counts_rates_and_eta(workdir):
    p = config.load("p.yaml")
    phase = plan_phases(p.stages)[0]
    units = [ReadUnit(f"u{i}", f"u{i}", 2_000_000) for i in range(4)]
    line = progress_line(_snapshot({"u0": 30, "u1": 30}, 60, 6), p, units, 42.0, phase, 20.0)
    assert line.startswith("progress 42s | inputs 2/4 read (4.0 MB of 8.0 MB) | 50% done, ETA 20s | ")
    assert "slow 60 in 54 kept 3/s" in line
    assert "\x1b" not in line


def test_terminal_view_redraws_in_place(workdir):
    p = config.load("p.yaml")
    phase = plan_phases(p.stages)[0]
    units = [ReadUnit(f"u{i}", f"u{i}", 1000) for i in range(4)]
    seen = iter([_snapshot({"u0": 30}, 30, 3), _snapshot({"u0": 30, "u1": 30}, 60, 6)] * 50)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    logger = logging.getLogger("curate")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with Progress(lambda: next(seen), p, time.time(), stream=out) as progress:
            assert progress.live
            progress.phase(phase, units)
            time.sleep(3.5)
    finally:
        logger.setLevel(level)
    text = out.getvalue()
    assert "\x1b[1A" in text or "\x1b[2K" in text  # cursor moves: the view is redrawn, not appended
    assert ETA.search(text.replace("%  ETA", "% done, ETA")), text[-2000:]
    assert "slow" in text and "docs/s" in text


def test_a_run_whose_stderr_is_not_a_terminal_prints_plain_lines(workdir):
    proc = run_curate("run", "p.yaml", "--runner", "local", cwd=workdir, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if " progress " in ln]
    assert len(lines) >= 2, proc.stderr
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    assert any(ETA.search(ln) for ln in lines), lines
    assert all(re.search(r"inputs \d+/\d+ read", ln) for ln in lines)
    assert any("inputs 4/4 read" in ln for ln in lines) or any("inputs 3/4 read" in ln for ln in lines), lines


def _run_in_a_terminal(cmd: list[str], cwd, timeout: float) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as its stdout and stderr; returns its exit status and what it wrote."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
def test_the_readme_main_job_shows_an_eta_in_a_terminal(tmp_path):
    """`curate run fineweb.yaml` (here on a smaller sample crawl) in a terminal shows the fraction done and an ETA.
    The fraction moves as units commit, so the crawl has enough units (7 at 1,500 pages) that a one-second redraw
    falls between two of them: at 600 pages (4 units) a loaded CI machine once drew no frame with an ETA."""
    cmd = curate_command("run", "fineweb.yaml", "--input", "sample:crawl?pages=1500")
    cmd += ["--output", str(tmp_path / "out"), "--set", "engine.batch_rows=50"]
    rc, text = _run_in_a_terminal(cmd, tmp_path, timeout=400)
    assert rc == 0, text[-3000:]
    assert re.search(r"\d+%  ETA \d+s", text), text[-3000:]
    assert "documents in" in text  # the summary follows the view
