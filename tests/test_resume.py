"""Resume: a run whose driver is killed part-way finishes when started again with the same command, skipping the
input already committed, and ends with exactly the output of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import SLOW_FILTERS, all_ids, commits, read_ids, write_docs, write_pipeline

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


def _reference(workdir):
    engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    return read_ids(workdir / "ref"), sorted(all_ids(workdir / "ref"))


def _finish_and_compare(workdir, args, ref):
    done = subprocess.run(
        [sys.executable, "-m", "curate.cli", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = workdir / "out"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["attempts"] == 2 and stats["conserved"]
    kept, everything = ref
    assert read_ids(out) == kept
    written = sorted(all_ids(out))
    assert len(written) == len(set(written)) == 200  # every document exactly once, kept or rejected
    assert written == everything
    assert not (out / "_progress").exists() and not (out / "_checkpoint").exists()
    return done


@pytest.mark.e2e
def test_killed_in_the_streaming_phase_resumes_with_fewer_workers(workdir):
    ref = _reference(workdir)
    args = ["run", "p.yaml", "--runner", "local"]
    _kill_when(_start(args, workdir), lambda: commits(workdir / "out", 0) >= 6)
    out = workdir / "out"
    assert not (out / "_SUCCESS").exists() and 6 <= commits(out, 0)
    done = _finish_and_compare(workdir, args + ["--set", "engine.max_workers=1"], ref)
    assert "resume:" in done.stderr and "already done" in done.stderr


@pytest.mark.e2e
def test_killed_after_the_global_stage_redoes_only_the_last_phase(workdir):
    ref = _reference(workdir)
    args = ["run", "p.yaml", "--runner", "local"]
    out = workdir / "out"
    _kill_when(_start(args, workdir), lambda: (out / "_progress/0/DONE").exists() and commits(out, 1) >= 2)
    done = _finish_and_compare(workdir, args, ref)
    assert "phase 0 already finished" in done.stderr


@pytest.mark.ray
@pytest.mark.e2e
def test_killed_ray_driver_resumes(workdir):
    ref = _reference(workdir)
    args = ["run", "p.yaml"]  # the Ray runner, on its own embedded Ray, killed with it
    _kill_when(_start(args, workdir), lambda: commits(workdir / "out", 0) >= 3, timeout=300)
    _finish_and_compare(workdir, args, ref)


@pytest.mark.e2e
def test_a_damaged_committed_shard_is_reported_on_resume(workdir, capsys):
    from curate.cli import main

    args = ["run", "p.yaml", "--runner", "local"]
    _kill_when(_start(args, workdir), lambda: commits(workdir / "out", 0) >= 3)
    shard = (
        next((workdir / "out" / "data").glob("*.parquet"))
        if (workdir / "out" / "data").exists()
        else next((workdir / "out" / "_checkpoint").rglob("*.parquet"))
    )
    shard.write_bytes(shard.read_bytes()[:-20])  # truncated behind curate's back
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and shard.name in err


def test_verify_checks_a_finished_output_against_its_manifest(workdir, capsys):
    from curate.cli import main

    engine.run(config.load("p.yaml", ["stages.slow.seconds=0", "stages.slow_after.seconds=0"]), runner="local")
    assert main(["verify", "out"]) == 0
    shard = sorted((workdir / "out" / "data").glob("*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["verify", "out"]) == 2
    err = capsys.readouterr().err
    assert f"damaged: data/{shard.name}" in err


@pytest.mark.e2e
def test_a_changed_pipeline_does_not_resume_a_foreign_run(workdir):
    proc = _start(["run", "p.yaml", "--runner", "local"], workdir)
    _kill_when(proc, lambda: commits(workdir / "out", 0) >= 2)
    with pytest.raises(Exception, match="unfinished run of a different pipeline"):
        engine.run(config.load("p.yaml", ["stages.slow.seconds=0.0"]), runner="local")
    stats = engine.run(config.load("p.yaml", ["stages.slow.seconds=0.0"]), runner="local", overwrite=True)
    assert stats["attempts"] == 1
