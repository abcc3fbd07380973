"""The topic stage: its words, vocabulary and k-means on known answers, three clearly different sources (prose,
Python code, football tables) separating into three readable topics, the same topics for any batch size and input
order, the model file's round trip, parameter checks, `mix` weighting by topic, and on real text (Gutenberg prose,
HumanEval code, generated tables)."""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError, InputError, StageError
from curate_filters.annotation import topic as tp
from curate_filters.annotation.topic import Topic

STAGE = "curate_filters.annotation.topic:Topic"

# -- three sources ---------------------------------------------------------------------------------------------------

_SUBJECTS = ["the farmer", "his daughter", "the old priest", "a young soldier", "the miller", "our neighbour"]
_VERBS = ["walked slowly to", "remembered", "wrote a letter about", "could not forget", "returned home from"]
_OBJECTS = ["the village church", "the cold river", "the long winter", "her mother's garden", "the market town"]
_TAILS = ["and the evening was quiet.", "while the bells were ringing.", "before the snow came.",
          "as his father had done.", "though nobody believed him."]  # fmt: skip


def prose(rng: random.Random) -> str:
    return " ".join(
        f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
        for _ in range(rng.randrange(4, 9))
    )


_NAMES = ["items", "values", "result", "index", "count", "total", "node", "buffer", "key", "path"]


def code(rng: random.Random) -> str:
    a, b, c = rng.sample(_NAMES, 3)
    lines = [f"def {rng.choice(['parse', 'load', 'merge', 'count', 'find'])}_{a}({b}, {c}=None):",
             f'    """Return the {a} of {b}."""', f"    {a} = []", f"    for {c} in range({b}):",
             f"        if {c} % {rng.randrange(2, 9)} == 0:", f"            {a}.append({c})",
             f"    return {a}"]  # fmt: skip
    if rng.random() < 0.5:
        lines += ["", "class Cache(dict):", "    def __missing__(self, key):", "        return None"]
    return "\n".join(lines)


_TEAMS = ["Arsenal", "Chelsea", "Liverpool", "Everton", "Leeds", "Fulham", "Burnley", "Wolves", "Brentford", "Villa"]


def football(rng: random.Random) -> str:
    teams = rng.sample(_TEAMS, 6)
    lines = [f"Matchday {rng.randrange(1, 38)}: results and table", "Pos Team P W D L GF GA Pts"]
    for i, t in enumerate(teams):
        w, d, lost = rng.randrange(20), rng.randrange(10), rng.randrange(10)
        lines.append(f"{i + 1} {t} {w + d + lost} {w} {d} {lost} {rng.randrange(60)} {rng.randrange(60)} {3 * w + d}")
    for _ in range(3):
        a, b = rng.sample(_TEAMS, 2)
        lines.append(f"{a} {rng.randrange(5)}-{rng.randrange(5)} {b}, attendance {rng.randrange(10000, 60000)}")
    return "\n".join(lines)


