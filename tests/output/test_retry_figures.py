"""Stage counters and seconds ride with the rows into commit records, so a retried Ray task counts them once."""

from __future__ import annotations

import json

import pytest
from helpers import SLOW_BATCHES, killing_a_worker, parts

from curate import config, engine

pytestmark = pytest.mark.ray

COUNTING_STAGES = (
    SLOW_BATCHES
    + '''

class CountingSlow(curate.Filter):
    """Counts the documents and words it sees, slowly (so that a worker can be killed mid-run)."""

    pid_dir: str = ""
    seconds: float = 0.01

    def reject_batch(self, batch):
        slow_batch(self, batch)  # one line per batch: the killer waits until a worker has counted some
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
)


@pytest.fixture
def workdir(make_workdir, tmp_path):
    return make_workdir(
        files={"counting_stages.py": COUNTING_STAGES},
        docs=parts(6, 40),
        dirs=["pids"],
        pipeline=f"""
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


def _figures(stats):
    return {s["id"]: s.get("counters", {}) for s in stats["stages"]}


def test_counters_equal_an_uninterrupted_run_after_a_killed_worker(workdir, ray_session):
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="ray")
    with killing_a_worker(workdir / "pids"):
        stats = engine.run(config.load("p.yaml"), runner="ray")
    assert _figures(reference)["count"] == {"docs_seen": 240, "words_seen": _figures(reference)["count"]["words_seen"]}
    assert _figures(reference)["c4"], "c4_quality counted nothing: the comparison below would be empty"
    assert _figures(stats) == _figures(reference)
    on_disk = json.loads((workdir / "out" / "stats.json").read_text())
    assert _figures(on_disk) == _figures(reference)
    assert all(s["seconds"] >= 0 for s in stats["stages"])
    assert {s["id"]: s["seconds"] > 0 for s in stats["stages"]}["count"]
