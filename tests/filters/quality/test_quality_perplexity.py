"""perplexity: documents scored by a small LLaMA trained with `curate train`, bucketed CCNet's way."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_util import junk, sentences, tiny_yaml, write_output

from curate import config, engine
from curate.cli import main
from curate.errors import ConfigError, StageError

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from curate_filters.quality.perplexity import Perplexity  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ppl")
    out = write_output(tmp / "out", sentences(300))
    cfg = tmp / "c.yaml"
    cfg.write_text(tiny_yaml(tmp / "run"))
    assert main(["train", str(cfg), "--data", str(out), "--set", "train.max_steps=30"]) == 0
    return tmp / "run"


def _stage(run_dir, **kw):
    stage = Perplexity(model=str(run_dir), device="cpu", **kw)
    stage.setup()
    return stage


def _direct(stage, text):
    """The model's own mean cross-entropy over [EOS] + tokens, window by window, without the stage's batching."""
    ids = [stage._tok.eos_id, *stage._tok.encode(text)]
    total, count = 0.0, 0
    n = stage._context
    for start in range(0, len(ids) - 1, n):
        w = torch.tensor([ids[start : start + n + 1]])
        with torch.no_grad():
            _, loss = stage._model(w[:, :-1], w[:, 1:])
        total += float(loss) * (w.size(1) - 1)
        count += w.size(1) - 1
    return math.exp(total / count)


def test_perplexity_equals_the_models_own_loss(run_dir):
    stage = _stage(run_dir, max_tokens=None, batch_size=3)
    docs = sentences(5, seed=3) + [" ".join(sentences(12, seed=4))] + junk(4) + ["a"]  # one spans several windows
    table, reasons = stage.apply(pa.table({"id": [str(i) for i in range(len(docs))], "text": docs}))
    assert reasons is None
    ours = table.column("perplexity").to_pylist()
    assert len(stage._tok.encode(docs[5])) > stage._context  # more than one window
    for text, value in zip(docs, ours):
        assert value == pytest.approx(_direct(stage, text), rel=1e-4)


def test_clean_text_scores_lower_than_junk(run_dir):
    stage = _stage(run_dir)
    good, bad = sentences(30, seed=7), junk(30, seed=8)
    table, _ = stage.apply(pa.table({"id": [str(i) for i in range(60)], "text": good + bad}))
    ppl = np.array(table.column("perplexity").to_pylist())
    assert np.median(ppl[:30]) < np.median(ppl[30:])


def test_batching_does_not_change_scores_and_empty_is_null(run_dir):
    docs = sentences(9, seed=5) + ["", junk(1)[0]]
    one = _stage(run_dir, batch_size=1).apply(pa.table({"id": list("abcdefghijk"), "text": docs})).table
    many = _stage(run_dir, batch_size=16).apply(pa.table({"id": list("abcdefghijk"), "text": docs})).table
    a, b = one.column("perplexity").to_pylist(), many.column("perplexity").to_pylist()
    assert a[9] is None and b[9] is None  # no tokens, no perplexity
    assert [x for x in a if x is not None] == pytest.approx([x for x in b if x is not None], rel=1e-5)


def test_max_tokens_truncates(run_dir):
    text = " ".join(sentences(12, seed=4))
    full = _stage(run_dir, max_tokens=None).apply(pa.table({"id": ["a"], "text": [text]})).table
    head = _stage(run_dir, max_tokens=20).apply(pa.table({"id": ["a"], "text": [text]})).table
    stage = _stage(run_dir)
    first = stage._tok.decode(stage._tok.encode(text)[:20])
    assert head.column("perplexity")[0].as_py() == pytest.approx(_direct(stage, first), rel=1e-4)
    assert head.column("perplexity")[0].as_py() != full.column("perplexity")[0].as_py()


def test_errors(tmp_path):
    with pytest.raises(StageError, match="no checkpoint"):
        Perplexity(model=str(tmp_path / "nope"), device="cpu").setup()
    with pytest.raises(ConfigError, match="max_tokens"):
        Perplexity(model="x", max_tokens=0)


def test_ccnet_buckets_in_a_pipeline(run_dir, make_workdir, tmp_path):
    """perplexity, then score_buckets head/middle/tail at the 30th/60th percentiles of each language."""
    rows = [{"id": f"e{i}", "text": t, "language": "en"} for i, t in enumerate(sentences(60, seed=11) + junk(30))]
    rows += [{"id": f"x{i}", "text": t, "language": "xx"} for i, t in enumerate(junk(40, seed=12))]
    make_workdir(
        docs={"in/a.parquet": rows},
        pipeline=f"""
        name: ccnet
        input: {{format: parquet, path: in}}
        output: {{path: out}}
        stages:
          - {{id: ppl, uses: perplexity, with: {{model: "{run_dir}", device: cpu}}}}
          - id: buckets
            uses: score_buckets
            with: {{column: perplexity, percentiles: [30, 60], labels: [head, middle, tail], by_language: true}}
        """,
    )
    stats = engine.run(config.load("p.yaml"), runner="local")
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    assert len(kept) == len(rows)
    en = [r for r in kept if r["language"] == "en"]
    heads = [r for r in en if r["bucket"] == "head"]
    assert len(heads) == pytest.approx(0.3 * len(en), abs=1)
    # the model learnt the grammar: the head of English is its clean sentences, the tail mostly junk
    assert all(r["id"].startswith("e") and int(r["id"][1:]) < 60 for r in heads)
    counters = {s["id"]: s for s in stats["stages"]}["buckets"]["counters"]
    assert counters["cut:en:30"] < counters["cut:en:60"] and "cut:xx:30" in counters


def test_prefix_tokenization_gives_the_first_tokens_of_the_whole_text(run_dir):
    stage = _stage(run_dir, max_tokens=12)
    texts = [
        " ".join(sentences(20, seed=13)),
        "word  " * 100,  # double spaces: the cut never falls inside a run of spaces
        "x" * 400 + " tail",  # one very long token run: too few tokens in the prefix, so the whole text
        "ünïcödé wörds, and\tTabs\nand lines " * 30,
        "short",
        "",
    ]
    full = [list(ids)[:12] for ids in stage._tok.encode_batch(texts)]
    assert stage._encode(texts) == full