def three_sources(n: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for kind, make in (("prose", prose), ("code", code), ("football", football)):
        rows += [{"id": f"{kind}-{i:03d}", "text": make(rng), "source": kind} for i in range(n)]
    return rows


def _purity(topics: list[int], kinds: list[str]) -> dict[str, tuple[int, float]]:
    """kind -> (its most common topic, the share of its documents in that topic)."""
    out = {}
    for kind in sorted(set(kinds)):
        c = Counter(t for t, k in zip(topics, kinds) if k == kind)
        top, n = c.most_common(1)[0]
        out[kind] = (top, n / sum(c.values()))
    return out


# -- units -----------------------------------------------------------------------------------------------------------


def test_words_fold_case_and_digits_and_drop_short_and_long_tokens():
    assert tp.words("The 3-2 win, 2024! snake_case I a" + " x" * 3 + " " + "y" * 31) == [
        "the", "win", "0000", "snake", "case",
    ]  # fmt: skip


def test_vocabulary_keeps_words_between_min_df_and_max_df_by_document_frequency():
    docs = [{"a": 1, "b": 5, "c": 1}, {"a": 2, "b": 1, "d": 1}, {"a": 1, "d": 3, "e": 1}, {"a": 1, "e": 1}]
    vocab, idf = tp.vocabulary(docs, max_vocab=10, min_df=2, max_df=0.75)
    assert vocab == ["b", "d", "e"]  # a is in all 4 (> 0.75), c in 1 (< 2)
    assert idf == pytest.approx([np.log(5 / 3) + 1] * 3)
    assert tp.vocabulary(docs, max_vocab=2, min_df=1, max_df=1.0)[0] == ["a", "b"]  # df 4, then 2-ties by word: b


def test_kmeans_separates_clear_clusters_and_is_seeded():
    docs = [{"apple": 2, "pear": 1}] * 5 + [{"goal": 1, "match": 2}] * 5 + [{"def": 3, "return": 1}] * 5
    model, figures = tp.fit(docs, 3, min_df=1, max_df=1.0)
    assign = [model.assign(" ".join(w for w, c in d.items() for _ in range(c))) for d in docs]
    assert len(set(assign[:5])) == len(set(assign[5:10])) == len(set(assign[10:])) == 1
    assert len({assign[0], assign[5], assign[10]}) == 3
    assert figures == {"fit_docs": 15, "vocabulary": 6, "topics": 3}
    assert sorted(model.labels) == ["apple pear", "def return", "match goal"]  # by weight: tf 2 before tf 1
    assert tp.Model.assign(model, "nothing known here") == tp.NO_TOPIC


def test_three_sources_separate_into_three_readable_topics():
    rows = three_sources()
    topics, labels = tp.topics([r["text"] for r in rows], 3)
    purity = _purity(topics, [r["source"] for r in rows])
    assert {share for _, share in purity.values()} == {1.0}
    assert len({top for top, _ in purity.values()}) == 3
    assert set(re.findall(r"\w+", labels[purity["football"][0]])) & {"attendance", "matchday", "pts", "arsenal"}
    assert set(labels[purity["code"][0]].split()) & {"def", "return", "append", "for", "range", "in"}
    assert set(labels[purity["prose"][0]].split()) & {"village", "church", "river", "winter", "farmer", "the"}
    assert all(len(label.split()) <= 8 for label in labels)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.5}, "k must be an integer"),
        ({"sample_docs": 0}, "sample_docs"),
        ({"k": 50, "sample_docs": 10}, "must not exceed sample_docs"),
        ({"max_df": 0}, "max_df must be a share"),
        ({"max_df": 1.5}, "max_df"),
        ({"min_df": 0}, "min_df"),
        ({"iterations": 0}, "iterations"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"model": "a", "write_model": "b"}, "not both"),
        ({"write_model": ""}, "write_model must be a path"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        Topic(**params)


def test_model_table_round_trip(tmp_path):
    rows = three_sources(20)
    model, _ = tp.fit([dict(Counter(tp.words(r["text"]))) for r in rows], 3)
    pq.write_table(model.to_table(), tmp_path / "m.parquet")
    back = tp.read_model(str(tmp_path / "m.parquet"))
    assert back.vocab == model.vocab and back.labels == model.labels
    assert np.array_equal(back.centroids, model.centroids) and np.array_equal(back.idf, model.idf)
    pq.write_table(pa.table({"word": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="not a topic model"):
        tp.read_model(str(tmp_path / "bad.parquet"))


# -- pipeline runs ---------------------------------------------------------------------------------------------------

PIPE = """
name: topic
input: {format: parquet, path: IN}
output: {path: OUT, shard_rows: 97}
engine: {batch_rows: BATCH, shuffle_partitions: 3}
stages:
  - {id: topic, uses: "STAGE", with: WITH}
MORE
"""


def _run(tmp_path: Path, rows: list[dict], with_: str, name: str, batch: int = 17, more: str = "",
         runner: str = "local"):  # fmt: skip
    src = tmp_path / f"in-{name}"
    src.mkdir()
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half]), src / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:]), src / "b.parquet")
    body = (
        PIPE.replace("IN", str(src)).replace("OUT", str(tmp_path / name)).replace("STAGE", STAGE)
        .replace("WITH", with_).replace("BATCH", str(batch)).replace("MORE", more)
    )  # fmt: skip
    stats = engine.run(config.load(str(write_pipeline(tmp_path / f"{name}.yaml", body))), runner=runner)
    assert stats["conserved"]
    kept = {r["id"]: r for r in pq.read_table(tmp_path / name / "data").to_pylist()}
    counters = {s["id"]: s.get("counters", {}) for s in stats["stages"]}
    return kept, counters


def test_stage_gives_the_same_topics_for_any_batch_size_and_input_order(tmp_path):
    rows = three_sources(50, seed=3)
    first, counters = _run(tmp_path, rows, "{k: 3, sample_docs: 120}", "a", batch=7)
    shuffled = rows[:]
    random.Random(9).shuffle(shuffled)
    second, _ = _run(tmp_path, shuffled, "{k: 3, sample_docs: 120}", "b", batch=1000)
    assert {i: (r["topic"], r["topic_words"]) for i, r in first.items()} == {
        i: (r["topic"], r["topic_words"]) for i, r in second.items()
    }
    purity = _purity([r["topic"] for r in first.values()], [r["source"] for r in first.values()])
    assert min(share for _, share in purity.values()) >= 0.95 and len({t for t, _ in purity.values()}) == 3
    assert counters["topic"]["fit_docs"] == 120 and counters["topic"]["topics"] == 3
    sizes = Counter(r["topic"] for r in first.values())
    assert all(first[i]["topic_words"] for i in first)
    # numbered by size in the sample: topic 0 is the largest there, and so about the largest here
    assert sizes[0] >= min(sizes.values())


