"""Word and byte figures ride with the rows like the document counts: a worker killed mid-run and retried by Ray
leaves every size in stats.json equal to an uninterrupted run's."""

from __future__ import annotations

import json

import pytest
from faults import kill_when, start
from helpers import SLOW_BATCHES, SLOW_FILTERS, commits, killing_a_worker, parts, run_curate

from curate import config, engine

pytestmark = pytest.mark.ray

SLOW_STAGES = (
    SLOW_BATCHES
    + '''

class Slow(curate.Filter):
    """Rejects documents about topic 2, slowly (so that a worker can be killed mid-run)."""

    pid_dir: str = ""
    seconds: float = 0.01

    def reject_batch(self, batch):
        slow_batch(self, batch)
        return ["topic_two" if " topic 2 " in t else None for t in batch.column("text").to_pylist()]


@curate.mapper
def shorten(doc):
    """Drops the last word of documents about topic 4 (a stage that changes text)."""
    if " topic 4 " in doc.text:
        doc.text = doc.text.rsplit(" ", 1)[0]
'''
)


@pytest.fixture
def workdir(make_workdir, tmp_path):
    return make_workdir(
        files={"slow_stages.py": SLOW_STAGES},
        docs=parts(6, 40),
        dirs=["pids"],
        pipeline=f"""
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


SIZE_KEYS = ("words_in", "words_kept", "words_out", "words_rejected", "bytes_in", "bytes_kept", "bytes_out")


def _sizes(stats):
    per_stage = {s["id"]: {k: s[k] for k in (*SIZE_KEYS, "bytes_rejected")} for s in stats["stages"]}
    totals = {k: stats[k] for k in ("input_words", "input_bytes", "output_words", "output_bytes")}
    return per_stage, totals


def test_sizes_equal_an_uninterrupted_run_after_a_killed_worker(workdir, ray_session):
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="ray")
    assert reference["sizes_conserved"] is True
    with killing_a_worker(workdir / "pids"):
        stats = engine.run(config.load("p.yaml"), runner="ray")
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
def test_sizes_equal_an_uninterrupted_run_after_a_killed_driver_resumes(make_workdir):
    workdir = make_workdir(files={"slow_filters.py": SLOW_FILTERS}, docs=parts(8, 25), pipeline=RESUME_PIPE)
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    args = ["run", "p.yaml", "--runner", "local"]
    # the driver dies (SIGKILL, with all it started) with part of phase 0 committed
    kill_when(start(args, workdir), lambda: commits(workdir / "out", 0) >= 3)
    done = run_curate(*args, cwd=workdir, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((workdir / "out" / "stats.json").read_text())
    assert stats["attempts"] == 2
    assert stats["sizes_conserved"] is True
    assert _sizes(stats) == _sizes(reference)
