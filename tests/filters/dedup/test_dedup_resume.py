"""A run killed (SIGKILL, driver and its Ray) during a dedup stage's global phase (minhash, line_dedup,
substring_dedup, bloom_dedup) resumes to exactly the uninterrupted output, texts included."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest
from faults import assert_exactly_once, kill_when, outcome, start
from helpers import SLOW_FILTERS, run_curate

from curate import config, engine

pytestmark = [pytest.mark.ray, pytest.mark.e2e]

PIPE = """
name: minhash-resume
input: {format: parquet, path: in}
output: {path: out, shard_rows: 20}
engine: {batch_rows: 20, progress_seconds: 0, shuffle_partitions: 3}
stages:
  - {id: slow, uses: "slow_filters:slow", with: {seconds: 0.002}}
  - {id: dedup, uses: STAGE, with: WITH}
  - {id: slow_after, uses: "slow_filters:slow", with: {seconds: 0.02}}
"""

WORDS = (
    "river stone market winter garden letter window morning harbour village teacher doctor summer bridge "
    "mountain forest kitchen station council library engine school storm meadow lantern"
).split()


def _docs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 4 == 3:  # a near copy of an earlier document: one word changed
            words = rows[rng.randrange(len(rows))]["text"].split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        else:
            words = [rng.choice(WORDS) for _ in range(60)]
        # lines of 10 words: a near copy repeats 5 of its original's 6 lines (for line_dedup)
        text = "\n".join(" ".join(words[j : j + 10]) for j in range(0, 60, 10))
        rows.append({"id": f"d{seed}-{i:03d}", "text": text})
    return rows


# each stage with settings under which the near copies above give it something to remove
STAGES = {
    "minhash": "{threshold: 0.7}",
    "line_dedup": "{keep: first}",
    "substring_dedup": "{min_tokens: 20}",
    "bloom_dedup": "{ngram: 5, min_ngram: 5, threshold: 0.5, document_threshold: null}",
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_run_killed_during_a_dedup_stage_resumes_to_the_same_output(make_workdir, stage):
    docs = {f"in/part{k}.parquet": _docs(40, k) for k in range(6)}
    pipe = PIPE.replace("STAGE", stage).replace("WITH", STAGES[stage])
    workdir = make_workdir(files={"slow_filters.py": SLOW_FILTERS}, docs=docs, pipeline=pipe)
    engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    reference = outcome(workdir / "ref")
    if stage == "minhash":
        assert sum(reference["rejected/dedup"].values()) >= 30, "the input must hold near duplicates"
    else:  # documents rewritten: their cut column is filled
        cut = pq.read_table(workdir / "ref" / "data").column(f"{stage}_cut")
        assert len(cut) - cut.null_count >= 20, "the input must hold repeats"
    out = workdir / "out"

    def in_dedup_phase() -> bool:
        # phase 0 is done and the dedup phase has begun its shuffles (its join writes scratch files)
        return (out / "_progress" / "0" / "DONE").exists() and any((out / "_checkpoint" / "1").rglob("*.parquet"))

    kill_when(start(["run", "p.yaml"], workdir), in_dedup_phase, timeout=400)
    assert not (out / "_SUCCESS").exists()
    done = run_curate("run", "p.yaml", cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["attempts"] == 2 and stats["conserved"]
    assert_exactly_once(out, reference)
    texts = [pq.read_table(d / "data", columns=["id", "text"]).sort_by("id") for d in (out, workdir / "ref")]
    assert texts[0].equals(texts[1])  # the rewritten texts too
    if stage != "minhash":
        return
    dup_of = pq.read_table(out / "rejected" / "dedup").sort_by("id").column("duplicate_of")
    ref_dup_of = pq.read_table(workdir / "ref" / "rejected" / "dedup").sort_by("id").column("duplicate_of")
    assert dup_of.equals(ref_dup_of)