def test_a_written_model_applies_to_another_corpus(tmp_path):
    rows = three_sources(40, seed=4)
    model = tmp_path / "model"
    fitted, _ = _run(tmp_path, rows, f"{{k: 3, write_model: {model}}}", "fit")
    assert (model / "_manifest.json").exists()
    other = three_sources(15, seed=5)
    for r in other:
        r["id"] = "new-" + r["id"]
    applied, counters = _run(tmp_path, other, f"{{k: 3, model: {model}}}", "apply")
    assert "fit_docs" not in counters["topic"]
    want = {r["source"]: fitted[r["id"]]["topic"] for r in rows}
    assert all(applied[r["id"]]["topic"] == want[r["source"]] for r in other)
    assert {r["topic_words"] for r in applied.values()} <= {r["topic_words"] for r in fitted.values()}


def test_mix_weights_documents_by_topic(tmp_path):
    rows = three_sources(60, seed=6)
    # one pass to learn the topic numbers (deterministic), then mix them 1:1:2 within what the smallest allows
    probe, _ = _run(tmp_path, rows, "{k: 3}", "probe")
    by_kind = {r["source"]: probe[r["id"]]["topic"] for r in rows}
    weights = {str(by_kind["prose"]): 1, str(by_kind["code"]): 1, str(by_kind["football"]): 2}
    more = (
        "  - {id: mix, uses: mix, with: {by: topic, tokens: 1e9, max_epochs: 1, weights: " + json.dumps(weights) + "}}"
    )
    kept, counters = _run(tmp_path, rows, "{k: 3}", "mix", more=more)
    tokens = {g: counters["mix"][f"tokens:{g}"] for g in weights}
    total = sum(tokens.values())
    for g, w in weights.items():
        assert tokens[g] / total == pytest.approx(w / 4, abs=0.05)
    # bare integer keys (YAML's 0:) match the integer topic column too, with the same result
    bare = more.replace('"', "")
    _, bare_counters = _run(tmp_path, rows, "{k: 3}", "bare", more=bare)
    assert {g: bare_counters["mix"][f"tokens:{g}"] for g in weights} == tokens


def test_documents_without_vocabulary_words_get_no_topic(tmp_path):
    assert tp.topics(["", "...", "a b"], 3) == ([-1, -1, -1], [])
    rows = three_sources(20, seed=8) + [
        {"id": "empty", "text": "", "source": "x"},
        {"id": "odd", "text": "zz", "source": "x"},
    ]
    kept, _ = _run(tmp_path, rows, "{k: 3}", "edges")
    assert (kept["empty"]["topic"], kept["empty"]["topic_words"]) == (-1, "")
    assert kept["odd"]["topic"] == -1
    nothing = [{"id": f"e{i}", "text": "", "source": "x"} for i in range(5)]
    kept, counters = _run(tmp_path, nothing, "{k: 3}", "nothing")
    assert {r["topic"] for r in kept.values()} == {-1} and counters["topic"]["fit_docs"] == 0
    with pytest.raises(StageError, match="no topic was fitted"):
        _run(tmp_path, nothing, f"{{k: 3, write_model: {tmp_path / 'm'}}}", "nothing-written")


@pytest.mark.ray
@pytest.mark.e2e
def test_ray_and_local_runners_give_the_same_topics(tmp_path, ray_session):
    rows = three_sources(30, seed=7)
    local, _ = _run(tmp_path, rows, "{k: 3, sample_docs: 50}", "local")
    ray, _ = _run(tmp_path, rows, "{k: 3, sample_docs: 50}", "ray", runner="ray")
    assert {i: r["topic"] for i, r in local.items()} == {i: r["topic"] for i, r in ray.items()}


# -- real text -------------------------------------------------------------------------------------------------------


def real_sources(corpus: Path, n: int = 150, seed: int = 0) -> list[dict]:
    """n Gutenberg paragraphs (60+ words), n HumanEval prompts with their solutions, n generated football tables."""
    rng = random.Random(seed)
    paras = []
    for book in sorted((corpus / "prose-gutenberg").glob("pg*.txt")):
        text = book.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        paras += [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 60]
    rng.shuffle(paras)
    with gzip.open(corpus / "evals-humaneval" / "HumanEval.jsonl.gz", "rt") as f:
        programs = [(r := json.loads(line))["prompt"] + r["canonical_solution"] for line in f]
    rows = [{"id": f"prose-{i:04d}", "text": t, "source": "prose"} for i, t in enumerate(paras[:n])]
    rows += [{"id": f"code-{i:04d}", "text": t, "source": "code"} for i, t in enumerate(programs[:n])]
    rows += [{"id": f"football-{i:04d}", "text": football(rng), "source": "football"} for i in range(n)]
    return rows


@pytest.mark.corpus
def test_real_prose_code_and_tables_separate(corpus, tmp_path):
    rows = real_sources(corpus)
    kept, _ = _run(tmp_path, rows, "{k: 3}", "real")
    purity = _purity([kept[r["id"]]["topic"] for r in rows], [r["source"] for r in rows])
    assert len({t for t, _ in purity.values()}) == 3
    assert min(share for _, share in purity.values()) >= 0.95
