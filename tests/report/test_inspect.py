"""`curate inspect`, `curate explain` and `curate diff` on real run outputs (the sample crawl, conftest.py's
sample_runs): documents printed readably and as JSON, one document's path through the stages, and two runs that
differ in one threshold compared document by document."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
import pytest
from helpers import curate_command

from curate.cli import main

pytestmark = pytest.mark.e2e


def _out(capsys, argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _rows(out, sub: str, columns: list[str]) -> list[dict]:
    files = sorted((out / sub).rglob("*.parquet"))
    return pq.read_table(files, columns=columns).to_pylist() if files else []


def test_inspect_prints_the_rejected_documents_of_a_stage_and_reason(sample_runs, capsys):
    rc, out, _ = _out(
        capsys, ["inspect", str(sample_runs["A"]), "--stage", "lang", "--reason", "wrong_language", "-n", "3"]
    )
    assert rc == 0
    blocks = [b for b in out.strip().split("\n\n") if b]
    assert len(blocks) == 3
    rejected = {r["id"]: r for r in _rows(sample_runs["A"], "rejected/lang", ["id", "reason"])}
    for block in blocks:
        head, *rest = block.splitlines()
        doc_id, status = head.split("  ", 1)
        assert status == "rejected by lang: wrong_language"
        assert rejected[doc_id]["reason"] == "wrong_language"
        labels = [line.split()[0] for line in rest]
        assert labels[0] == "url" and labels[-1] == "text"
    assert "\x1b" not in out  # not a terminal: no styling


def test_inspect_kept_as_json_and_a_reproducible_sample(sample_runs, capsys):
    rc, out, _ = _out(capsys, ["inspect", str(sample_runs["A"]), "--kept", "-n", "5", "--json", "--chars", "0"])
    assert rc == 0
    docs = [json.loads(line) for line in out.splitlines()]
    kept = {r["id"]: r["text"] for r in _rows(sample_runs["A"], "data", ["id", "text"])}
    assert len(docs) == 5 and all(d["kept"] and d["stage"] is None for d in docs)
    assert all(d["text"] == kept[d["id"]] for d in docs)  # --chars 0: the whole text
    assert all("language_score" in d["scores"] for d in docs)
    first = [d["id"] for d in docs]

    def sample(seed: str) -> list[str]:
        argv = ["inspect", str(sample_runs["A"]), "-n", "5", "--sample", "--seed", seed, "--json"]
        return [json.loads(line)["id"] for line in _out(capsys, argv)[1].splitlines()]

    assert sample("1") == sample("1") and len(set(sample("1"))) == 5
    assert sample("1") != first or sample("2") != first


def test_inspect_names_an_unknown_stage_or_reason(sample_runs, capsys):
    rc, _, err = _out(capsys, ["inspect", str(sample_runs["A"]), "--stage", "nope"])
    assert rc == 2 and "no stage 'nope'" in err and "lang" in err
    rc, _, err = _out(capsys, ["inspect", str(sample_runs["A"]), "--stage", "lang", "--reason", "top_2_gram"])
    assert rc == 2 and "wrong_language" in err


def test_inspect_pages_into_a_closed_pipe_without_a_traceback(sample_runs):
    proc = subprocess.Popen(
        curate_command("inspect", str(sample_runs["A"]), "-n", "200"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline()  # like `less` or `head` that quits after the first screen
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err


def test_explain_follows_a_document_through_the_stages(sample_runs, capsys):
    rej = _rows(sample_runs["A"], "rejected/gopher_qual", ["id", "reason"])[0]
    rc, out, _ = _out(capsys, ["explain", str(sample_runs["A"]), rej["id"], "--json"])
    assert rc == 0
    info = json.loads(out)
    steps = {s["stage"]: s["outcome"] for s in info["path"]}
    assert steps == {
        "input": "passed",
        "url": "passed",
        "extract": "passed",
        "lang": "passed",
        "gopher_rep": "passed",
        "gopher_qual": "rejected",
        "dedup": "not reached",
    }
    assert info["reason"] == rej["reason"] and not info["kept"]
    assert info["stage_params"]["min_doc_words"] == 50  # the stage's parameters, as it ran
    cut = next(c for c in info["thresholds"] if c["column"] == "language_score")
    assert cut["stage"] == "lang" and cut["at"] == 0.65 and cut["value"] >= 0.65
    # readable form
    rc, out, _ = _out(capsys, ["explain", str(sample_runs["A"]), rej["id"]])
    assert out.splitlines()[0] == f"{rej['id']}: rejected by gopher_qual (gopher_quality) as {rej['reason']}"
    assert "language_score" in out and "is above lang.language_threshold = 0.65" in out
    # a kept document passed every stage; a near-duplicate names the document it duplicates
    kept = _rows(sample_runs["A"], "data", ["id"])[0]["id"]
    info = json.loads(_out(capsys, ["explain", str(sample_runs["A"]), kept, "--json"])[1])
    assert info["kept"] and {s["outcome"] for s in info["path"]} == {"passed"}
    dups = _rows(sample_runs["A"], "rejected/dedup", ["id", "duplicate_of"])
    if dups:
        info = json.loads(_out(capsys, ["explain", str(sample_runs["A"]), dups[0]["id"], "--json"])[1])
        assert info["duplicate_of"] == dups[0]["duplicate_of"] and info["stage"] == "dedup"
    rc, _, err = _out(capsys, ["explain", str(sample_runs["A"]), "no-such-id"])
    assert rc == 2 and "no-such-id" in err


def _outcomes(out) -> dict[str, tuple[str | None, str | None]]:
    got = {r["id"]: (None, None) for r in _rows(out, "data", ["id"])}
    for stage_dir in sorted((out / "rejected").iterdir()):
        for r in _rows(out, f"rejected/{stage_dir.name}", ["id", "reason"]):
            got[r["id"]] = (stage_dir.name, r["reason"])
    return got


def test_diff_of_two_thresholds_shows_exactly_the_documents_the_threshold_moved(sample_runs, capsys):
    rc, out, _ = _out(capsys, ["diff", str(sample_runs["A"]), str(sample_runs["B"]), "--json", "--examples", "1000"])
    assert rc == 0
    d = json.loads(out)
    assert d["pipeline"] == [{"setting": "stages.lang.with.language_threshold", "a": 0.65, "b": 0.9}]
    # the documents the threshold moves: A scored them in [0.65, 0.9) (every row after lang carries the score)
    scored = {}
    for sub in ("data", "rejected/gopher_rep", "rejected/gopher_qual", "rejected/dedup"):
        for r in _rows(sample_runs["A"], sub, ["id", "language_score"]):
            scored[r["id"]] = r["language_score"]
    moved = {i for i, s in scored.items() if 0.65 <= s < 0.9}
    assert moved, "the threshold moved nothing: the test tests nothing"
    a, b = _outcomes(sample_runs["A"]), _outcomes(sample_runs["B"])
    assert set(a) == set(b)
    changed = {i for i in a if a[i] != b[i]}
    assert moved <= changed and all(b[i] == ("lang", "low_language_score") for i in moved)
    # anything else that changed is a near-duplicate whose cluster lost its kept document to the threshold
    dup_of = {r["id"]: r["duplicate_of"] for r in _rows(sample_runs["A"], "rejected/dedup", ["id", "duplicate_of"])}
    assert all(dup_of.get(i) in moved for i in changed - moved), changed - moved
    # and the diff reports exactly these, grouped by what decided them
    reported = {i for g in d["kept_by_a_not_b"] + d["kept_by_b_not_a"] + d["rejected_differently"] for i in g["ids"]}
    assert reported == changed
    lost = {(g["stage_b"], g["reason_b"]): g["documents"] for g in d["kept_by_a_not_b"]}
    assert lost.get(("lang", "low_language_score"), 0) == len({i for i in moved if a[i] == (None, None)})
    n = d["documents"]
    assert n["in_both"] == len(a) and n["only_in_a"] == n["only_in_b"] == 0
    assert n["kept_by_a_not_b"] + n["kept_by_b_not_a"] + n["rejected_differently"] == len(changed)
    changes = {(c["stage"], c["figure"]): (c["a"], c["b"]) for c in d["stats"]}
    lang_kept = changes[("lang", "kept")]
    assert lang_kept[0] - lang_kept[1] == len(moved)
    # the readable form says the same
    text = _out(capsys, ["diff", str(sample_runs["A"]), str(sample_runs["B"])])[1]
    assert "stages.lang.with.language_threshold: 0.65 -> 0.9" in text
    assert f"kept by A, not by B: {n['kept_by_a_not_b']:,}" in text
    assert "lang: low_language_score" in text
