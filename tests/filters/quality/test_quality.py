"""quality_score (DCLM's fastText scoring), score_threshold, score_top and score_buckets."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.cli import main
from curate.errors import ConfigError, StageError
from curate_filters.quality.classifier import FastTextOptions, Scorer, load_model, prepare_text, train_model
from curate_filters.quality.score import QualityScore, ScoreThreshold
from curate_filters.sampling.by_score import ScoreBuckets, weighted_cuts
from curate_filters.sampling.common import uniform

fasttext = pytest.importorskip("fasttext")

GOOD = "the committee reviewed the evidence carefully and published a detailed report on the river".split()
BAD = "click here buy now free shipping login subscribe cookies menu home share tweet".split()


def dclm_score(model, content: str) -> float:
    """DCLM's scorer, verbatim (baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py)."""
    text = " ".join(content.strip().splitlines())
    pred = model.predict(text)
    (pred_label, pred_prob) = pred
    pred_label = pred_label[0]
    hq_prob = pred_prob[0]
    if pred_label == "__label__cc":
        hq_prob = 1 - hq_prob
    return hq_prob


def train_tiny(path, labels=("hq", "cc"), seed=0, vocab=(GOOD, BAD)):
    """A small fastText model in DCLM's format (__label__hq vs __label__cc, word bigrams)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(300):
        for label, words in zip(labels, vocab):
            lines.append(f"__label__{label} " + " ".join(rng.choices(words, k=25)))
    rng.shuffle(lines)
    # through curate's trainer, which works around fasttext-numpy2's uninitialised matrices (see train_model)
    train_model(lines, FastTextOptions(word_ngrams=2, dim=16, bucket=20_000), str(path))
    return path


def mixed_texts(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(GOOD, k=rng.randint(0, 30)) + rng.choices(BAD, k=rng.randint(0, 30))
        rng.shuffle(words)
        sep = ["\n", "\r\n", " \n\n ", "\u2028", "\t"][i % 5]
        out.append(sep.join(" ".join(words[j : j + 4]) for j in range(0, len(words), 4)))
    return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("ft") / "dclm.bin")


def test_prepare_text_is_dclms_line_join():
    assert prepare_text("  a b\nc\r\nd\n\ne  \n") == "a b c d  e"
    assert prepare_text(None) == ""
    assert "\n" not in prepare_text("x\u2028y\x85z\rw")


def test_score_equals_dclms_own_scorer(model_path):
    model = load_model(model_path)
    texts = mixed_texts(200) + ["", "   ", "\n\n", "one", "click here\nbuy now"]
    stage = QualityScore(model=str(model_path), column="dclm_score")
    stage.setup()
    table, reasons = stage.apply(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    assert reasons is None
    ours = table.column("dclm_score").to_numpy()
    theirs = np.array([dclm_score(model, t) for t in texts], np.float64).astype(np.float32)
    assert table.schema.field("dclm_score").type == pa.float32()
    assert np.array_equal(ours, theirs)  # bit for bit, not approximately
    assert ours.min() < 0.2 and ours.max() > 0.8  # the model separates the two vocabularies


def test_score_of_a_multi_label_model_is_the_labels_probability(tmp_path):
    path = train_tiny(tmp_path / "three.bin", labels=("hq", "cc", "xx"), vocab=(GOOD, BAD, ["zzz", "yyy", "qqq"]))
    model = load_model(path)
    texts = mixed_texts(50)
    scores = Scorer(model, "hq")(texts)
    for t, s in zip(texts, scores):
        labels, probs = model.predict(prepare_text(t), k=-1)
        assert s == pytest.approx(dict(zip(labels, probs))["__label__hq"], abs=1e-7)


def test_unknown_label_and_missing_model_are_clear_errors(model_path, tmp_path):
    with pytest.raises(StageError, match="no label '__label__edu'"):
        QualityScore(model=str(model_path), label="edu").setup()
    with pytest.raises(StageError, match="not found"):
        QualityScore(model=str(tmp_path / "nope.bin")).setup()
    with pytest.raises(ConfigError, match="reserved"):
        QualityScore(model="m.bin", column="text")


def _write_input(path, n=400, seed=3, extra=None):
    texts = mixed_texts(n, seed)
    rows = [{"id": f"d{i:05d}", "text": t, "language": ["en", "de", "fr"][i % 3]} for i, t in enumerate(texts)]
    for r in rows:
        r.update(extra(r) if extra else {})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return rows


def test_two_classifiers_coexist_in_a_pipeline(model_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = train_tiny(tmp_path / "edu.bin", seed=5, vocab=(BAD, GOOD))  # the opposite opinion
    _write_input(tmp_path / "in" / "a.parquet", 120)
    pipe = write_pipeline(
        tmp_path / "p.yaml",
        f"""
        name: two
        input: {{format: parquet, path: in}}
        output: {{path: out}}
        stages:
          - {{id: dclm, uses: quality_score, with: {{model: "{model_path}", column: dclm_score}}}}
          - {{id: edu, uses: quality_score, with: {{model: "{other}", column: edu_score}}}}
          - {{id: keep, uses: score_threshold, with: {{column: dclm_score, min_score: 0.5}}}}
        """,
    )
    stats = engine.run(config.load(str(pipe)), runner="local")
    kept = pq.read_table(tmp_path / "out" / "data")
    assert {"dclm_score", "edu_score"} <= set(kept.column_names)
    assert pc_min(kept, "dclm_score") >= 0.5
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["keep"]["kept"] == kept.num_rows and by_id["keep"]["reasons"].get("below_min_score", 0) > 0
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "keep")
    assert max(rejected.column("dclm_score").to_pylist()) < 0.5
    # the two classifiers disagree: their scores are anti-correlated
    d, e = kept.column("dclm_score").to_numpy(), kept.column("edu_score").to_numpy()
    assert np.corrcoef(d, e)[0, 1] < 0


def pc_min(table, column):
    return min(table.column(column).to_pylist())


# -- score_threshold -----------------------------------------------------------------------------------------------


def _scored(scores, ids=None):
    ids = ids or [f"d{i}" for i in range(len(scores))]
    return pa.table({"id": ids, "text": ["x"] * len(scores), "s": pa.array(scores, pa.float64())})


def test_min_max_and_missing_scores():
    stage = ScoreThreshold(column="s", min_score=0.2, max_score=0.8)
    _, reasons = stage.apply(_scored([0.1, 0.2, 0.5, 0.8, 0.9, None, float("nan")]))
    assert reasons.to_pylist() == [
        "below_min_score",
        None,
        None,
        None,
        "above_max_score",
        "missing_score",
        "missing_score",
    ]


def test_threshold_on_an_integer_column_and_a_text_column():
    table = pa.table({"id": ["a", "b"], "text": ["x", "y"], "n": pa.array([1, 5], pa.int32())})
    assert ScoreThreshold(column="n", min_score=3).apply(table).reasons.to_pylist() == ["below_min_score", None]
    with pytest.raises(StageError, match="not numbers"):
        ScoreThreshold(column="text", min_score=3).apply(table)


def test_threshold_needs_a_rule():
    with pytest.raises(ConfigError, match="min_score, max_score or pareto_alpha"):
        ScoreThreshold(column="s")
    with pytest.raises(ConfigError, match="above max_score"):
        ScoreThreshold(column="s", min_score=0.9, max_score=0.1)


@pytest.mark.parametrize("alpha", [3.0, 9.0])
def test_pareto_rule_keeps_with_gpt3s_probability(alpha):
    # keep when pareto(alpha) > 1 - score: P = (2 - score) ** -alpha for numpy's (Lomax) pareto
    n = 20_000
    scores = np.repeat([0.2, 0.6, 0.9, 1.0], n // 4)
    stage = ScoreThreshold(column="s", pareto_alpha=alpha, seed=7)
    reasons = np.array(stage.apply(_scored(scores.tolist())).reasons.to_pylist(), object)
    for s in (0.2, 0.6, 0.9, 1.0):
        kept = float(np.mean(reasons[scores == s] == None))  # noqa: E711
        assert kept == pytest.approx((2 - s) ** -alpha, abs=0.015), s
    # numpy's own sampler agrees in distribution (GPT-3's formulation)
    draws = np.random.default_rng(0).pareto(alpha, n) > 1 - 0.6
    assert float(np.mean(reasons[scores == 0.6] == None)) == pytest.approx(draws.mean(), abs=0.02)  # noqa: E711


def test_pareto_decisions_do_not_depend_on_batching():
    scores = np.random.default_rng(1).random(3000).tolist()
    stage = ScoreThreshold(column="s", pareto_alpha=3.0, seed=11)
    whole = stage.apply(_scored(scores)).reasons.to_pylist()
    ids = [f"d{i}" for i in range(3000)]
    parts = []
    for lo, hi in ((0, 7), (7, 1500), (1500, 3000)):
        parts += stage.apply(_scored(scores[lo:hi], ids[lo:hi])).reasons.to_pylist()
    assert whole == parts
    other = ScoreThreshold(column="s", pareto_alpha=3.0, seed=12).apply(_scored(scores)).reasons.to_pylist()
    assert other != whole  # the seed matters


# -- score_top -----------------------------------------------------------------------------------------------------


def _top_input(tmp_path, n=2000, files=3):
    rng = np.random.default_rng(5)
    # scores with many ties (two decimals) and lengths from 1 to 200 words, so docs and tokens cuts differ
    scores = np.round(rng.random(n), 2)
    lengths = rng.integers(1, 200, n)
    rows = [{"id": f"d{i:05d}", "text": " ".join(["w"] * int(lengths[i])), "s": float(scores[i])} for i in range(n)]
    rows[3]["s"] = None  # no score: rejected as missing_score, not counted in the fraction
    for k in range(files):
        (tmp_path / "in").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows[k::files]), tmp_path / "in" / f"p{k}.parquet")
    return rows


TOP = """
name: top
input: {format: parquet, path: in}
output: {path: OUT}
engine: {batch_rows: 128}
stages:
  - {id: top, uses: score_top, with: {column: s, keep_top: FRACTION, weight: WEIGHT}}
