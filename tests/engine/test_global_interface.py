"""The grown global-stage interface (derive, group_by, union, materialize, count, collect, join, table,
write_side, rejected_columns) gives identical output on the local and the Ray runner."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import TESTS, write_pipeline

from curate import config, engine

PIPE = """
name: conformance
input: {format: parquet, path: in}
output: {path: OUT, shard_rows: 40}
engine: {batch_rows: 16, shuffle_partitions: 3}
stages:
  - {id: groups, uses: "global_stages:FirstWordGroups"}
"""

WORDS = ["alpha", "beta", "gamma", "delta", "alpha", "beta", "omega"]


def _rows(k: int) -> list[dict]:
    rows = []
    for i in range(40):
        n = 40 * k + i
        # every 9th document has no text: its key is null and it is in no group
        text = "" if n % 9 == 0 else f"{WORDS[n % len(WORDS)]} document number {n}"
        rows.append({"id": f"d{n:04d}", "text": text})
    return rows


@pytest.fixture
def workdir(make_workdir):
    files = {"global_stages.py": (TESTS / "global_stages.py").read_text()}
    return make_workdir(files=files, docs={f"in/p{k}.parquet": _rows(k) for k in range(3)})


def _result(out):
    kept = pq.read_table(out / "data").sort_by("id")
    rejected = pq.read_table(out / "rejected" / "groups").sort_by("id")
    side = pq.read_table([str(p) for p in sorted((out / "side" / "groups" / "labels").glob("*.parquet"))])
    stats = json.loads((out / "stats.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return kept, rejected, side.sort_by("id"), stats, manifest


def _run(workdir, runner):
    pipe = write_pipeline(workdir / f"{runner}.yaml", PIPE.replace("OUT", f"out-{runner}"))
    engine.run(config.load(str(pipe)), runner=runner)
    return _result(workdir / f"out-{runner}")


def _check(kept, rejected, side, stats, manifest):
    # 120 documents: 14 have no text (each alone), the others fall into 5 first-word groups
    assert kept.num_rows + rejected.num_rows == 120
    assert kept.num_rows == 14 + 5
    assert set(rejected.column("reason").to_pylist()) == {"same_first_word"}
    kept_ids = set(kept.column("id").to_pylist())
    assert set(rejected.column("duplicate_of").to_pylist()) <= kept_ids
    assert "duplicate_of" not in kept.column_names and kept.schema.field("group_size").type == pa.int64()
    sizes = dict(zip(kept.column("id").to_pylist(), kept.column("group_size").to_pylist()))
    assert sum(v for v in sizes.values() if v) == 120 - 14
    assert all(sizes[i] is None for i in kept_ids if int(i[1:]) % 9 == 0)  # no key: no group
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["groups"]["counters"] == {"groups": 6, "key_rows": 120}  # null keys count as rows; "nobody" is a group
    assert side.num_rows == 106 + 1
    assert any(f["kind"] == "side" for f in manifest["shards"])


@pytest.mark.ray
@pytest.mark.parametrize("shuffle", ["one block", "hash shuffle"])
def test_global_interface_same_output_on_both_runners(workdir, ray_session, monkeypatch, shuffle):
    from curate.engine import ray_docs as ray_engine

    if shuffle == "hash shuffle":  # small tables group in one block; force the distributed path too
        monkeypatch.setattr(ray_engine, "SMALL_GROUP_BYTES", 0)
    local = _run(workdir, "local")
    _check(*local)
    ray_out = _run(workdir, "ray")
    _check(*ray_out)
    for a, b in zip(local[:3], ray_out[:3]):
        assert a.equals(b)


def test_global_interface_local(workdir):
    _check(*_run(workdir, "local"))


PARTITION_PIPE = """
name: partition
input: {format: parquet, path: in}
output: {path: OUT}
engine: {batch_rows: 16, shuffle_partitions: 3}
stages:
  - {id: same, uses: "global_stages:SameText"}
"""


def _partition_run(workdir, runner):
    """SameText over the 120 documents plus a later copy of d0001 in the same file, which the reader rejects as
    duplicate_id: partition_by must pass that rejected row through once, not lose or double it."""
    rows = _rows(0) + [{"id": "d0001", "text": "a later copy of d0001"}]
    pq.write_table(pa.Table.from_pylist(rows), workdir / "in" / "p0.parquet")
    pipe = write_pipeline(workdir / f"part-{runner}.yaml", PARTITION_PIPE.replace("OUT", f"part-{runner}"))
    stats = engine.run(config.load(str(pipe)), runner=runner)
    out = workdir / f"part-{runner}"
    kept = sorted(pq.read_table(out / "data").column("id").to_pylist())
    rejected = sorted(pq.read_table(out / "rejected" / "same").column("id").to_pylist())
    by_id = {s["id"]: s for s in stats["stages"]}
    # 121 read: the copy rejected at input; of the 120, the 14 without text share one text and one of them stays
    assert stats["input_docs"] == 121 and by_id["input"]["reasons"] == {"duplicate_id": 1}
    assert by_id["same"]["reasons"] == {"same_text": 13} and len(rejected) == 13
    assert len(kept) == 107 and len(set(kept)) == 107
    return kept, rejected


def test_partition_by_passes_earlier_rejections_through_once_local(workdir):
    _partition_run(workdir, "local")


@pytest.mark.ray
def test_partition_by_same_output_on_both_runners(workdir, ray_session):
    assert _partition_run(workdir, "ray") == _partition_run(workdir, "local")
