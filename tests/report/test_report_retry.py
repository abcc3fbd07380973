"""Word and byte figures ride with the rows like the document counts: a worker killed mid-run and retried by Ray
leaves every size in stats.json equal to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from helpers import kill_a_worker_that_counted, write_docs, write_pipeline

from curate import config, engine

pytestmark = pytest.mark.ray

SLOW_STAGES = '''
import os
import time
from pathlib import Path

import curate


class Slow(curate.Filter):
    """Rejects documents about topic 2, slowly (so that a worker can be killed mid-run)."""

    pid_dir: str = ""
    seconds: float = 0.01

    def reject_batch(self, batch):
        with open(Path(self.pid_dir, str(os.getpid())), "a") as fh:
            fh.write("batch\\n")
        time.sleep(self.seconds * batch.num_rows)
        return ["topic_two" if " topic 2 " in t else None for t in batch.column("text").to_pylist()]


@curate.mapper
def shorten(doc):
    """Drops the last word of documents about topic 4 (a stage that changes text)."""
    if " topic 4 " in doc.text:
        doc.text = doc.text.rsplit(" ", 1)[0]
'''


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slow_stages.py").write_text(SLOW_STAGES)
    for k in range(6):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 40, start=40 * k)
    (tmp_path / "pids").mkdir()
    write_pipeline(
        tmp_path / "p.yaml",
        f"""
        name: sizes-retry
        input: {{format: parquet, path: in}}
        output: {{path: out, shard_rows: 20}}
        engine: {{batch_rows: 10, progress_seconds: 0, stateful_stages: tasks}}
        stages:
          - {{id: slow, uses: "slow_stages:Slow", with: {{pid_dir: "{tmp_path}/pids"}}}}
          - {{id: shorten, uses: "slow_stages:shorten"}}
          - {{id: lines, uses: refinedweb_lines}}
          - {{id: dedup, uses: exact_dedup}}
        """,
    )
    return tmp_path


SIZE_KEYS = ("words_in", "words_kept", "words_out", "words_rejected", "bytes_in", "bytes_kept", "bytes_out")


def _sizes(stats):
    per_stage = {s["id"]: {k: s[k] for k in (*SIZE_KEYS, "bytes_rejected")} for s in stats["stages"]}
    totals = {k: stats[k] for k in ("input_words", "input_bytes", "output_words", "output_bytes")}
    return per_stage, totals


def test_sizes_equal_an_uninterrupted_run_after_a_killed_worker(workdir, ray_session):
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="ray")
    assert reference["sizes_conserved"] is True
    for p in (workdir / "pids").iterdir():
        p.unlink()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_worker_that_counted, args=(workdir / "pids", killed, stop), daemon=True)
    killer.start()
    try:
        stats = engine.run(config.load("p.yaml"), runner="ray")
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no worker was killed: the test did not test anything"
    ref_stages, ref_totals = _sizes(reference)
    assert ref_stages["slow"]["words_rejected"]["topic_two"] > 0
    assert ref_stages["shorten"]["words_out"] < ref_stages["shorten"]["words_in"]
    assert ref_stages["dedup"]["words_rejected"]["duplicate_text"] > 0
    assert _sizes(stats) == (ref_stages, ref_totals)
    assert stats["sizes_conserved"] is True
    assert _sizes(json.loads((workdir / "out" / "stats.json").read_text())) == (ref_stages, ref_totals)


RESUME_PIPE = """
name: sizes-resume
input: {format: parquet, path: in}
output: {path: out, shard_rows: 10}
engine: {batch_rows: 10, progress_seconds: 0}
stages:
  - {id: slow, uses: "slow_filters:slow", with: {seconds: 0.01}}
  - {id: lines, uses: refinedweb_lines}
  - {id: dedup, uses: exact_dedup}
  - {id: slow_after, uses: "slow_filters:slow", with: {seconds: 0.005}}
"""


@pytest.mark.e2e
def test_sizes_equal_an_uninterrupted_run_after_a_killed_driver_resumes(tmp_path, monkeypatch):
    import subprocess
    import sys

    from helpers import SLOW_FILTERS, commits

    monkeypatch.chdir(tmp_path)
    (tmp_path / "slow_filters.py").write_text(SLOW_FILTERS)
    for k in range(8):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 25, start=25 * k)
    write_pipeline(tmp_path / "p.yaml", RESUME_PIPE)
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    cmd = [sys.executable, "-m", "curate.cli", "run", "p.yaml", "--runner", "local"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while commits(tmp_path / "out", 0) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies with part of phase 0 committed
    proc.wait()
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["attempts"] == 2
    assert stats["sizes_conserved"] is True
    assert _sizes(stats) == _sizes(reference)