"""


def _run_top(tmp_path, fraction, weight, runner="local", extra=""):
    out = f"out-{weight}-{runner}-{fraction}{extra.replace(' ', '').replace(':', '').replace(',', '')}"
    body = TOP.replace("OUT", out).replace("FRACTION", str(fraction)).replace("WEIGHT", weight)
    if extra:
        body = body.replace("weight: " + weight, f"weight: {weight}, {extra}")
    pipe = write_pipeline(tmp_path / f"{out}.yaml", body)
    stats = engine.run(config.load(str(pipe)), runner=runner)
    kept = pq.read_table(tmp_path / out / "data")
    return kept, stats


@pytest.mark.parametrize("fraction", [0.1, 0.37])
def test_keep_top_fraction_of_documents(tmp_path, monkeypatch, fraction):
    monkeypatch.chdir(tmp_path)
    rows = _top_input(tmp_path)
    kept, stats = _run_top(tmp_path, fraction, "docs")
    scored = [r for r in rows if r["s"] is not None]
    assert abs(kept.num_rows / len(scored) - fraction) <= 0.005
    assert kept.num_rows == round(fraction * len(scored))  # exact: ties are broken, not all kept
    top = {s["id"]: s for s in stats["stages"]}["top"]
    assert top["reasons"]["missing_score"] == 1
    cut = top["counters"]["cut_score"]
    assert min(kept.column("s").to_pylist()) == cut
    assert all(r["s"] <= cut for r in scored if r["id"] not in set(kept.column("id").to_pylist()))
    assert top["counters"]["cut_rank"] == kept.num_rows and top["counters"]["scored_docs"] == len(scored)


def test_keep_top_fraction_of_tokens(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _top_input(tmp_path)
    kept, stats = _run_top(tmp_path, 0.2, "tokens")
    total = sum(len(r["text"].split()) for r in rows if r["s"] is not None)
    kept_tokens = sum(len(t.split()) for t in kept.column("text").to_pylist())
    assert abs(kept_tokens / total - 0.2) <= 0.005
    counters = {s["id"]: s for s in stats["stages"]}["top"]["counters"]
    assert counters["kept_tokens"] == kept_tokens and counters["total_tokens"] == total
    docs_kept, _ = _run_top(tmp_path, 0.2, "docs")
    assert docs_kept.num_rows != kept.num_rows  # by tokens is a different cut than by documents


def test_keep_top_from_a_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _top_input(tmp_path, n=4000)
    kept, stats = _run_top(tmp_path, 0.25, "docs", extra="sample_fraction: 0.3")
    counters = {s["id"]: s for s in stats["stages"]}["top"]["counters"]
    assert 0.25 * 4000 < counters["sampled_docs"] < 0.35 * 4000
    assert abs(kept.num_rows / (len(rows) - 1) - 0.25) < 0.03  # an estimate: close, not exact


@pytest.mark.ray
def test_keep_top_same_on_both_runners(tmp_path, monkeypatch, ray_session):
    monkeypatch.chdir(tmp_path)
    _top_input(tmp_path)
    local, s1 = _run_top(tmp_path, 0.3, "tokens", "local")
    ray_kept, s2 = _run_top(tmp_path, 0.3, "tokens", "ray")
    assert sorted(local.column("id").to_pylist()) == sorted(ray_kept.column("id").to_pylist())
    top1 = {s["id"]: s for s in s1["stages"]}["top"]
    top2 = {s["id"]: s for s in s2["stages"]}["top"]
    assert top1["counters"] == top2["counters"]


# -- score_buckets -------------------------------------------------------------------------------------------------


def test_weighted_cuts():
    score = np.arange(10, dtype=float)
    assert weighted_cuts(score, np.ones(10), [30, 60]) == [2.0, 5.0]
    # all the weight on the last document: every cut is its score
    w = np.zeros(10)
    w[-1] = 1
    assert weighted_cuts(score, w, [30, 60]) == [9.0, 9.0]


def test_fixed_cuts_and_labels():
    stage = ScoreBuckets(column="s", cuts=[0.3, 0.6], labels=["low", "mid", "high"])
    out = stage.apply_global(_FakeDocs(_scored([0.1, 0.3, 0.59, 0.6, 0.99, None])))
    assert out.table.column("bucket").to_pylist() == ["low", "mid", "mid", "high", "high", None]
    assert stage.columns().output == {"bucket": pa.string()}
    numbered = ScoreBuckets(column="s", cuts=[0.5], bucket_column="b")
    out = numbered.apply_global(_FakeDocs(_scored([0.1, 0.7, None])))
    assert out.table.column("b").to_pylist() == [0, 1, None] and out.table.schema.field("b").type == pa.int32()


class _FakeDocs:
    """The Docs protocol over one in-memory table (enough for stages that derive, collect and map)."""

    def __init__(self, table):
        self.table = table

    def derive(self, fn):
        return _FakeTable(fn(self.table))

    def map_batches(self, fn):
        return _FakeDocs(fn(self.table))


class _FakeTable:
    def __init__(self, table):
        self.table = table

    def collect(self):
        return self.table


def test_bucket_config_errors():
    with pytest.raises(ConfigError, match="exactly one of"):
        ScoreBuckets(column="s")
    with pytest.raises(ConfigError, match="3 buckets"):
        ScoreBuckets(column="s", percentiles=[30, 60], labels=["a", "b"])
    with pytest.raises(ConfigError, match="ascending"):
        ScoreBuckets(column="s", cuts=[0.6, 0.3])


BUCKETS = """
name: buckets
input: {format: parquet, path: in}
output: {path: out}
engine: {batch_rows: 100}
stages:
  - {id: b, uses: score_buckets, with: WITH}
