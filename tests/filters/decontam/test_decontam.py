"""decontaminate and `curate contamination`: normalisation and hashing against datatrove's, evaluation files and
presets, document and span mode against the brute-force oracle (filters/decontam/reference.py) on corpus pages with
planted evaluation items, and the command on a finished output."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_curate

from curate_filters.decontam import reference
from curate_filters.decontam.evals import EvalSpec, items_of
from curate_filters.decontam.index import IndexSettings, Normalizer, build_index, ngrams, word_list_hashes
from curate_filters.decontam.stage import Decontaminate, covered

GSM8K = "evals-gsm8k/test.jsonl.gz"
PAGES = "jsonl-dolma-cc2019-cclicensed/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _apply(stage: Decontaminate, texts: list[str]) -> tuple[list[str | None], list[str], pa.Table]:
    stage.setup()
    result = stage.apply(pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts}))
    reasons = result.reasons.to_pylist() if result.reasons is not None else [None] * len(texts)
    return reasons, result.table.column("text").to_pylist(), result.table


# -- normalisation and hashing ----------------------------------------------------------------------------------


def test_words_are_datatroves_and_gpt3s():
    dt_text = pytest.importorskip("datatrove.utils.text")
    dt_tok = pytest.importorskip("datatrove.utils.word_tokenizers").load_word_tokenizer("en")
    text = "Janet’s ducks lay 16 eggs per day, don't they? Café 3.14 — (cannot) e\u0301t\u00e9 «quoted»"
    assert Normalizer().words(text) == dt_tok.word_tokenize(dt_text.simplify_text(text))
    assert Normalizer("gpt3").words("Don't STOP, Café!") == ["dont", "stop", "café"]  # janitor: ASCII only


def test_located_words_are_the_whole_texts_words_with_their_chunks():
    text = "Hello,world  (the) 1,000 cats\u0301 \u0301 done."
    norm = Normalizer()
    words, start, end = norm.located_words(text)
    assert words == norm.words(text)
    assert [text[a:b] for a, b in zip(start, end)][:2] == ["Hello,world", "Hello,world"]


def test_ngram_hashes_depend_on_the_words_and_their_order_only():
    w = word_list_hashes("a b c d e f".split())
    h, doc, pos = ngrams(np.concatenate([w, w[:2]]), np.array([6, 2]), 3)
    assert len(h) == 4 and doc.tolist() == [0, 0, 0, 0] and pos.tolist() == [0, 1, 2, 3]  # the short text: none
    again, _, _ = ngrams(word_list_hashes("x b c d".split()), np.array([4]), 3)
    assert again[1] == h[1] and again[0] != h[0]


def test_covered_counts_overlapping_ngrams_once():
    assert covered(np.array([0, 2, 10]), 3) == 3 + 2 + 3
    assert covered(np.array([], np.int64), 3) == 0


# -- evaluation files -------------------------------------------------------------------------------------------


def test_eval_files_in_every_format_and_preset(tmp_path):
    _jsonl(tmp_path / "plain.jsonl", [{"text": "a whole item"}])
    _jsonl(
        tmp_path / "light.jsonl",
        [{"query": "Q: what? Answer:", "choices": ["red", "blue"], "gold_index": [1]}],
    )
    _jsonl(tmp_path / "lmeval.jsonl", [{"doc_to_text": "Q2", "doc_to_choice": ["x", "y", "z"], "doc_to_target": 2}])
    pq.write_table(pa.table({"question": ["Q3"], "choices": [["p", "q"]], "answer": [0]}), tmp_path / "mmlu.parquet")
    (tmp_path / "mmlu.csv").write_text('"Q4, with a comma",one,two,three,four,C\n')
    (tmp_path / "lines.txt").write_text("first line\n\nsecond line\n")
    (tmp_path / "copa.tsv").write_text("ID\tpremise\t1\t2\tAnswer\nc1\tP\tA1\tA2\t2\n")

    def one(entry) -> list:
        return list(items_of(EvalSpec.parse(entry)))

    assert one(str(tmp_path / "plain.jsonl"))[0].golds == ("a whole item",)
    light = one(str(tmp_path / "light.jsonl"))[0]
    assert (light.query, light.golds) == ("Q: what? Answer:", ("blue",))
    assert one(str(tmp_path / "lmeval.jsonl"))[0].golds == ("z",)
    assert one(str(tmp_path / "mmlu.parquet"))[0].golds == ("p",)
    csv_item = one({"path": str(tmp_path / "mmlu.csv"), "preset": "mmlu_csv"})[0]
    assert (csv_item.query, csv_item.golds) == ("Q4, with a comma", ("three",))
    assert [i.golds for i in one(str(tmp_path / "lines.txt"))] == [("first line",), ("second line",)]
    copa = one(
        {"path": str(tmp_path / "copa.tsv"), "question": "premise", "choices": ["1", "2"], "answer": "Answer",
         "answer_is": "index1", "id": "ID"}
    )[0]  # fmt: skip
    assert (copa.key, copa.golds) == ("c1", ("A2",))


def test_unknown_layouts_and_keys_are_config_errors(tmp_path):
    from curate.errors import ConfigError

    _jsonl(tmp_path / "odd.jsonl", [{"foo": "bar"}])
    with pytest.raises(ConfigError, match="cannot tell which fields"):
        list(items_of(EvalSpec.parse(str(tmp_path / "odd.jsonl"))))
    with pytest.raises(ConfigError, match="unknown key"):
        EvalSpec.parse({"path": "x.jsonl", "questoin": "q"})
    with pytest.raises(ConfigError, match="unknown preset"):
        EvalSpec.parse({"path": "x.jsonl", "preset": "nope"})


def test_the_index_ignores_common_and_stop_listed_ngrams(tmp_path):
    shared = "which of the following statements about the economy of the country is true"
    names = ("alpha", "beta", "gamma", "delta")
    rows = [{"text": f"{shared} and {name} is the answer we wanted here"} for name in names]
    _jsonl(tmp_path / "e.jsonl", rows)
    spec = EvalSpec.parse(str(tmp_path / "e.jsonl"))
    every = build_index([spec], IndexSettings(n_grams=5, max_items_per_ngram=None))
    capped = build_index([spec], IndexSettings(n_grams=5, max_items_per_ngram=3))
    assert capped.stats["dropped_common"] > 0 and len(capped.hashes) < len(every.hashes)
    (tmp_path / "stop.txt").write_text("And alpha is the answer\n")
    stop = str(tmp_path / "stop.txt")
    stopped = build_index([spec], IndexSettings(n_grams=5, max_items_per_ngram=3, stop_ngrams=stop))
    assert stopped.stats["dropped_stop"] == 1 and len(stopped.hashes) == len(capped.hashes) - 1


def test_the_index_is_cached_and_memory_mapped(tmp_path):
    _jsonl(tmp_path / "e.jsonl", [{"text": "one two three four five six seven eight nine ten eleven twelve thirteen"}])
    stage = Decontaminate(evals=[str(tmp_path / "e.jsonl")], cache_dir=str(tmp_path / "cache"))
    stage.setup()
    assert isinstance(stage.index.hashes, np.memmap) and len(stage.index.hashes) == 1
    assert len(list((tmp_path / "cache" / "decontam").iterdir())) == 1
    again = Decontaminate(evals=[str(tmp_path / "e.jsonl")], cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert np.array_equal(again.index.hashes, stage.index.hashes)


def test_a_stage_without_evals_or_with_a_wrong_mode_is_a_config_error():
    from curate.errors import ConfigError

    with pytest.raises(ConfigError):
        Decontaminate(evals=[])
    with pytest.raises(ConfigError, match="mode"):
        Decontaminate(evals=["x.jsonl"], mode="paragraph")


# -- document and span mode against the oracle, on corpus pages with planted items ------------------------------


def planted(corpus: Path, pages: int = 160, every: int = 4, seed: int = 0) -> tuple[list[str], list[int], str]:
    """Real pages with GSM8K test items planted into every `every`-th one: verbatim, with light edits (case,
    punctuation, spacing), or split across line breaks. Returns the texts, the planted item numbers (-1: none)
    and the evaluation file."""
    rng = random.Random(seed)
    with gzip.open(corpus / PAGES, "rt") as fh:
        texts = [json.loads(line)["text"] for line in fh][:pages]
    with gzip.open(corpus / GSM8K, "rt") as fh:
        items = [json.loads(line) for line in fh]
    which = []
    for k in range(len(texts)):
        if k % every:
            which.append(-1)
            continue
        i = rng.randrange(len(items))
        body = items[i]["question"] + "\n" + items[i]["answer"]
        style = k // every % 3
        if style == 1:
            body = body.upper().replace(",", " ,").replace(" ", "  ")
        elif style == 2:
            words = body.split(" ")
            body = "\n".join(" ".join(words[j : j + 5]) for j in range(0, len(words), 5))
        at = rng.randrange(len(texts[k]) + 1)
        texts[k] = texts[k][:at] + "\n" + body + "\n" + texts[k][at:]
        which.append(i)
    return texts, which, str(corpus / GSM8K)


@pytest.mark.parametrize("settings", [{}, {"n_grams": 12, "find_query_ngrams": False, "max_items_per_ngram": None}])
def test_document_mode_rejects_what_the_oracle_rejects(corpus, tmp_path, settings):
    texts, which, evals = planted(corpus)
    stage = Decontaminate(evals=[evals], cache_dir=str(tmp_path), **settings)
    reasons, _, _ = _apply(stage, texts)
    table = reference.item_ngram_table(list(items_of(stage._specs[0])), stage.settings)
    expected = [reference.rejects(t, table, stage.settings) for t in texts]
    assert [r == "contaminated" for r in reasons] == expected
    assert all(expected[k] for k, i in enumerate(which) if i >= 0), "every planted item is found"


def test_document_mode_with_a_share_rejects_only_the_mostly_contaminated(corpus, tmp_path):
    texts, _, evals = planted(corpus, pages=60)
    stage = Decontaminate(evals=[evals], cache_dir=str(tmp_path), max_contaminated_share=0.3)
    reasons, _, _ = _apply(stage, texts)
    table = reference.item_ngram_table(list(items_of(stage._specs[0])), stage.settings)
    expected = [reference.rejects(t, table, stage.settings, 0.3) for t in texts]
    assert [r == "contaminated" for r in reasons] == expected
    assert 0 < sum(expected) < sum(reference.rejects(t, table, stage.settings) for t in texts)


def test_span_mode_cuts_exactly_the_oracles_spans(corpus, tmp_path):
    texts, which, evals = planted(corpus)
    stage = Decontaminate(evals=[evals], mode="span", cache_dir=str(tmp_path), min_piece_chars=50)
    reasons, out, table_out = _apply(stage, texts)
    table = reference.item_ngram_table(list(items_of(stage._specs[0])), stage.settings)
    for k, text in enumerate(texts):
        want, why, spans = reference.cut(text, table, stage.settings, 200, 50, 10)
        assert reasons[k] == why, k
        if why is None:
            assert out[k] == want, k
        if which[k] >= 0:
            assert spans >= 1
    kept = [t for t, r in zip(out, reasons) if r is None]
    assert not reference.hits(
        [w for t in kept for w in stage.settings.normalizer.words(t) + ["|"]], table, stage.n_grams
    ), "no evaluation n-gram is left in the kept text"
    cut = table_out.column("contaminated_chars").to_pylist()
    assert sum(1 for c in cut if c) >= sum(1 for i, r in zip(which, reasons) if i >= 0 and r is None)


# -- the command ------------------------------------------------------------------------------------------------


def test_contamination_lists_planted_items_with_their_documents(corpus, tmp_path):
    texts, which, evals = planted(corpus, pages=40)
    docs = tmp_path / "docs.jsonl"
    _jsonl(docs, [{"id": f"page-{k}", "text": t} for k, t in enumerate(texts)])
    done = run_curate(
        "contamination", str(docs), "--against", f"gsm8k={evals}", "--json", "--cache-dir", str(tmp_path / "c")
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    (gsm8k,) = report["sets"]
    found = {f["item"]: {e["id"] for e in f["examples"]} for f in gsm8k["found"]}
    for k, i in enumerate(which):
        if i >= 0:
            assert f"page-{k}" in found[f"test.jsonl.gz:{i}"]
    assert report["contaminated_documents"] >= sum(i >= 0 for i in which)
