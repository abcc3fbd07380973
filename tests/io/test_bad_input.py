"""The bad-input matrix: each case is a clear one-line error with exit code 2, or a counted, named rejection —
never a traceback, never a lost document."""

from __future__ import annotations

import json
import logging

import pyarrow.parquet as pq
import pytest
from helpers import all_ids, full_disk_after, read_ids, write_pipeline

from curate import config, engine
from curate.cli import main

PIPE = """
name: bad
input: {format: parquet, path: in}
output: {path: out, shard_rows: 10}
engine: {batch_rows: 10, progress_seconds: 0}
stages:
  - {id: fragile, uses: "fragile_stage:fragile"}
"""

FRAGILE = '''
import curate


@curate.filter
def fragile(doc):
    """Raises on one particular document."""
    if doc.id == "doc-0013":
        raise ZeroDivisionError("cannot handle this one")
    return None
'''


@pytest.fixture
def workdir(make_workdir):
    docs = {"in/a.parquet": 30, "in/b.parquet": 30}  # doc-0000 .. doc-0059
    return make_workdir(files={"fragile_stage.py": FRAGILE}, docs=docs, pipeline=PIPE)


def _run(capsys, *argv):
    code = main(["run", *argv, "--runner", "local"])
    captured = capsys.readouterr()
    # The only tracebacks allowed are a stage's own, logged for the document it raised on; never a crash.
    assert "Traceback" not in captured.err or "raised on document" in captured.err
    if code:
        assert captured.err.rstrip().splitlines()[-1].startswith("error:")
    return code, [line for line in captured.err.splitlines() if line.startswith("error:")]


def test_input_that_does_not_exist(workdir, capsys):
    code, errors = _run(capsys, "p.yaml", "--input", "nowhere")
    assert code == 2 and len(errors) == 1 and "input path 'nowhere' does not exist" in errors[0]
    assert "p.yaml:2" in errors[0]


def test_an_empty_glob(workdir, capsys):
    code, errors = _run(capsys, "p.yaml", "--input", "in/*.jsonl")
    assert code == 2 and len(errors) == 1 and "matches no files" in errors[0]


def test_an_unreadable_file_is_a_counted_rejection(workdir):
    (workdir / "in" / "c.parquet").symlink_to(workdir / "gone.parquet")  # listed, but cannot be opened
    stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["stages"][0]["reasons"] == {"unreadable_parquet": 1}
    assert stats["input_docs"] == 61 and stats["conserved"]
    rejected = pq.read_table(workdir / "out" / "rejected" / "input")
    assert rejected.column("id").to_pylist() == ["c.parquet"] and rejected.column("reason").to_pylist() == [
        "unreadable_parquet"
    ]


def test_malformed_parquet_is_a_counted_rejection(workdir):
    (workdir / "in" / "broken.parquet").write_bytes(b"PAR1 this is not really parquet PAR1")
    stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["stages"][0]["reasons"] == {"unreadable_parquet": 1}
    assert stats["input_docs"] == 61 and stats["output_docs"] == 59


def test_an_output_path_that_cannot_be_written(workdir, capsys):
    (workdir / "a-file").write_text("not a directory")
    code, errors = _run(capsys, "p.yaml", "--output", "a-file/out")
    assert code == 2 and len(errors) == 1 and "cannot write to output" in errors[0]


def test_disk_full_while_writing_stops_cleanly_and_the_run_resumes(workdir, capsys, monkeypatch):
    free_space = full_disk_after(monkeypatch, 3)
    code, errors = _run(capsys, "p.yaml")
    assert code == 2 and len(errors) == 1
    assert "No space left on device" in errors[0] and "check free space" in errors[0]
    assert not (workdir / "out" / "_SUCCESS").exists()
    free_space()  # the same command finishes the run
    code, errors = _run(capsys, "p.yaml")
    assert code == 0 and not errors
    stats = json.loads((workdir / "out" / "stats.json").read_text())
    assert stats["attempts"] == 2
    written = all_ids(workdir / "out")
    assert len(written) == len(set(written)) == 60


def test_a_stage_raising_on_one_document_rejects_it_and_logs_the_traceback(workdir, caplog):
    with caplog.at_level(logging.ERROR, logger="curate.engine"):
        stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["stages"][1]["reasons"] == {"stage_error:fragile": 1}
    rejected = pq.read_table(workdir / "out" / "rejected" / "fragile")
    assert rejected.column("id").to_pylist() == ["doc-0013"]
    assert "ZeroDivisionError: cannot handle this one" in caplog.text and "doc-0013" in caplog.text
    assert len(read_ids(workdir / "out")) == 59


def test_stage_errors_over_the_cap_stop_the_run_with_exit_2(workdir, capsys):
    (workdir / "always_raises.py").write_text(FRAGILE.replace('doc.id == "doc-0013"', "True"))
    write_pipeline(workdir / "p2.yaml", PIPE.replace("fragile_stage:fragile", "always_raises:fragile"))
    code, errors = _run(capsys, "p2.yaml", "--set", "engine.max_stage_errors=5")
    assert code == 2 and "raised on" in errors[0] and "max_stage_errors=5" in errors[0]
