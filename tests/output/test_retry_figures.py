"""Stage counters and seconds ride with the rows into commit records, so a retried Ray task counts them once."""

from __future__ import annotations

import json
import threading

import pytest
from helpers import kill_a_worker_that_counted, write_docs, write_pipeline

from curate import config, engine

pytestmark = pytest.mark.ray

COUNTING_STAGES = '''
import os
import time
from pathlib import Path

import curate


class CountingSlow(curate.Filter):
    """Counts the documents and words it sees, slowly (so that a worker can be killed mid-run)."""

    pid_dir: str = ""
    seconds: float = 0.01

    def reject_batch(self, batch):
        with open(Path(self.pid_dir, str(os.getpid())), "a") as fh:
            fh.write("batch\\n")  # one line per batch: the killer waits until a worker has counted some
        time.sleep(self.seconds * batch.num_rows)
        texts = batch.column("text").to_pylist()
        self.count("docs_seen", len(texts))
        self.count("words_seen", sum(len(t.split()) for t in texts))
        return ["topic_two" if " topic 2 " in t else None for t in texts]


@curate.mapper
def shout(doc):
    """Upper-cases documents about topic 4 and counts them."""
    if " topic 4 " in doc.text:
        doc.text = doc.text.upper()
'''


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "counting_stages.py").write_text(COUNTING_STAGES)
    for k in range(6):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 40, start=40 * k)
    (tmp_path / "pids").mkdir()
    write_pipeline(
        tmp_path / "p.yaml",
        f"""
        name: figures
        input: {{format: parquet, path: in}}
        output: {{path: out, shard_rows: 20}}
        engine: {{batch_rows: 10, progress_seconds: 0, stateful_stages: tasks}}
        stages:
          - {{id: count, uses: "counting_stages:CountingSlow", with: {{pid_dir: "{tmp_path}/pids"}}}}
          - {{id: lines, uses: refinedweb_lines}}
          - {{id: c4, uses: c4_quality, with: {{min_num_sentences: 0}}}}
          - {{id: dedup, uses: exact_dedup}}
    """,
    )
    return tmp_path


def _figures(stats):
    return {s["id"]: s.get("counters", {}) for s in stats["stages"]}


def test_counters_equal_an_uninterrupted_run_after_a_killed_worker(workdir, ray_session):
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="ray")
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
    assert _figures(reference)["count"] == {"docs_seen": 240, "words_seen": _figures(reference)["count"]["words_seen"]}
    assert _figures(reference)["c4"], "c4_quality counted nothing: the comparison below would be empty"
    assert _figures(stats) == _figures(reference)
    on_disk = json.loads((workdir / "out" / "stats.json").read_text())
    assert _figures(on_disk) == _figures(reference)
    assert all(s["seconds"] >= 0 for s in stats["stages"])
    assert {s["id"]: s["seconds"] > 0 for s in stats["stages"]}["count"]
