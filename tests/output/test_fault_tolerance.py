"""A worker process killed mid-run is retried by Ray, and the output still holds every document exactly once (a row
of the fault matrix, tests/output/test_fault_matrix.py)."""

from __future__ import annotations

import pytest
from faults import assert_exactly_once, outcome
from helpers import killing_a_worker, parts

from curate import config, engine

pytestmark = pytest.mark.ray

WORKER_STAGES = '''
import os
import time
from pathlib import Path

import curate
from curate.inflight import worker_pid  # the Ray worker, not the isolated child of a batch


def _mark(pid_dir):
    Path(pid_dir, str(worker_pid())).touch()


@curate.filter
def slow_task(doc, pid_dir: str = "", seconds: float = 0.01):
    """Stateless: runs as Ray tasks fused into the read."""
    _mark(pid_dir)
    time.sleep(seconds)
    return "topic_two" if " topic 2 " in doc.text else None


class SlowModel(curate.Filter):
    """Stateful (setup): runs in an actor pool under engine.stateful_stages=actors."""

    pid_dir: str = ""
    seconds: float = 0.01

    def setup(self):
        self._loaded = True

    def reject(self, doc):
        _mark(self.pid_dir)
        time.sleep(self.seconds)
        return "topic_three" if " topic 3 " in doc.text else None
'''


@pytest.fixture
def workdir(make_workdir, tmp_path):
    return make_workdir(
        files={"worker_stages.py": WORKER_STAGES},
        docs=parts(6, 40),
        dirs=["pids_task", "pids_actor"],
        pipeline=f"""
        name: faults
        input: {{format: parquet, path: in}}
        output: {{path: out, shard_rows: 20}}
        engine: {{batch_rows: 10, progress_seconds: 0}}
        stages:
          - {{id: task, uses: "worker_stages:slow_task", with: {{pid_dir: "{tmp_path}/pids_task"}}}}
          - {{id: model, uses: "worker_stages:SlowModel", with: {{pid_dir: "{tmp_path}/pids_actor"}}}}
          - {{id: dedup, uses: exact_dedup}}
        """,
    )


@pytest.mark.parametrize("which", ["pids_task", "pids_actor"])
def test_a_killed_worker_is_retried_and_output_is_exactly_once(workdir, ray_session, which):
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    # only pids of the Ray run below; a worker that has left its pid (batches=0) is killed
    with killing_a_worker(workdir / which, batches=0):
        # the model stage in an actor pool (killing an actor) or fused into tasks (killing a task's worker)
        mode = "actors" if which == "pids_actor" else "tasks"
        stats = engine.run(config.load("p.yaml", [f"engine.stateful_stages={mode}"]), runner="ray")
    assert stats["conserved"] and stats["input_docs"] == 240
    assert stats["output_docs"] == reference["output_docs"]
    assert_exactly_once(workdir / "out", outcome(workdir / "ref"))  # none lost, none twice, per stage
