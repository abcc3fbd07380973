"""Runs of whole pipelines: output layout, accounting, conservation, readers (in-process runner, no Ray)."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import USER_FILTERS, read_ids, write_pipeline

from curate import config, engine
from curate.errors import ConfigError, ConservationError, OutputError
from curate.output import sink

PIPE = """
name: t
input: {format: parquet, path: in}
output: {path: out, shard_rows: 7}
stages:
  - {id: lorem, uses: "user_filters:no_lorem"}
  - {id: words, uses: "user_filters:count_words"}
  - {id: dedup, uses: exact_dedup}
"""


@pytest.fixture
def workdir(make_workdir):
    docs = {"in/a.parquet": 40, "in/b.parquet": 30}  # doc-0000 .. doc-0069
    return make_workdir(files={"user_filters.py": USER_FILTERS}, docs=docs, pipeline=PIPE)


def _expected_kept():
    kept, seen = [], set()
    for i in range(70):
        text = "This exact sentence" if i % 10 == 0 else f"Document {i}"
        if i % 7 == 0:
            continue  # lorem ipsum
        if i % 10 == 0:
            if text in seen:
                continue
            seen.add(text)
        kept.append(f"doc-{i:04d}")
    return sorted(kept)


def test_local_run_writes_the_documented_layout(workdir):
    stats = engine.run(config.load("p.yaml"), runner="local")
    out = workdir / "out"
    for name in ("data", "rejected", "stats.json", "pipeline.yaml", "manifest.json", "_SUCCESS"):
        assert (out / name).exists(), name
    assert read_ids(out) == _expected_kept()
    assert stats["input_docs"] == 70 and stats["conserved"]
    assert stats["output_docs"] + stats["rejected_docs"] == 70
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["lorem"]["reasons"] == {"lorem_ipsum": 10}
    assert by_id["dedup"]["reasons"] == {"duplicate_text": 5}  # doc-0010..0060 minus the lorem ones, keep one
    assert by_id["dedup"]["docs_in"] == by_id["words"]["kept"] == 60
    rej = pq.read_table(out / "rejected" / "lorem")
    assert set(rej.column("reason").to_pylist()) == {"lorem_ipsum"}
    assert "n_words" not in rej.column_names  # rejected rows are as they entered the stage
    kept = pq.read_table(out / "data")
    assert kept.schema.field("n_words").type == pa.int64()
    assert max(pq.ParquetFile(f).metadata.num_rows for f in (out / "data").glob("*.parquet")) <= 7
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(s["rows"] for s in manifest["shards"]) == 70
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    resolved = config.load(str(out / "pipeline.yaml"), input_path=str(workdir / "in"))
    assert [s.uses for s in resolved.stages] == ["user_filters:no_lorem", "user_filters:count_words", "exact_dedup"]


def test_a_finished_output_is_not_overwritten_without_asking(workdir):
    engine.run(config.load("p.yaml"), runner="local")
    with pytest.raises(OutputError, match="already holds a finished run"):
        engine.run(config.load("p.yaml"), runner="local")
    stats = engine.run(config.load("p.yaml"), runner="local", overwrite=True)
    assert stats["output_docs"] == len(_expected_kept())


def test_conservation_is_checked_and_a_lost_document_fails_the_run(workdir, monkeypatch):
    real_write = sink.ShardWriter.write

    def lossy_write(self, tables, write_id):
        tables = list(tables)
        tables[0] = tables[0].slice(1)  # lose one document on purpose
        return real_write(self, tables, write_id)

    monkeypatch.setattr(sink.ShardWriter, "write", lossy_write)
    with pytest.raises(ConservationError, match="read 70 documents but wrote"):
        engine.run(config.load("p.yaml"), runner="local")
    assert not (workdir / "out" / "_SUCCESS").exists()


def test_jsonl_input_counts_bad_lines_as_rejections(workdir):
    lines = [json.dumps({"id": f"j{i}", "text": f"line {i} text"}) for i in range(5)]
    lines.insert(2, "{not json")
    lines.insert(4, json.dumps({"id": "notext", "body": "x"}))
    with gzip.open(workdir / "in.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    write_pipeline(
        workdir / "j.yaml",
        """
        name: j
        input: {format: jsonl, path: in.jsonl.gz}
        output: {path: jout}
        stages: []
    """,
    )
    stats = engine.run(config.load("j.yaml"), runner="local")
    assert stats["input_docs"] == 7 and stats["output_docs"] == 5
    assert stats["stages"][0]["reasons"] == {"invalid_json": 1, "missing_text": 1}
    assert read_ids(workdir / "jout") == [f"j{i}" for i in range(5)]


def test_parquet_without_id_gets_stable_ids_and_mapped_text_column(workdir):
    pq.write_table(pa.table({"content": ["alpha beta", "gamma delta"], "lang": ["en", "de"]}), workdir / "raw.parquet")
    write_pipeline(
        workdir / "m.yaml",
        """
        name: m
        input: {format: parquet, path: raw.parquet, columns: {text: content}}
        output: {path: mout}
        stages: []
    """,
    )
    engine.run(config.load("m.yaml"), runner="local")
    t = pq.read_table(workdir / "mout" / "data")
    assert t.column("id").to_pylist() == ["raw.parquet:0", "raw.parquet:1"]
    assert t.column("text").to_pylist() == ["alpha beta", "gamma delta"]
    assert t.column("lang").to_pylist() == ["en", "de"]  # other input columns are carried along


def test_missing_text_column_is_a_clear_input_error(workdir, capsys):
    from curate.cli import main

    pq.write_table(pa.table({"body": ["x"]}), workdir / "nobody.parquet")
    write_pipeline(
        workdir / "n.yaml",
        """
        name: n
        input: {format: parquet, path: nobody.parquet}
        stages: []
    """,
    )
    assert main(["run", "n.yaml", "--runner", "local"]) == 2
    err = capsys.readouterr().err
    assert "has no 'text' column" in err and "input: {columns: {text: <column>}}" in err


def test_stage_needing_a_column_nobody_provides_is_rejected_before_running(workdir):
    (workdir / "needs_html.py").write_text(
        "import curate\n"
        "class Extract(curate.Mapper):\n"
        "    input_columns = ('html',)\n"
        "    def map(self, doc):\n"
        "        return None\n"
    )
    write_pipeline(
        workdir / "u.yaml",
        """
        name: u
        input: {format: parquet, path: in}
        output: {path: uout}
        stages:
          - {id: extract, uses: "needs_html:Extract"}
    """,
    )
    with pytest.raises(ConfigError, match=r"u\.yaml:5: stage 'extract' .* needs column\(s\) html"):
        engine.run(config.load("u.yaml"), runner="local")
    assert not (workdir / "uout").exists()


def test_progress_line_reports_each_stage(workdir):
    from curate.engine.progress import progress_line
    from curate.output.figures import StageFigures

    p = config.load("p.yaml")
    snapshot = {
        "units": {"a.parquet": 40},
        "stages": {
            "lorem": StageFigures(docs_in=40, rejected={"lorem_ipsum": 6}, seconds=0.5),
            "dedup": StageFigures(seconds=2.0),
        },
    }
    line = progress_line(snapshot, p, 2, 12.3)
    assert line.startswith("progress 12s | inputs 1/2 read")
    assert "lorem 40 in 34 kept" in line and "dedup 2s" in line and "words" not in line


def test_stateful_stages_run_in_actors_or_fused_into_tasks(workdir):
    from curate.engine.plan import plan_segments

    p = config.load("p.yaml")
    p.stages[1].cls.setup = lambda self: None  # pretend count_words loads a model
    try:
        actors = [(s.label, s.in_actors) for s in plan_segments(p.stages, "actors")]
        tasks = [(s.label, s.in_actors) for s in plan_segments(p.stages, "tasks")]
        auto = [(s.label, s.in_actors) for s in plan_segments(p.stages)]
        p.stages[1].resources = {"num_gpus": 1.0}  # a model on a GPU: its own segment, in actors
        auto_gpu = [(s.label, s.in_actors) for s in plan_segments(p.stages)]
    finally:
        del p.stages[1].cls.setup
    assert actors == [("lorem", False), ("words", True), ("dedup", False)]
    assert tasks == auto == [("lorem+words", False), ("dedup", False)]
    assert auto_gpu == [("lorem", False), ("words", True), ("dedup", False)]


def test_records_that_are_not_documents_are_reported_once_in_input_counters(workdir):
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(workdir / "crawl.warc.gz", "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for i in range(3):
            url = f"https://example.org/{i}"
            w.write_record(w.create_warc_record(url, "request", payload=BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            body = f"<html><body><p>Page {i} says something.</p></body></html>".encode()
            w.write_record(w.create_warc_record(url, "response", payload=BytesIO(body), http_headers=http))
    write_pipeline(
        workdir / "w.yaml",
        """
        name: w
        input: {format: warc, path: crawl.warc.gz}
        output: {path: wout}
        stages: []
    """,
    )
    stats = engine.run(config.load("w.yaml"), runner="local")
    assert stats["input_docs"] == 3
    assert stats["stages"][0]["counters"] == {"skipped_request": 3}