"""


def test_percentile_buckets_per_language_ccnet_style(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(3000):
        lang = ["en", "de"][i % 2]
        # German perplexities are an order of magnitude higher: one global cut would put all of them in the tail
        ppl = float(rng.lognormal(3 if lang == "en" else 5.5, 0.5))
        rows.append({"id": f"d{i:05d}", "text": "a b c", "language": lang, "perplexity": ppl})
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "a.parquet")
    spec = "{column: perplexity, percentiles: [30, 60], labels: [head, middle, tail], by_language: true}"
    write_pipeline(tmp_path / "p.yaml", BUCKETS.replace("WITH", spec))
    stats = engine.run(config.load("p.yaml"), runner="local")
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    for lang in ("en", "de"):
        mine = [r for r in kept if r["language"] == lang]
        share = {b: sum(r["bucket"] == b for r in mine) / len(mine) for b in ("head", "middle", "tail")}
        assert share["head"] == pytest.approx(0.3, abs=0.005) and share["middle"] == pytest.approx(0.3, abs=0.005)
        heads = [r["perplexity"] for r in mine if r["bucket"] == "head"]
        tails = [r["perplexity"] for r in mine if r["bucket"] == "tail"]
        assert max(heads) < min(tails)
    counters = {s["id"]: s for s in stats["stages"]}["b"]["counters"]
    assert counters["cut:en:30"] < counters["cut:en:60"] < counters["cut:de:30"]  # the cuts are per language
    assert counters["docs:head"] + counters["docs:middle"] + counters["docs:tail"] == 3000


def test_token_weighted_bins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(4)
    rows = [
        {"id": f"d{i:05d}", "text": " ".join(["w"] * int(rng.integers(1, 300))), "q": float(rng.random())}
        for i in range(2000)
    ]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "a.parquet")
    write_pipeline(tmp_path / "p.yaml", BUCKETS.replace("WITH", "{column: q, bins: 4, weight: tokens}"))
    engine.run(config.load("p.yaml"), runner="local")
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    total = sum(len(r["text"].split()) for r in kept)
    for b in range(4):
        tokens = sum(len(r["text"].split()) for r in kept if r["bucket"] == b)
        assert tokens / total == pytest.approx(0.25, abs=0.01)


# -- validation ----------------------------------------------------------------------------------------------------


def test_validate_names_missing_score_columns_and_typos(tmp_path, monkeypatch, capsys, model_path):
    monkeypatch.chdir(tmp_path)
    _write_input(tmp_path / "in" / "a.parquet", 10)
    cases = {
        "{id: t, uses: score_threshold, with: {column: dclm_score, min_score: 0.5}}": "needs column(s) dclm_score",
        "{id: t, uses: quality_scor, with: {model: m.bin}}": "did you mean 'quality_score'",
        "{id: t, uses: score_threshold, with: {min_scor: 0.5}}": "did you mean 'min_score'",
        "{id: t, uses: score_top, with: {keep_top: 0.1, weight: words}}": "one of 'docs', 'tokens'",
        "{id: t, uses: score_top, with: {keep_top: 1.5}}": "keep_top must be between 0 and 1",
        "{id: t, uses: score_buckets, with: {percentiles: [30, 60], labels: [a, b]}}": "3 buckets",
        "{id: t, uses: sampel, with: {rate: 0.1}}": "did you mean 'sample'",
    }
    for stage, expected in cases.items():
        pipe = write_pipeline(
            tmp_path / "p.yaml",
            f"name: v\ninput: {{format: parquet, path: in}}\nstages:\n  - {stage}\n",
        )
        assert main(["validate", str(pipe)]) == 2, stage
        err = capsys.readouterr().err
        assert expected in err and "p.yaml:" in err, (stage, err)
    # a score column the pipeline adds earlier satisfies the check
    pipe = write_pipeline(
        tmp_path / "ok.yaml",
        f"""
        name: v
        input: {{format: parquet, path: in}}
        stages:
          - {{id: q, uses: quality_score, with: {{model: "{model_path}", column: dclm_score}}}}
          - {{id: t, uses: score_threshold, with: {{column: dclm_score, min_score: 0.5}}}}
        """,
    )
    assert main(["validate", str(pipe)]) == 0
    assert "dclm_score" in capsys.readouterr().out


def test_uniform_is_stable():
    # pinned values: a change of hash would silently change every sample and Pareto decision
    assert uniform(0, ["a", "b"]).tolist() == [0.7417194198289921, 0.38296226762766417]
    assert 6680814605510619 / 2**53 == 0.7417194198289921  # top 53 bits of blake2b-64("0:a"), big-endian
    assert uniform(0, ["a"])[0] == uniform(0, ["a"])[0] != uniform(1, ["a"])[0]
    assert uniform(0, ["a"], salt="x:")[0] != uniform(0, ["a"])[0]
