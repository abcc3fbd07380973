"""Resume: a run whose driver is killed part-way finishes when started again with the same command, skipping the
input already committed, and ends with exactly the output of an uninterrupted run.

The local runner's cases (killed or interrupted in each phase, a damaged shard or checkpoint, changed input, a second
run) are rows of the fault matrix in tests/output/test_fault_matrix.py; here: the Ray driver, and a changed pipeline
(on the matrix's pipeline and input, tests/faults.py)."""

from __future__ import annotations

import json

import pytest
from faults import assert_exactly_once, kill_when, matrix_workdir, outcome, start
from helpers import commits, run_curate

from curate import config, engine


@pytest.fixture
def workdir(make_workdir, monkeypatch):
    monkeypatch.delenv("MATRIX_SLOW", raising=False)
    return make_workdir(**matrix_workdir())


@pytest.mark.ray
@pytest.mark.e2e
def test_killed_ray_driver_resumes(workdir):
    engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    reference = outcome(workdir / "ref")
    args = ["run", "p.yaml"]  # the Ray runner, on its own embedded Ray, killed with it
    kill_when(start(args, workdir, slow=True), lambda: commits(workdir / "out", 0) >= 3, timeout=300)
    done = run_curate(*args, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "taking over output" in done.stderr  # the killed driver's lock: same host, process gone
    stats = json.loads((workdir / "out" / "stats.json").read_text())
    assert stats["attempts"] == 2 and stats["conserved"]
    assert_exactly_once(workdir / "out", reference)


@pytest.mark.e2e
def test_a_changed_pipeline_does_not_resume_a_foreign_run(workdir):
    proc = start(["run", "p.yaml", "--runner", "local"], workdir, slow=True)
    kill_when(proc, lambda: commits(workdir / "out", 0) >= 2)
    with pytest.raises(Exception, match="unfinished run of a different pipeline"):
        engine.run(config.load("p.yaml", ["stages.slow.seconds=0.0"]), runner="local")
    stats = engine.run(config.load("p.yaml", ["stages.slow.seconds=0.0"]), runner="local", overwrite=True)
    assert stats["attempts"] == 1
