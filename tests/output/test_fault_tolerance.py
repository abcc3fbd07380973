"""A worker process killed mid-run is retried by Ray, and the output still holds every document exactly once (a row
of the fault matrix, tests/test_fault_matrix.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from helpers import write_docs, write_pipeline
from test_fault_matrix import assert_exactly_once, outcome

from curate import config, engine

pytestmark = pytest.mark.ray

WORKER_STAGES = '''
import os
import time
from pathlib import Path

import curate


def _mark(pid_dir):
    Path(pid_dir, str(os.getpid())).touch()


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
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "worker_stages.py").write_text(WORKER_STAGES)
    for k in range(6):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 40, start=40 * k)
    for d in ("pids_task", "pids_actor"):
        (tmp_path / d).mkdir()
    write_pipeline(
        tmp_path / "p.yaml",
        f"""
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
    return tmp_path


def _kill_one_worker(pid_dir, killed, stop):
    """Wait until a worker of the stage has reported its pid, then SIGKILL it (once)."""
    while not stop.is_set():
        pids = [int(p.name) for p in pid_dir.iterdir()]
        for pid in pids:
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
            return
        time.sleep(0.05)


@pytest.mark.parametrize("which", ["pids_task", "pids_actor"])
def test_a_killed_worker_is_retried_and_output_is_exactly_once(workdir, ray_session, which):
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    for p in (workdir / which).iterdir():
        p.unlink()  # only pids of the Ray run below
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_worker, args=(workdir / which, killed, stop), daemon=True)
    killer.start()
    try:
        # the model stage in an actor pool (killing an actor) or fused into tasks (killing a task's worker)
        mode = "actors" if which == "pids_actor" else "tasks"
        stats = engine.run(config.load("p.yaml", [f"engine.stateful_stages={mode}"]), runner="ray")
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no worker was killed: the test did not test anything"
    assert stats["conserved"] and stats["input_docs"] == 240
    assert stats["output_docs"] == reference["output_docs"]
    assert_exactly_once(workdir / "out", outcome(workdir / "ref"))  # none lost, none twice, per stage
