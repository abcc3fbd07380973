"""The bundled recipes (pipelines/*.yaml): every file validates and uses only documented stages; fineweb.yaml runs
end to end on every WARC/ARC of ../shared/corpus on the Ray runner with conservation; dclm.yaml runs with a
classifier trained by `curate classifier train`, and without one stops naming that command."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import REPO

from curate import config, engine
from curate.cli import main as curate
from curate.config.registry import load as load_stage
from curate.output.verify import verify

PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))
# every WARC and ARC file of the corpus (WARC, WAT, WET, ARC and their WARC conversions)
CORPUS_CRAWLS = "*/*.*arc*.gz"


def _uses(path: Path) -> list[str]:
    return [s["uses"] for s in yaml.safe_load(path.read_text())["stages"]]


def test_the_recipes_are_there():
    names = {p.name for p in PIPELINES}
    assert {"fineweb.yaml", "refinedweb.yaml", "dclm.yaml"} <= names


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_bundled_pipeline_validates(path, capsys):
    assert curate(["validate", str(path)]) == 0, capsys.readouterr()
    assert ": ok" in capsys.readouterr().out


def test_curate_stages_documents_every_stage_the_recipes_use(capsys):
    assert curate(["stages"]) == 0
    listing = capsys.readouterr().out
    for path in PIPELINES:
        for name in _uses(path):
            assert f"\n{name}  (" in "\n" + listing, f"{path.name}: `curate stages` does not list {name}"
            assert (load_stage(name).__doc__ or "").strip(), f"{name} has no description"


def test_fineweb_recipe_is_the_published_chain():
    """The order of FineWeb's base processing, MinHash by its preset, then PII (datatrove's examples/fineweb.py)."""
    stages = yaml.safe_load((Path(PIPELINES[0]).parent / "fineweb.yaml").read_text())["stages"]
    assert [s["uses"] for s in stages] == [
        "url_filter", "trafilatura", "fasttext_langid", "gopher_repetition", "gopher_quality", "c4_quality",
        "fineweb_quality", "minhash", "pii",
    ]  # fmt: skip
    by_id = {s["id"]: s.get("with", {}) for s in stages}
    assert by_id["extract"]["favour_precision"] is True
    assert by_id["lang"] == {"languages": ["en"], "language_threshold": 0.65}
    assert by_id["c4"]["filter_no_terminal_punct"] is False
    assert by_id["dedup"] == {"preset": "fineweb"}
    plan = config.load("fineweb.yaml", check_input=False).stages[7].build().plan
    assert (plan.ngram, plan.bands, plan.rows, plan.min_jaccard) == (5, 14, 8, None)


def test_refinedweb_and_dclm_dedup_as_published():
    """RefinedWeb: fuzzy dedup, then exact substring dedup of spans of 50 or more tokens (every copy), then URL dedup
    (sec. 3.3). DCLM-Baseline: BFF at its published settings (13-grams, 0.8, old-both, fp 0.01) in place of MinHash."""
    rw = config.load("refinedweb.yaml", check_input=False).stages
    assert [s.uses for s in rw][-3:] == ["minhash", "substring_dedup", "url_dedup"]
    substr = rw[-2].build()
    assert (substr.min_tokens, substr.remove) == (50, "all")
    dclm = {s.id: s for s in config.load("dclm.yaml", check_input=False).stages}
    assert "minhash" not in [s.uses for s in dclm.values()] and dclm["dedup"].uses == "bloom_dedup"
    bff = dclm["dedup"].build()
    published = ("bff", 13, 13, 0.8, 0.8, 0.01)
    assert (bff.mode, bff.ngram, bff.min_ngram, bff.threshold, bff.document_threshold, bff.fp_rate) == published


@pytest.mark.e2e
def test_fineweb_on_every_corpus_crawl_on_ray(corpus, tmp_path, ray_session):
    """fineweb.yaml on all WARC/ARC files of the corpus: every document accounted for, `curate verify` clean."""
    out = tmp_path / "out"
    crawls = sorted(corpus.glob(CORPUS_CRAWLS))
    assert len(crawls) >= 10
    pipeline = config.load("fineweb.yaml", [f"input.path={corpus}/{CORPUS_CRAWLS}", f"output.path={out}"])
    stats = engine.run(pipeline, runner="ray")
    assert stats["conserved"]
    rejected = sum(sum(s["reasons"].values()) for s in stats["stages"])
    assert stats["input_docs"] == stats["output_docs"] + rejected
    assert 0 < stats["output_docs"] < stats["input_docs"]
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["lang"]["reasons"].get("wrong_language", 0) > 0
    assert "dedup" in by_id and "pii" in by_id
    # the copycat ARCs and their WARC conversions hold the same captures: MinHash removes one of each pair
    assert by_id["dedup"]["reasons"].get("near_duplicate", 0) > 0
    assert json.loads((out / "stats.json").read_text())["output_docs"] == stats["output_docs"]
    report = verify(str(out))
    assert report.ok, report.problems()


def test_llama3_recipe_is_the_papers_chain():
    """LLaMA 3 sec. 3.1.1-3.1.2 in the paper's order, with the published values where there are any."""
    stages = config.load("llama3.yaml", check_input=False).stages
    assert [s.uses for s in stages] == [
        "url_filter", "fast_extract", "fasttext_langid", "url_dedup", "minhash", "line_dedup", "line_repetition",
        "c4_badwords", "token_kl", "quality_score", "score_top", "topic", "mix",
    ]  # fmt: skip
    by_id = {s.id: s.build() for s in stages}
    assert by_id["url_dedup"].keep == "newest"
    assert (by_id["line_dedup"].threshold, by_id["line_dedup"].bucket_docs) == (6, 30_000_000)
    assert by_id["dirty_words"].min_count > 1 and by_id["token_kl"].max_kl is not None
    assert by_id["mix"].by == "topic" and by_id["mix"].rates


