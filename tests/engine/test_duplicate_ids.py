"""Duplicate ids in the input: a later copy is rejected as duplicate_id (within a read unit while reading, across
units by every global stage), and resuming over a unit with a repeated id loses and doubles nothing."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import StageError

BOMB = '''
import os

import curate
from curate.errors import StageError


@curate.filter
def bomb(doc, flag: str = ""):
    """Stops the run (as a crash would) at the document 'boom' while the flag file exists."""
    if doc["id"] == "boom" and os.path.exists(flag):
        raise StageError("boom")
    return None
'''


def _write(path, ids, tag):
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = [f"document {i} from {tag}, copy {k}" for k, i in enumerate(ids)]
    pq.write_table(pa.table({"id": ids, "text": texts}), path)


def _pipe(tmp_path, stages, name="p.yaml", out="out"):
    return str(
        write_pipeline(
            tmp_path / name,
            f"""
            name: dup-ids
            input: {{format: parquet, path: in}}
            output: {{path: {out}, shard_rows: 5}}
            engine: {{batch_rows: 5, progress_seconds: 0}}
            stages:
            {stages}
            """,
        )
    )


def _written(out):
    """Every (id, stage, reason) written, as a multiset (a document written twice counts twice)."""
    rows: Counter = Counter()
    for f in (out / "data").glob("*.parquet"):
        rows.update((i, None, None) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())
    for f in (out / "rejected").rglob("*.parquet"):
        t = pq.read_table(f, columns=["id", "reason"])
        rows.update((i, f.parent.name, r) for i, r in zip(t.column("id").to_pylist(), t.column("reason").to_pylist()))
    return rows


@pytest.fixture
def workdir(make_workdir):
    return make_workdir(files={"bomb_stage.py": BOMB})


def _by_stage(stats):
    return {s["id"]: s["reasons"] for s in stats["stages"]}


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_later_copies_are_rejected_within_a_unit_and_across_units(workdir, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_session")
    _write(workdir / "in" / "a.parquet", ["a", "b", "a", "c", "a", "d"], "A")
    _write(workdir / "in" / "b.parquet", ["e", "c", "f", "b"], "B")
    pipe = _pipe(workdir, "  - {id: dedup, uses: exact_dedup}")
    stats = engine.run(config.load(pipe), runner=runner)
    assert stats["conserved"] and stats["input_docs"] == 10
    reasons = _by_stage(stats)
    assert reasons["input"] == {"duplicate_id": 2}  # the 2nd and 3rd 'a' in a.parquet
    assert reasons["dedup"] == {"duplicate_id": 2}  # 'c' and 'b' of b.parquet: a.parquet comes first
    kept = pq.read_table(workdir / "out" / "data")
    texts = dict(zip(kept.column("id").to_pylist(), kept.column("text").to_pylist()))
    assert sorted(texts) == ["a", "b", "c", "d", "e", "f"]
    assert texts["a"] == "document a from A, copy 0" and texts["b"].endswith("from A, copy 1")
    assert _written(workdir / "out")[("a", "input", "duplicate_id")] == 2


def test_resume_over_a_unit_with_a_repeated_id_loses_and_doubles_nothing(workdir):
    # a.parquet holds 'x' twice and 'boom' after them; b.parquet holds 'x' and 'y' again
    a_ids = ["x", "p1", "p2", "p3", "p4", "p5", "p6", "x", "p7", "p8", "boom", "p9", "p10"]
    _write(workdir / "in" / "a.parquet", a_ids, "A")
    _write(workdir / "in" / "b.parquet", ["q1", "x", "q2", "p3"], "B")
    flag = workdir / "flag"
    stages = f'  - {{id: bomb, uses: "bomb_stage:bomb", with: {{flag: "{flag}"}}}}'
    reference = engine.run(config.load(_pipe(workdir, stages, "ref.yaml", "ref")), runner="local")
    flag.touch()
    pipe = _pipe(workdir, stages)
    with pytest.raises(StageError):
        engine.run(config.load(pipe), runner="local")
    assert list((workdir / "out" / "_progress" / "0" / "commits").glob("*.json")), "nothing was committed"
    flag.unlink()
    stats = engine.run(config.load(pipe), runner="local")
    assert stats["attempts"] == 2 and stats["conserved"] and stats["input_docs"] == 17
    assert _written(workdir / "out") == _written(workdir / "ref")
    assert _by_stage(stats) == _by_stage(reference)
    assert _by_stage(stats)["input"] == {"duplicate_id": 1}
