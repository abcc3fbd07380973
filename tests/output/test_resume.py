"""Resume: a run whose driver is killed part-way finishes when started again with the same command, skipping the
input already committed, and ends with exactly the output of an uninterrupted run.

The local runner's cases (killed or interrupted in each phase, a damaged shard or checkpoint, changed input, a second
run) are rows of the fault matrix in tests/test_fault_matrix.py; here: the Ray driver, and a changed pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import SLOW_FILTERS, commits, write_docs, write_pipeline
from test_fault_matrix import assert_exactly_once, outcome

from curate import config, engine

PIPE = """
name: resumable
input: {format: parquet, path: in}
output: {path: out, shard_rows: 10}
engine: {batch_rows: 10, progress_seconds: 0}
stages:
  - {id: slow, uses: "slow_filters:slow", with: {seconds: 0.01}}
  - {id: dedup, uses: exact_dedup}
  - {id: slow_after, uses: "slow_filters:slow", with: {seconds: 0.02}}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slow_filters.py").write_text(SLOW_FILTERS)
    for k in range(8):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 25, start=25 * k)
    write_pipeline(tmp_path / "p.yaml", PIPE)
    return tmp_path


def _start(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "curate.cli", *args],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_when(proc, condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, as if its machine died
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"the run finished before it could be interrupted:\n{proc.stdout.read()[-2000:]}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the run never reached the point where it should be interrupted")


@pytest.mark.ray
@pytest.mark.e2e
def test_killed_ray_driver_resumes(workdir):
    engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    reference = outcome(workdir / "ref")
    args = ["run", "p.yaml"]  # the Ray runner, on its own embedded Ray, killed with it
    _kill_when(_start(args, workdir), lambda: commits(workdir / "out", 0) >= 3, timeout=300)
    done = subprocess.run(
        [sys.executable, "-m", "curate.cli", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "taking over output" in done.stderr  # the killed driver's lock: same host, process gone
    stats = json.loads((workdir / "out" / "stats.json").read_text())
    assert stats["attempts"] == 2 and stats["conserved"]
    assert_exactly_once(workdir / "out", reference)


@pytest.mark.e2e
def test_a_changed_pipeline_does_not_resume_a_foreign_run(workdir):
    proc = _start(["run", "p.yaml", "--runner", "local"], workdir)
    _kill_when(proc, lambda: commits(workdir / "out", 0) >= 2)
    with pytest.raises(Exception, match="unfinished run of a different pipeline"):
        engine.run(config.load("p.yaml", ["stages.slow.seconds=0.0"]), runner="local")
    stats = engine.run(config.load("p.yaml", ["stages.slow.seconds=0.0"]), runner="local", overwrite=True)
    assert stats["attempts"] == 1
