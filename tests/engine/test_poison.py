"""Poison records (engine/isolate.py): one document of 2,000 that segfaults its worker, exits it, hangs it in a
regular expression that holds the GIL, or blows up its memory is rejected alone, with a reason naming what
happened, at the defaults, on both runners; the 1,999 others are kept, and a resumed poisoned run gives the same
output. Rows of the fault matrix (docs/outputs.md)."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pyarrow.parquet as pq
import pytest
from faults import assert_exactly_once, kill_when, start
from helpers import commits, run_curate

from curate import config, engine

POISON_STAGES = '''
import ctypes
import os
import re
import time

import curate


@curate.filter
def poison(doc, kind: str = "segfault", seconds: float = 0.0):
    """Keeps every document; the one whose text holds POISON crashes, exits, hangs or exhausts its worker."""
    if seconds:
        time.sleep(seconds)
    if "POISON" in doc.text:
        if kind == "segfault":
            ctypes.string_at(0)  # as a buggy C extension does
        elif kind == "exit":
            os._exit(1)
        elif kind == "hang":
            re.match(r"(a+)+$", "a" * 40 + "b")  # catastrophic backtracking; sre holds the GIL throughout
        elif kind == "memory":
            blob = []
            while True:
                blob.append(b"x" * (1 << 26))
    return None


class PoisonKey(curate.GroupFilter):
    """A global stage (exact dedup by text) whose key function, run per batch in derive(), segfaults on the
    poison record: a batch-level function that does not report its rows, so the record is found by bisection."""

    reasons = ("duplicate",)

    def key_batch(self, batch):
        if any("POISON" in t for t in batch.column("text").to_pylist()):
            ctypes.string_at(0)
        return batch.column("text")

    def reject_group(self, group):
        import pyarrow.compute as pc

        first = group.group_by("__group_key__").aggregate([("id", "min")])
        keep = pc.is_in(group.column("id"), value_set=first.column("id_min"))
        return pc.if_else(keep, None, "duplicate")


class PoisonMap(curate.GlobalStage):
    """A global stage whose row-aligned map_batches function exits the worker on the poison record."""

    def apply_global(self, docs):
        def check(batch):
            if any("POISON" in t for t in batch.column("text").to_pylist()):
                os._exit(3)
            return batch

        return docs.map_batches(check)
'''

N_DOCS = 2000
POISONED = "doc-1234"
REASON = {"segfault": "worker_crashed", "exit": "worker_crashed", "hang": "stage_timeout", "memory": "out_of_memory"}
DETAIL = {"segfault": "SIGSEGV", "exit": "exited with code 1", "hang": "deadline", "memory": "memory"}


def _docs() -> dict[str, list[dict]]:
    rows = [
        {
            "id": f"doc-{i:04d}",
            "text": f"Document {i} talks about topic {i % 13} in a few plain words.",
            "url": f"https://example.org/{i}",
        }
        for i in range(N_DOCS)
    ]
    rows[1234]["text"] += " POISON"
    return {f"in/part{j}.parquet": rows[j * 500 : (j + 1) * 500] for j in range(4)}


@pytest.fixture
def workdir(make_workdir):
    return make_workdir(
        files={"poison_stages.py": POISON_STAGES},
        docs=_docs(),
        pipeline="""
        name: poison
        input: {format: parquet, path: in}
        output: {path: out}
        engine: {progress_seconds: 0}
        stages:
          - {id: words, uses: c4_badwords}
          - {id: poison, uses: "poison_stages:poison"}
          - {id: dedup, uses: exact_dedup}
        """,
    )


def _ids(out, sub: str) -> Counter:
    ids: Counter = Counter()
    for f in sorted((out / sub).glob("*.parquet")):
        ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def _expected() -> dict[str, Counter]:
    return {
        "kept": Counter(f"doc-{i:04d}" for i in range(N_DOCS) if i != 1234),
        "rejected/poison": Counter([POISONED]),
    }


@pytest.mark.ray
@pytest.mark.e2e
@pytest.mark.parametrize("runner", ["local", "ray"])
@pytest.mark.parametrize("kind", ["segfault", "exit", "hang", "memory"])
def test_one_poison_record_is_rejected_alone_and_the_run_finishes(workdir, request, runner, kind):
    if runner == "ray":
        request.getfixturevalue("ray_session")
    stats = engine.run(config.load("p.yaml", [f"stages.poison.kind={kind}"]), runner=runner)  # at the defaults
    assert stats["conserved"] and stats["sizes_conserved"]
    assert (stats["input_docs"], stats["output_docs"], stats["rejected_docs"]) == (N_DOCS, N_DOCS - 1, 1)
    entry = next(e for e in stats["stages"] if e["id"] == "poison")
    assert entry["reasons"] == {REASON[kind]: 1}
    (failure,) = entry["isolated"]
    assert failure["id"] == POISONED and failure["reason"] == REASON[kind] and DETAIL[kind] in failure["detail"]
    out = workdir / "out"
    assert_exactly_once(out, _expected())
    rejected = pq.read_table(next((out / "rejected/poison").glob("*.parquet")))
    assert rejected.column("reason").to_pylist() == [REASON[kind]]
    assert "POISON" in rejected.column("text")[0].as_py()  # as it entered the stage, original columns


@pytest.mark.ray
@pytest.mark.e2e
@pytest.mark.parametrize("runner", ["local", "ray"])
@pytest.mark.parametrize("stage", ["PoisonKey", "PoisonMap"])
def test_a_global_stages_per_batch_work_isolates_the_poison_record_too(workdir, request, runner, stage):
    """derive() (GroupFilter's keys, found by bisection) and Docs.map_batches of a global stage follow the same
    rule as row stages."""
    if runner == "ray":
        request.getfixturevalue("ray_session")
    (workdir / "g.yaml").write_text(
        f"""
name: poison_global
input: {{format: parquet, path: in}}
output: {{path: out_g}}
engine: {{progress_seconds: 0, batch_rows: 250}}
stages:
  - {{id: words, uses: c4_badwords}}
  - {{id: glob, uses: "poison_stages:{stage}"}}
"""
    )
    stats = engine.run(config.load("g.yaml"), runner=runner)
    assert stats["conserved"] and (stats["input_docs"], stats["output_docs"]) == (N_DOCS, N_DOCS - 1)
    entry = next(e for e in stats["stages"] if e["id"] == "glob")
    assert entry["reasons"] == {"worker_crashed": 1}
    (failure,) = entry["isolated"]
    assert (failure["id"], failure["reason"]) == (POISONED, "worker_crashed")
    assert ("SIGSEGV" if stage == "PoisonKey" else "exited with code 3") in failure["detail"]
    assert_exactly_once(workdir / "out_g", {"kept": _expected()["kept"], "rejected/glob": Counter([POISONED])})


@pytest.mark.ray
@pytest.mark.e2e
def test_explain_shows_what_happened_to_a_poison_record(workdir):
    proc = run_curate("run", "p.yaml", "--runner", "local", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    # one line per isolated record, no stack dump
    lines = [ln for ln in proc.stderr.splitlines() if POISONED in ln]
    assert len(lines) == 1 and "worker_crashed" in lines[0] and "SIGSEGV" in lines[0], proc.stderr
    assert "Fatal Python error" not in proc.stderr and "Traceback" not in proc.stderr
    proc = run_curate("explain", "out", POISONED, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "rejected by poison" in proc.stdout and "worker_crashed" in proc.stdout and "SIGSEGV" in proc.stdout


@pytest.mark.e2e
def test_a_poisoned_run_interrupted_and_resumed_gives_the_same_output(workdir):
    """The driver SIGKILLed mid-run (the poison record's batch among those in flight or done), then resumed."""
    out = workdir / "out"
    args = ["run", "p.yaml", "--runner", "local", "--set", "engine.batch_rows=100", "--set", "output.shard_rows=100"]
    args += ["--set", "stages.poison.seconds=0.002"]  # slow enough to be hit mid-run
    proc = start(args, workdir)
    kill_when(proc, lambda: commits(out, 0) >= 4)
    assert proc.returncode == -signal.SIGKILL or proc.returncode != 0
    assert not (out / "_SUCCESS").exists()
    resumed = run_curate(*args, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["attempts"] == 2 and stats["output_docs"] == N_DOCS - 1
    assert_exactly_once(out, _expected())


@pytest.mark.e2e
def test_isolation_none_runs_stages_in_the_worker(workdir):
    """engine.isolation: none (for a debugger): no child process; a segfault then takes the run down, as before."""
    proc = run_curate("run", "p.yaml", "--runner", "local", "--set", "engine.isolation=none", cwd=workdir)
    assert proc.returncode == -signal.SIGSEGV or proc.returncode != 0
    clean = run_curate(
        "run", "p.yaml", "--runner", "local", "--set", "engine.isolation=none", "--overwrite",
        "--set", "stages.poison.kind=none", cwd=workdir,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    assert _ids(workdir / "out", "data") == Counter(f"doc-{i:04d}" for i in range(N_DOCS))
