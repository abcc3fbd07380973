"""decontaminate in a pipeline: the local and the Ray runner write the same output in both modes, a run killed
mid-stage resumes to the same output, and `curate contamination` on the finished output lists the planted items
with their documents (and `curate report` shows them)."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest
from faults import assert_exactly_once, kill_when, outcome, start
from helpers import commits, run_curate

from curate import config, engine

pytestmark = [pytest.mark.ray, pytest.mark.e2e]

WORDS = (
    "river stone market winter garden letter window morning harbour village teacher doctor summer bridge "
    "mountain forest kitchen station council library engine school storm meadow lantern"
).split()
ITEMS = [
    "A farmer has 17 sheep and buys 5 more every week; how many sheep does he own after 9 weeks of buying?",
    "Which planet of the solar system has the longest day, measured from one sunrise to the next sunrise?",
    "Tom reads 12 pages on Monday and twice as many on Tuesday; how many pages are left of his 200 page book?",
    "The capital city of the country that hosted the first modern olympic games in 1896 is which city?",
]

PIPE = """
name: decontam-{mode}
input: {{format: parquet, path: in}}
output: {{path: out, shard_rows: 20}}
engine: {{batch_rows: 20, progress_seconds: 0}}
stages:
  - {{id: slow, uses: "decontam_stages:slow", with: {{seconds: 0.01}}}}
  - {{id: decont, uses: decontaminate, with: {{evals: [{{path: "{root}/evals.jsonl", name: quiz}}], mode: {mode},
      min_piece_chars: 40, margin_chars: 30, cache_dir: "{root}/cache"}}}}
"""
# the fault matrix's slow filter (tests/faults.py), which keeps everything but topic 1 documents
STAGES = '''
import os
import time

import curate


@curate.filter
def slow(doc, seconds: float = 0.01):
    """Sleep per document while the file named by $MATRIX_SLOW exists."""
    flag = os.environ.get("MATRIX_SLOW")
    if flag and os.path.exists(flag):
        time.sleep(seconds)
    return None
'''


def _docs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        paras = [" ".join(rng.choice(WORDS) for _ in range(25)) for _ in range(4)]
        if i % 5 == 0:  # an item planted between two paragraphs, split across lines
            item = ITEMS[(i // 5) % len(ITEMS)]
            paras.insert(2, item.replace(" how ", "\nhow ").replace(" of ", "\nof "))
        rows.append({"id": f"d{seed}-{i:03d}", "text": "\n\n".join(paras)})
    return rows


@pytest.fixture
def workdir(make_workdir, tmp_path):
    # absolute paths: Ray's workers do not run in this folder
    def make(mode: str):
        evals = "".join(json.dumps({"id": f"q{k}", "question": q}) + "\n" for k, q in enumerate(ITEMS))
        files = {"decontam_stages.py": STAGES, "evals.jsonl": evals}
        docs = {f"in/part{k}.parquet": _docs(30, k) for k in range(4)}
        return make_workdir(files=files, docs=docs, pipeline=PIPE.format(mode=mode, root=tmp_path))

    return make


def _rows(out, sub: str = "data") -> list[dict]:
    t = pq.read_table(out / sub)
    keep = [c for c in t.column_names if not c.startswith("__")]
    return sorted(t.select(keep).to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("mode", ["document", "span"])
def test_local_and_ray_write_the_same_output(workdir, ray_session, mode):
    wd = workdir(mode)
    local = engine.run(config.load("p.yaml", output_path="local"), runner="local")
    ray = engine.run(config.load("p.yaml", output_path="ray"), runner="ray")
    assert local["conserved"] and ray["conserved"]
    assert _rows(wd / "local") == _rows(wd / "ray")
    if mode == "document":
        rejected = _rows(wd / "local", "rejected/decont")
        assert sorted(r["id"] for r in rejected) == [f"d{s}-{i:03d}" for s in range(4) for i in range(0, 30, 5)]
        assert rejected == _rows(wd / "ray", "rejected/decont")
        # the first match rides on the rejected row; kept rows have no such column
        assert all(
            r["contaminated_set"] == "quiz" and r["contaminated_item"] and r["contaminated_ngram"] for r in rejected
        )
        assert "contaminated_set" not in pq.read_table(wd / "local" / "data").column_names
    else:
        cut = [r for r in _rows(wd / "local") if r["contaminated_item"]]
        assert len(cut) == 24 and {r["contaminated_set"] for r in cut} == {"quiz"}
        assert not any("sunrise to the next" in r["text"] for r in _rows(wd / "local"))


def test_a_killed_run_resumes_to_the_same_output_and_contamination_lists_it(workdir):
    wd = workdir("span")
    engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    reference = outcome(wd / "ref")
    kill_when(start(["run", "p.yaml", "--runner", "local"], wd, slow=True), lambda: commits(wd / "out", 0) >= 2)
    assert not (wd / "out" / "_SUCCESS").exists()
    (wd / "SLOW").unlink()
    done = run_curate("run", "p.yaml", "--runner", "local", cwd=wd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((wd / "out" / "stats.json").read_text())["attempts"] == 2
    assert_exactly_once(wd / "out", reference)
    assert _rows(wd / "out") == _rows(wd / "ref")

    # the analysis on the finished output: span mode cut the items out of the kept text, the rest is clean
    found = run_curate("contamination", "ref", "--against", "quiz=evals.jsonl", "--json", cwd=wd)
    assert found.returncode == 0, found.stderr[-3000:]
    report = json.loads(found.stdout)
    assert (wd / "ref" / "contamination.json").exists()
    rep = run_curate("report", "ref", cwd=wd)
    assert rep.returncode == 0 and "Benchmark contamination" in (wd / "ref" / "report.html").read_text()
    assert run_curate("verify", "ref", cwd=wd).returncode == 0
    assert report["documents"] == 120 and report["contaminated_documents"] == 0


def test_contamination_on_a_document_mode_output_names_every_planted_document(workdir):
    wd = workdir("document")
    engine.run(config.load("p.yaml"), runner="local")
    done = run_curate("contamination", "out", "--against", "quiz=evals.jsonl", "--json", cwd=wd)
    assert done.returncode == 0, done.stderr[-3000:]
    (quiz,) = json.loads(done.stdout)["sets"]
    assert quiz["items_found"] == len(ITEMS) and quiz["documents"] == 24
    ids = {e["id"] for f in quiz["found"] for e in f["examples"]}
    assert ids <= {f"d{s}-{i:03d}" for s in range(4) for i in range(0, 30, 5)}
    assert all(e["where"] == "rejected/decont" for f in quiz["found"] for e in f["examples"])