@pytest.mark.e2e
def test_llama3_on_every_corpus_crawl_on_ray(corpus, tmp_path, ray_session, monkeypatch):
    """llama3.yaml on all WARC/ARC files of the corpus on Ray, with a classifier from `curate classifier train`:
    every document accounted for, every step ran, `curate verify` clean."""
    monkeypatch.chdir(tmp_path)
    pos = _texts(tmp_path / "pos.jsonl", [f"{t} Chapter {i}." for i in range(40) for t in PROSE])
    neg = _texts(tmp_path / "neg.jsonl", [f"{t} {i}" for i in range(40) for t in SPAM])
    train = ["classifier", "train", "--preset", "dclm", "--bucket", "20000", "--positive", str(pos)]
    assert curate([*train, "--negative", str(neg), "--out", "models/llama3-quality.bin"]) == 0
    out = tmp_path / "out"
    model = tmp_path / "models" / "llama3-quality.bin"  # absolute: the session's Ray workers have their own cwd
    overrides = [f"input.path={corpus}/{CORPUS_CRAWLS}", f"output.path={out}", f"stages.quality.model={model}"]
    pipeline = config.load("llama3.yaml", overrides)
    stats = engine.run(pipeline, runner="ray")
    assert stats["conserved"]
    rejected = sum(sum(s["reasons"].values()) for s in stats["stages"])
    assert stats["input_docs"] == stats["output_docs"] + rejected
    assert 0 < stats["output_docs"] < stats["input_docs"]
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["url_dedup"]["reasons"].get("duplicate_url", 0) > 0  # the corpus holds repeated captures
    assert by_id["line_dedup"]["counters"]["units_counted"] > 0
    assert by_id["token_kl"]["counters"]["corpus_tokens"] > 0
    assert by_id["topic"]["counters"]["topics"] > 1
    assert any(k.startswith("docs:") for k in by_id["mix"]["counters"])
    assert verify(str(out)).ok


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["refinedweb", "dclm", "c4", "gopher", "extract"])
def test_recipe_on_every_corpus_crawl_on_ray(name, corpus, tmp_path, ray_session, monkeypatch):
    """The other bundled recipes on all WARC/ARC files of the corpus on Ray (fineweb, llama3 and fineweb2-ko have
    their own tests): every document accounted for, every stage ran, `curate verify` clean."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    overrides = [f"input.path={corpus}/{CORPUS_CRAWLS}", f"output.path={out}"]
    if name == "dclm":  # its classifier, from the command the recipe names (absolute: Ray workers' cwd differs)
        pos = _texts(tmp_path / "pos.jsonl", [f"{t} Chapter {i}." for i in range(40) for t in PROSE])
        neg = _texts(tmp_path / "neg.jsonl", [f"{t} {i}" for i in range(40) for t in SPAM])
        model = tmp_path / "models" / "dclm-quality.bin"
        train = ["classifier", "train", "--preset", "dclm", "--bucket", "20000", "--positive", str(pos)]
        assert curate([*train, "--negative", str(neg), "--out", str(model)]) == 0
        overrides.append(f"stages.quality.model={model}")
    pipeline = config.load(f"{name}.yaml", overrides)
    stats = engine.run(pipeline, runner="ray")
    assert stats["conserved"]
    rejected = sum(sum(s["reasons"].values()) for s in stats["stages"])
    assert stats["input_docs"] == stats["output_docs"] + rejected
    assert 0 < stats["output_docs"] < stats["input_docs"]
    assert [s["id"] for s in stats["stages"] if s["id"] != "input"] == [s.id for s in pipeline.stages]
    assert verify(str(out)).ok


def _texts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


PROSE = [
    "The committee met on Tuesday to review the budget for the coming year, and the members agreed that the "
    "library should stay open in the evenings.",
    "She walked along the river in the early morning, thinking about the letter her brother had sent from abroad.",
    "In the spring the farmers of the valley plant barley and oats, and in the autumn they bring the harvest in.",
]
SPAM = [
    "BUY NOW cheap pills best price click here free shipping casino bonus win win win",
    "Home | About | Contact | Login | Register | Cart (0) | Checkout | Privacy | Terms",
    "hot deals hot deals subscribe now 50% off limited offer click click click",
]


@pytest.mark.e2e
def test_dclm_with_a_model_from_the_classifier_command(tmp_path, monkeypatch, capsys):
    """Without the model file dclm.yaml stops at once (exit 2) naming `curate classifier train`; with a model that
    the command trained, it runs and keeps the top 10% by score."""
    monkeypatch.chdir(tmp_path)
    args = ["run", "dclm.yaml", "--runner", "local", "--input", "sample:crawl?pages=120", "--output", "out"]
    assert curate(args) == 2
    err = capsys.readouterr().err
    assert "fastText model not found: 'models/dclm-quality.bin'" in err and "curate classifier train" in err
    assert not (tmp_path / "out" / "_SUCCESS").exists()

    pos = _texts(tmp_path / "pos.jsonl", [f"{t} Chapter {i}." for i in range(40) for t in PROSE])
    neg = _texts(tmp_path / "neg.jsonl", [f"{t} {i}" for i in range(40) for t in SPAM])
    train = ["classifier", "train", "--preset", "dclm", "--bucket", "20000", "--positive", str(pos)]
    assert curate([*train, "--negative", str(neg), "--out", "models/dclm-quality.bin"]) == 0
    assert (tmp_path / "models" / "dclm-quality.bin").is_file()

    assert curate(args) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    by_id = {s["id"]: s for s in stats["stages"]}
    assert stats["conserved"]
    top = by_id["top"]
    assert top["docs_in"] > 0 and stats["output_docs"] == round(0.1 * top["docs_in"])
    scores = pq.read_table(tmp_path / "out" / "data", columns=["quality_score"]).column("quality_score").to_pylist()
    below = pq.read_table(tmp_path / "out" / "rejected" / "top", columns=["quality_score"]).column(0).to_pylist()
    assert min(scores) >= max(below)


def test_txt_words_cuts_a_book_into_documents(tmp_path):
    """`curate classifier train --txt-words N`: a plain-text file becomes documents of >= N words, cut at blank
    lines (the DCLM recipe's positives are whole books)."""
    from curate_filters.quality.classifier import read_docs

    paras = [" ".join(f"w{i}_{k}" for k in range(40)) for i in range(10)]  # 10 paragraphs of 40 words
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(paras) + "\n")
    assert len(read_docs([str(book)])) == 1
    docs = read_docs([str(book)], txt_words=100)
    assert [len(t.split()) for t in docs.texts] == [120, 120, 160]  # the short tail joins the last piece
    assert " ".join(" ".join(docs.texts).split()) == " ".join(" ".join(paras).split())
