"""`curate classifier train | eval`: inputs, balance and split, the DCLM preset, held-out metrics, and text prepared
by the same function at training and at scoring time."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.cli import main
from curate.errors import InputError
from curate_filters.quality.classifier import (
    DocSet,
    binary_metrics,
    load_model,
    prepare_text,
    rejected_files,
    roc_auc,
    split,
    training_lines,
)
from curate_filters.quality.score import QualityScore

pytest.importorskip("fasttext")

_rng = random.Random(42)


def _words(n):
    return ["".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_rng.randint(2, 9))) for _ in range(n)]


# Two vocabularies and a shared one (a vocabulary of a few dozen words makes fastText diverge, upstream too)
GOOD, BAD, SHARED = _words(200), _words(200), _words(100)


def _doc(rng, words, n=40):
    # mostly the class's words, some shared and some of the other's: the classes overlap, metrics are not all 1.0
    other = BAD if words is GOOD else GOOD
    body = [rng.choice(words if r < 0.6 else SHARED if r < 0.9 else other) for r in (rng.random() for _ in range(n))]
    return "\n".join(" ".join(body[i : i + 8]) for i in range(0, n, 8))


@pytest.fixture
def data(tmp_path):
    rng = random.Random(0)
    (tmp_path / "pos").mkdir()
    with open(tmp_path / "pos" / "a.jsonl", "w") as fh:
        for i in range(300):
            fh.write(json.dumps({"id": f"p{i}", "text": _doc(rng, GOOD)}) + "\n")
    for i in range(20):  # .txt files: one document each, found by a glob
        (tmp_path / "pos" / f"book{i}.txt").write_text(_doc(rng, GOOD, 200))
    neg = [{"id": f"n{i}", "text": _doc(rng, BAD)} for i in range(500)]
    pq.write_table(pa.Table.from_pylist(neg), tmp_path / "neg.parquet")
    return tmp_path


def _train(data, *extra, capsys=None):
    args = ["classifier", "train", "--positive", str(data / "pos" / "a.jsonl"), str(data / "pos" / "*.txt")]
    args += ["--negative", str(data / "neg.parquet"), "--out", str(data / "m.bin"), "--bucket", "20000", "--json"]
    assert main(args + list(extra)) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_train_reports_held_out_metrics(data, capsys):
    report = _train(data, "--preset", "dclm", capsys=capsys)
    assert report["options"]["word_ngrams"] == 2 and report["options"]["dim"] == 100
    assert report["options"]["epoch"] == 5 and report["options"]["lr"] == 0.1 and report["options"]["min_count"] == 1
    docs = report["docs"]
    assert docs["read"] == {"positive": 320, "negative": 500}
    assert docs["train"]["positive"] == docs["train"]["negative"]  # balanced by downsampling
    assert docs["heldout"]["positive"] + docs["train"]["positive"] == 320  # the held-out split comes first
    m = report["heldout"]["metrics"]
    assert m["roc_auc"] > 0.95 and 0.8 < m["f1"] <= 1.0 and 0 < m["precision"] <= 1 and 0 < m["recall"] <= 1
    deciles = report["heldout"]["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert deciles[0]["positive_share"] < deciles[-1]["positive_share"]
    assert all(d["examples"] and "\n" not in d["examples"][0]["text"] for d in deciles)
    assert (data / "m.bin.report.json").exists() and load_model(data / "m.bin").get_labels()


def test_report_scores_are_the_stages_scores(data, capsys):
    """Training, evaluation and the quality_score stage prepare and score text through the same code."""
    report = _train(data, capsys=capsys)
    stage = QualityScore(model=str(data / "m.bin"))
    stage.setup()
    rows = pq.read_table(data / "neg.parquet").to_pylist()
    by_text = {prepare_text(r["text"])[:157]: r["text"] for r in rows}
    checked = 0
    for d in report["heldout"]["deciles"]:
        for ex in d["examples"]:
            text = by_text.get(ex["text"][:157].removesuffix("..."))
            if text is None:
                continue
            table, _ = stage.apply(pa.table({"id": ["x"], "text": [text]}))
            assert table.column("quality_score")[0].as_py() == pytest.approx(ex["score"], abs=0)
            checked += 1
    assert checked > 0


def test_training_lines_are_prepared_text():
    pos = DocSet(["a"], ["first line\nsecond line\r\n\nthird"])
    neg = DocSet(["b"], ["  click\nhere  "])
    lines = training_lines(pos, neg, "__label__hq", "__label__cc", seed=0)
    assert sorted(lines) == ["__label__cc click here", "__label__hq first line second line  third"]


def test_same_seed_same_model(data, capsys):
    _train(data, capsys=capsys)
    first = (data / "m.bin").read_bytes()
    _train(data, capsys=capsys)
    assert (data / "m.bin").read_bytes() == first
    _train(data, "--seed", "3", capsys=capsys)
    assert (data / "m.bin").read_bytes() != first


def test_explicit_heldout_and_eval(data, capsys):
    rng = random.Random(9)
    (data / "hp.jsonl").write_text("".join(json.dumps({"text": _doc(rng, GOOD)}) + "\n" for _ in range(40)))
    (data / "hn.jsonl").write_text("".join(json.dumps({"text": _doc(rng, BAD)}) + "\n" for _ in range(60)))
    report = _train(
        data, "--heldout-positive", str(data / "hp.jsonl"), "--heldout-negative", str(data / "hn.jsonl"), capsys=capsys
    )
    assert report["docs"]["heldout"] == {"positive": 40, "negative": 60}
    assert report["docs"]["train"]["positive"] == 320  # nothing split off
    args = ["classifier", "eval", str(data / "m.bin"), "--positive", str(data / "hp.jsonl")]
    assert main(args + ["--negative", str(data / "hn.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "ROC-AUC" in text and re.search(r"^\s+10\s", text, re.M)


def test_rejected_documents_as_negatives(data, capsys, monkeypatch):
    monkeypatch.chdir(data)
    write_pipeline(
        data / "p.yaml",
        """
        name: neg
        input: {format: parquet, path: neg.parquet}
        output: {path: out}
        stages:
          - {id: s, uses: sample, with: {rate: 0.5}}
        """,
    )
    stats = engine.run(config.load("p.yaml"), runner="local")
    files = rejected_files(str(data / "out"), ["s"])
    assert sum(pq.read_table(f).num_rows for f in files) == stats["rejected_docs"] > 0
    with pytest.raises(InputError, match="stages with rejected documents: s"):
        rejected_files(str(data / "out"), ["nope"])
    args = ["classifier", "train", "--positive", str(data / "pos" / "a.jsonl"), "--rejected", str(data / "out")]
    args += ["--rejected-stage", "s", "--out", str(data / "r.bin"), "--bucket", "20000", "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :])["docs"]["read"]["negative"] == stats["rejected_docs"]


def test_missing_inputs_are_one_line_errors(data, capsys):
    assert main(["classifier", "train", "--negative", str(data / "neg.parquet"), "--out", "x.bin"]) == 2
    assert "--positive" in capsys.readouterr().err
    assert main(["classifier", "train", "--positive", str(data / "nope*.jsonl"), "--negative", "y", "--out", "x"]) == 2
    assert "matches no files" in capsys.readouterr().err


def test_roc_auc_is_the_pairwise_probability():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1)  # many ties
    truth = rng.random(300) < 0.4
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(scores[truth], scores[~truth])]
    assert roc_auc(scores, truth) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert roc_auc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
    m = binary_metrics(np.array([0.9, 0.8, 0.3, 0.6]), np.array([True, False, True, False]))
    assert (m["precision"], m["recall"], m["f1"]) == (pytest.approx(1 / 3), 0.5, pytest.approx(0.4))


def test_split_is_by_id():
    docs = DocSet([f"d{i}" for i in range(2000)], ["t"] * 2000)
    train, val = split(docs, 0.1, seed=0)
    assert 150 < len(val) < 250 and len(train) + len(val) == 2000
    again_train, again_val = split(DocSet(docs.ids[::-1], docs.texts), 0.1, seed=0)
    assert set(again_val.ids) == set(val.ids)


# -- on real data: clean prose against raw web extraction ----------------------------------------------------------


def _gutenberg_chunks(path, words=300):
    text = path.read_text(encoding="utf-8", errors="replace")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    body = text[text.index("\n", start) : end] if start >= 0 and end > start else text
    out, cur = [], []
    for para in re.split(r"\r?\n\s*\r?\n", body):
        if para.strip():
            cur.append(para)
            if sum(len(p.split()) for p in cur) >= words:
                out.append("\n\n".join(cur))
                cur = []
    return out


@pytest.mark.slow
def test_corpus_prose_against_web_pages(corpus, tmp_path, capsys):
    trafilatura = pytest.importorskip("trafilatura")
    pos = [c for p in sorted((corpus / "prose-gutenberg").glob("*.txt")) for c in _gutenberg_chunks(p)]
    with open(tmp_path / "pos.jsonl", "w") as fh:
        for i, t in enumerate(pos):
            fh.write(json.dumps({"id": f"g{i}", "text": t}) + "\n")
    with open(tmp_path / "neg.jsonl", "w") as fh:
        for p in sorted((corpus / "html-readability-testpages").glob("*/source.html.gz")):
            text = trafilatura.extract(gzip.decompress(p.read_bytes()).decode("utf-8", "replace"))
            if text:
                fh.write(json.dumps({"id": p.parent.name, "text": text}) + "\n")
    neg = [str(tmp_path / "neg.jsonl"), str(corpus / "jsonl-cc-docs-dolma" / "*.gz")]
    args = ["classifier", "train", "--positive", str(tmp_path / "pos.jsonl"), "--negative", *neg]
    args += ["--out", str(tmp_path / "m.bin"), "--preset", "dclm", "--bucket", "200000", "--val-fraction", "0.2"]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["docs"]["heldout"]["negative"] >= 10
    assert report["heldout"]["metrics"]["roc_auc"] > 0.9
