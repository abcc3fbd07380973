"""The Ray runner: custom user filters on Ray, agreement with the in-process runner, global stages."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import USER_FILTERS, parts, read_ids, run_curate, write_docs, write_pipeline

from curate import config, engine
from curate.errors import StageError

pytestmark = pytest.mark.ray

PIPE = """
name: ray-t
input: {format: parquet, path: in}
output: {path: out, shard_rows: 25}
engine: {batch_rows: 16}
stages:
  - {id: lorem, uses: "user_filters:no_lorem"}
  - {id: words, uses: "user_filters:count_words"}
  - {id: gate, uses: "user_filters:TopicGate", with: {banned: [3, 5]}}
  - {id: dedup, uses: exact_dedup}
  - {id: urls, uses: url_dedup}
"""


@pytest.fixture
def workdir(make_workdir):
    # the same URLs again with other, shorter text: url_dedup keeps the longer documents
    again = pa.table(
        {
            "id": [f"again-{i}" for i in (1, 2, 4)],
            "text": [f"short {i}" for i in (1, 2, 4)],
            "url": [f"https://EXAMPLE.org/{i}/" for i in (1, 2, 4)],
        }
    )
    docs = {**parts(4, 60), "in/again.parquet": again}
    return make_workdir(files={"user_filters.py": USER_FILTERS}, docs=docs, pipeline=PIPE)


def test_custom_filter_runs_on_ray_and_its_rejections_are_accounted(workdir, ray_session):
    stats = engine.run(config.load("p.yaml"), runner="ray")
    out = workdir / "out"
    assert (out / "_SUCCESS").exists() and stats["conserved"]
    assert stats["input_docs"] == 243
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["lorem"]["reasons"] == {"lorem_ipsum": 35}
    assert by_id["gate"]["reasons"]["banned_topic"] > 0
    rejected = pq.read_table(out / "rejected" / "lorem")
    assert rejected.num_rows == 35 and set(rejected.column("reason").to_pylist()) == {"lorem_ipsum"}
    assert by_id["urls"]["reasons"] == {"duplicate_url": 3}
    assert sorted(pq.read_table(out / "rejected" / "urls").column("id").to_pylist()) == [
        "again-1",
        "again-2",
        "again-4",
    ]
    assert json.loads((out / "stats.json").read_text())["output_docs"] == stats["output_docs"]


def test_ray_and_local_runners_keep_identical_ids(workdir, ray_session):
    engine.run(config.load("p.yaml", output_path="out-ray"), runner="ray")
    engine.run(config.load("p.yaml", output_path="out-local"), runner="local")
    ray_ids, local_ids = read_ids(workdir / "out-ray"), read_ids(workdir / "out-local")
    assert ray_ids and ray_ids == local_ids
    for stage in ("lorem", "gate", "dedup", "urls"):
        assert read_ids(workdir / "out-ray", f"rejected/{stage}") == read_ids(
            workdir / "out-local", f"rejected/{stage}"
        )


def test_stage_errors_over_the_cap_surface_as_a_clean_error_on_ray(workdir, ray_session):
    (workdir / "bad_stage.py").write_text(
        "import curate\n\n@curate.filter\ndef explode(doc):\n    raise ValueError('kaboom')\n"
    )
    write_pipeline(
        workdir / "bad.yaml",
        """
        name: bad
        input: {format: parquet, path: in}
        output: {path: bad-out}
        engine: {max_stage_errors: 3}
        stages:
          - {id: explode, uses: "bad_stage:explode"}
    """,
    )
    with pytest.raises(StageError, match="raised on .* documents, more than engine.max_stage_errors=3"):
        engine.run(config.load("bad.yaml"), runner="ray")
    assert not (workdir / "bad-out" / "_SUCCESS").exists()


@pytest.mark.e2e
def test_cli_run_on_its_own_embedded_ray(workdir):
    """`curate run` with no cluster starts (and stops) its own local Ray."""
    write_docs(workdir / "small" / "x.parquet", 30)
    proc = run_curate("run", "p.yaml", "--input", "small", "--output", "cli-out", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "30 documents in" in proc.stdout
    assert (workdir / "cli-out" / "_SUCCESS").exists()


BATCH_TAGS = '''
import uuid
import pyarrow as pa
import curate


class BatchTag(curate.Mapper):
    """Tags every document with an id of the batch it arrived in."""

    output_columns = {"batch_tag": pa.string()}

    def map_batch(self, batch):
        return batch.append_column("batch_tag", pa.array([uuid.uuid4().hex] * batch.num_rows, pa.string()))
'''


def test_each_read_unit_reaches_the_first_segment_as_its_own_batch(make_workdir, tmp_path, ray_session):
    # Ray Data's map_batches(batch_size=N) bundles blocks until a task has N rows: eight files of 10 documents ran
    # as one batch of 80 (and on real pages, 1,468 documents as two tasks of 1,000 and 468, one worker idle for half
    # the run). Straight after the reader, each reader batch must be a task of its own.
    make_workdir(
        files={"batch_tags.py": BATCH_TAGS},
        docs=parts(8, 10, lorem_every=0, dup_every=0),
        pipeline="name: tags\ninput: {format: parquet, path: in}\noutput: {path: out}\n"
        "stages:\n  - {id: tag, uses: 'batch_tags:BatchTag'}\n",
    )
    stats = engine.run(config.load("p.yaml"), runner="ray")
    assert stats["conserved"] and stats["output_docs"] == 80
    table = pq.read_table(tmp_path / "out" / "data", columns=["id", "batch_tag"])
    files_of_batch: dict[str, set[int]] = {}
    for doc_id, tag in zip(table.column("id").to_pylist(), table.column("batch_tag").to_pylist()):
        files_of_batch.setdefault(tag, set()).add(int(doc_id.split("-")[1]) // 10)
    assert sorted(len(f) for f in files_of_batch.values()) == [1] * 8  # one batch per file, no batch of two
