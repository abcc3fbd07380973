"""bloom_dedup: the Bloom filter (no false negatives, its false-positive rate at the sized capacity, the vectorised
sequential lookup), paragraph and document decisions on planted examples in both modes, the corpus against an exact
reference, parity with Dolma's Rust dedupe, and the same output from the local and the Ray runner."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import config, engine
from curate.cli import main
from curate.errors import ConfigError
from curate.report.html import write_report
from curate.report.inspect import explain
from curate.report.output import RunOutput
from curate_filters.dedup.bloom import BloomDedup, DeriveItems, Rewrite, partitioned_pass_in_process, run_pass
from curate_filters.dedup.bloom_filter import BloomFilter, ExactSet, bloom_size, tokens

USES = "bloom_dedup"


def words(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def decide(docs: dict[str, str], exact: bool = False, **params) -> dict[str, tuple[list[int], str | None]]:
    """id -> (removed paragraphs, reason) for the documents the stage changes: its partitioned pass in-process, or
    (exact) the reference: one ordered pass over an exact set."""
    stage = BloomDedup(**params)
    batch = pa.table({"id": list(docs), "text": list(docs.values())})
    if exact:
        items = DeriveItems(stage.rules)(batch)
        out = run_pass(items.take(pa.compute.sort_indices(items, [("id", "ascending")])), stage.rules, ExactSet())
    else:
        # in batches of 7, as the runners hand them over
        out = partitioned_pass_in_process(stage, [batch.slice(s, 7) for s in range(0, batch.num_rows, 7)])[0]
    return {r["id"]: (r["__bloom_drop"], r["__bloom_reason"]) for r in out.to_pylist()}


# -- the filter ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fp_rate", [0.01, 0.001])
def test_bloom_filter_has_no_false_negatives_and_its_fp_rate_at_capacity(fp_rate):
    n = 50_000
    bloom = BloomFilter(*bloom_size(n, fp_rate))
    rng = np.random.default_rng(7)
    inserted = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    bloom.add(inserted)
    assert bloom.contains(inserted).all()
    fresh = rng.integers(0, 2**64 - 1, 400_000, dtype=np.uint64, endpoint=True)
    fresh = fresh[~np.isin(fresh, inserted)]
    measured = bloom.contains(fresh).mean()
    # the target at capacity, with room for the sampling error (sd ~ 0.0002 at 0.01) and k's rounding
    assert fp_rate * 0.5 < measured < fp_rate * 1.15
    assert abs(bloom.fill_ratio() - 0.5) < 0.03  # an optimally sized filter is half full at capacity


def test_bloom_size_follows_the_formula():
    bits, k = bloom_size(1_000_000, 0.01)
    assert bits == 9_585_059 and k == 7  # m = -n ln p / ln(2)^2, k = m/n ln 2
    assert bloom_size(1_000_000, 0.001) == (14_377_588, 10)
    assert BloomDedup(size_in_bytes=1000, partitions=1).partition_pass().make_filter(800).bits == 8000
    # each partition's filter is its share of the whole: size_in_bytes / partitions, or expected_ngrams / partitions
    assert BloomDedup(size_in_bytes=1000, partitions=4).partition_pass().make_filter(800).bits == 2000
    assert BloomDedup(expected_ngrams=4_000_000, partitions=4).partition_pass().make_filter(5).bits == 9_585_059
    assert BloomDedup(partitions=4).partition_pass().make_filter(1_000_000).bits == 9_585_059


def test_sequential_lookup_in_one_step_equals_the_loop_even_with_collisions():
    rng = np.random.default_rng(3)
    items = rng.integers(0, 400, 3000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    fast, slow = BloomFilter(997, 3), BloomFilter(997, 3)  # tiny: many false positives and shared bits
    got = fast.check_and_add(items[:1000])
    got = np.concatenate([got, fast.check_and_add(items[1000:])])
    want = []
    for x in items:
        one = np.array([x], np.uint64)
        want.append(bool(slow.contains(one)[0]))
        slow.add(one)
    assert got.tolist() == want and (fast.array == slow.array).all()
    assert ExactSet().check_and_add(np.array([5, 6, 5, 7, 6], np.uint64)).tolist() == [0, 0, 1, 0, 1]


def test_tokens_follow_unicode_word_boundaries():
    assert tokens("Don't stop: U.S.A. costs $3,000.50 at 10:30!") == [
        "Don't", "stop", ":", "U.S.A", ".", "costs", "$", "3,000.50", "at", "10", ":", "30", "!",
    ]  # fmt: skip
    assert tokens("大酋长 カタカナーです குடிநீர் 82") == ["大", "酋", "长", "カタカナー", "で", "す", "குடிநீர்", "82"]


# -- decisions -------------------------------------------------------------------------------------------------------


def test_a_reused_paragraph_is_removed_from_the_later_document_in_id_order():
    a, b, c = words("a", 40), words("b", 40), words("c", 40)
    # given in reverse order: the smaller id is processed first, wherever it sits
    got = decide({"d2": f"{c}\n{a}", "d1": f"{a}\n{b}"})
    assert got == {"d2": ([1], None)}
    # the same with the ids swapped: now d1 holds the copy
    assert decide({"d1": f"{c}\n{a}", "d2": f"{a}\n{b}"}) == {"d2": ([0], None)}


def test_the_paragraph_threshold_bff_above_dolma_at_least():
    base = words("w", 16)
    # 17 words -> 5 13-grams, the first 4 seen in `base`'s paragraph: a seen share of exactly 0.8
    edge = base + " new"
    docs = {"d1": base, "d2": f"{edge}\n{words('x', 30)}"}
    assert decide(docs) == {}  # bff: 0.8 is not above 0.8
    assert decide(docs, mode="dolma", document_threshold=None) == {"d2": ([0], None)}  # dolma: at least 0.8
    assert decide(docs, threshold=0.75) == {"d2": ([0], None)}


def test_where_an_edit_falls_decides_a_near_copy():
    orig = words("w", 40)  # 28 13-grams
    ws = orig.split()
    middle = " ".join(ws[:20] + ["EDIT"] + ws[21:])  # 13 n-grams broken: 15/28 seen
    end = " ".join(ws[:39] + ["EDIT"])  # 1 n-gram broken: 27/28 seen
    other = words("z", 30)
    assert decide({"d1": orig, "d2": f"{middle}\n{other}"}) == {}
    assert decide({"d1": orig, "d2": f"{end}\n{other}"}) == {"d2": ([0], None)}


def test_short_paragraphs_bff_never_judges_them_dolma_compares_their_text():
    short = "Share this page on social media"  # 6 words
    docs = {"d1": f"{short}\n{words('a', 30)}", "d2": f"{short}\n{words('b', 30)}"}
    assert decide(docs) == {}
    assert decide(docs, mode="dolma", document_threshold=None) == {"d2": ([0], None)}
    # min_ngram: a paragraph of at least that many words is one shorter gram (BFF --min-ngram-size)
    assert decide(docs, min_ngram=5) == {"d2": ([0], None)}


def test_whole_documents_and_documents_left_empty():
    a, b = words("a", 40), words("b", 40)
    docs = {"d1": f"{a}\n{b}", "d2": f"{a}\n{b}", "d3": f"{words('c', 40)}\n{a}\n   "}
    got = decide(docs)
    assert got["d2"] == ([0, 1], "duplicate_ngrams")
    assert got["d3"] == ([1], None)  # half its n-grams seen: rewritten, kept
    # no document threshold: a document whose every paragraph with text goes is empty
    got = decide({"d1": a, "d2": f"{a}\n  \n"}, document_threshold=None)
    assert got == {"d2": ([0], "empty_after_dedup")}
    assert decide({"d1": f"{a}\n{b}", "d2": f"{a}\n{b}"}, document_threshold=None)["d2"] == (
        [0, 1],
        "empty_after_dedup",
    )


def test_rewrite_keeps_the_remaining_paragraphs():
    body = pa.table(
        {
            "id": ["x", "y", "z"],
            "text": ["one\ntwo\nthree", "four\nfive", "six"],
            "__bloom_drop": pa.array([[1], [0, 1], None], pa.list_(pa.int32())),
            "__bloom_reason": pa.array([None, "duplicate_ngrams", None], pa.string()),
        }
    )
    out = Rewrite("bloom_dedup_cut")(body)
    assert out.column("text").to_pylist() == ["one\nthree", "four\nfive", "six"]
    assert out.column("reason").to_pylist() == [None, "duplicate_ngrams", None]
    # what was cut from a document that stays is kept beside it; a document rejected whole keeps its text
    assert out.column("bloom_dedup_cut").to_pylist() == [["two"], None, None]
    assert not [c for c in out.column_names if c.startswith("__")]
    assert "bloom_dedup_cut" not in Rewrite(None)(body).column_names


@pytest.mark.parametrize(
    "params",
    [{"ngram": 0}, {"threshold": 1.5}, {"fp_rate": 0.0}, {"mode": "bfff"}, {"min_ngram": 20}, {"size_in_bytes": 0}],
)
def test_bad_parameters_are_config_errors(params):
    with pytest.raises(ConfigError):
        BloomDedup(**params)


# -- the partitioned pass ---------------------------------------------------------------------------------------------


def brute_force_bff(
    docs: dict[str, str], ngram: int = 13, min_ngram: int | None = None, threshold: float = 0.8, document_threshold=0.8
) -> dict[str, tuple[list[int], str | None]]:
    """BFF (old-both) with an exact set of word-tuple n-grams, in plain Python over the documents in id order."""
    seen: set[tuple[str, ...]] = set()
    out: dict[str, tuple[list[int], str | None]] = {}
    for doc_id in sorted(docs):
        paras = docs[doc_id].split("\n")
        removed: list[int] = []
        seen_total = total = 0
        for i, p in enumerate(paras):
            w = tokens(p)
            if len(w) >= ngram:
                grams = [tuple(w[j : j + ngram]) for j in range(len(w) - ngram + 1)]
            elif len(w) >= (min_ngram or ngram):
                grams = [tuple(w)]
            else:
                continue
            hit = sum(g in seen for g in grams)
            if hit / len(grams) > threshold:
                removed.append(i)
            else:
                seen.update(grams)
            seen_total += hit
            total += len(grams)
        whole = document_threshold is not None and total > 0 and seen_total / total > document_threshold
        if removed or whole:
            left = [i for i in range(len(paras)) if i not in removed]
            reason = (
                "duplicate_ngrams" if whole else (None if any(paras[i].strip() for i in left) else "empty_after_dedup")
            )
            out[doc_id] = (removed, reason)
    return out


def _mixed_docs(n: int = 120, seed: int = 2) -> dict[str, str]:
    """Planted repeats (whole paragraphs, whole documents, near copies), short repeated lines, blank lines and an
    empty document."""
    rng = random.Random(seed)
    docs = {r["id"]: r["text"] for r in _planted_rows(n, seed)}
    short = ["Share this page", "Read more about it here now", "  ", ""]
    for i, doc_id in enumerate(sorted(docs)):
        paras = docs[doc_id].split("\n")
        if i % 3 == 0:
            paras.insert(rng.randrange(len(paras) + 1), rng.choice(short))
        if i % 7 == 0:  # a near copy of an earlier paragraph: one word changed
            donor = docs[sorted(docs)[rng.randrange(i + 1)]].split("\n")[0].split(" ")
            donor[len(donor) // 2] = "changed"
            paras.append(" ".join(donor))
        docs[doc_id] = "\n".join(paras)
    docs["doc-empty"] = ""
    return docs


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"min_ngram": 3, "threshold": 0.5},
        {"ngram": 5, "document_threshold": None, "fp_rate": 0.2},  # a poor filter: the pass stays exact
    ],
)
def test_bff_decisions_equal_a_brute_force_reference_for_any_partitions(params):
    docs = _mixed_docs()
    ref_params = {k: v for k, v in params.items() if k != "fp_rate"}
    want = brute_force_bff(docs, **ref_params)
    assert len(want) > 10 and any(why for _, why in want.values())  # rewritten and rejected documents
    for partitions in (1, 4, 16):
        assert decide(docs, partitions=partitions, **params) == want, partitions
    assert decide(docs, exact=True, **params) == want  # the single-pass reference agrees


def test_dolma_decisions_are_the_same_for_any_partitions():
    docs = _mixed_docs()
    params = {"mode": "dolma", "document_threshold": None, "fp_rate": 1e-6}
    want = decide(docs, exact=True, **params)
    assert len(want) > 10
    for partitions in (1, 4, 16):
        assert decide(docs, partitions=partitions, **params) == want, partitions
    # with the document rule and Dolma's threshold at 0 (every paragraph goes, seen or not)
    params = {"mode": "dolma", "document_threshold": 0.5, "fp_rate": 1e-6}
    for extra in ({}, {"threshold": 0.0}):
        want = decide(docs, exact=True, **params, **extra)
        assert [decide(docs, partitions=p, **params, **extra) for p in (1, 4, 16)] == [want] * 3


def test_partitions_split_the_items_and_the_filter():
    docs = _mixed_docs()
    batch = pa.table({"id": list(docs), "text": list(docs.values())})
    summaries = {}
    for partitions in (1, 4, 16):
        stage = BloomDedup(partitions=partitions, size_in_bytes=1 << 16)
        summaries[partitions] = partitioned_pass_in_process(stage, [batch])[1].to_pydict()
    items = sum(summaries[1]["items"])
    for partitions, summary in summaries.items():
        assert len(summary["items"]) == partitions and sum(summary["items"]) == items
        assert max(summary["items"]) < 1.5 * items / partitions  # an even spread
        assert set(summary["bits"]) == {(1 << 19) // partitions}


# -- a pipeline ------------------------------------------------------------------------------------------------------

PIPE = f"""
name: bloom
input: {{format: parquet, path: in}}
output: {{path: out, shard_rows: 25}}
engine: {{batch_rows: 7, shuffle_partitions: 3}}
stages:
  - {{id: bloom, uses: "{USES}", with: {{fp_rate: 0.001}}}}
"""


def _planted_rows(n: int = 60, seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    vocab = [f"v{i}" for i in range(400)]
    texts: list[str] = []
    for i in range(n):
        paras = [" ".join(rng.choice(vocab) for _ in range(rng.randint(20, 50))) for _ in range(rng.randint(2, 5))]
        if i >= 3 and i % 4 == 0:
            donor = texts[rng.randrange(len(texts))].split("\n")
            paras.insert(rng.randrange(len(paras) + 1), rng.choice(donor))
        if i >= 3 and i % 9 == 0:
            paras = texts[rng.randrange(len(texts))].split("\n")
        texts.append("\n".join(paras))
    order = list(range(n))
    rng.shuffle(order)  # the input's order is not the processing order
    return [{"id": f"doc-{i:03d}", "text": texts[i]} for i in order]


def _expected(rows: list[dict]) -> dict[str, tuple[list[int], str | None]]:
    return decide({r["id"]: r["text"] for r in rows}, exact=True, fp_rate=0.001)


def _outputs(out: Path) -> tuple[list[dict], list[dict]]:
    kept = pq.read_table(out / "data").select(["id", "text"]).to_pylist()
    rejected = pq.read_table(out / "rejected" / "bloom").select(["id", "reason"]).to_pylist()
    return sorted(kept, key=lambda r: r["id"]), sorted(rejected, key=lambda r: r["id"])


def test_a_pipeline_rewrites_rejects_and_counts(make_workdir, capsys):
    rows = _planted_rows()
    wd = make_workdir(docs={"in/a.parquet": rows[:30], "in/b.parquet": rows[30:]}, pipeline=PIPE)
    stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["conserved"]
    kept, rejected = _outputs(wd / "out")
    want = _expected(rows)
    assert {r["id"]: r["reason"] for r in rejected} == {i: why for i, (_, why) in want.items() if why}
    texts = {r["id"]: r["text"] for r in rows}
    removed = chars = 0
    for r in kept:
        drop = want.get(r["id"], ([], None))[0]
        paras = texts[r["id"]].split("\n")
        assert r["text"] == "\n".join(p for j, p in enumerate(paras) if j not in drop)
        removed += len(drop)
        chars += len(texts[r["id"]]) - len(r["text"])
    counters = next(s for s in stats["stages"] if s["id"] == "bloom")["counters"]
    assert removed > 5 and len(rejected) >= 3  # the planted copies were found
    assert counters["paragraphs_removed"] == removed + sum(len(want[r["id"]][0]) for r in rejected)
    assert counters["chars_removed"] == chars and counters["docs_rewritten"] == len([i for i in want if not want[i][1]])
    # one filter a partition, each sized for its own items: the sum is the whole's size but for rounding
    assert abs(counters["bloom_bits"] - bloom_size(counters["bloom_items"], 0.001)[0]) < 16
    assert counters["bloom_hashes"] == bloom_size(counters["bloom_items"], 0.001)[1]
    # what was cut stays beside each document, and `curate explain` shows it
    cut = {r["id"]: r["bloom_dedup_cut"] for r in pq.read_table(wd / "out" / "data").to_pylist()}
    for r in kept:
        drop = want.get(r["id"], ([], None))[0]
        assert cut[r["id"]] == ([texts[r["id"]].split("\n")[j] for j in sorted(drop)] or None)
    shown = next(r["id"] for r in kept if cut[r["id"]])
    info = explain(RunOutput.open(str(wd / "out")), shown)
    assert info["cut"] == [{"stage": "bloom_dedup", "pieces": cut[shown], "chars": sum(map(len, cut[shown]))}]
    assert main(["explain", str(wd / "out"), shown]) == 0
    assert f"bloom_dedup cut {len(cut[shown])} piece" in capsys.readouterr().out
    # the report gives the stage's counters and the first pieces it cut
    page = Path(write_report(str(wd / "out"))).read_text()
    assert f'data-stage="bloom" data-counter="paragraphs_removed" data-value="{counters["paragraphs_removed"]}"' in page
    assert "Cut by bloom_dedup from kept documents" in page


@pytest.mark.ray
@pytest.mark.e2e
@pytest.mark.parametrize("extra", ["", ", mode: dolma, document_threshold: null, partitions: 4"])
def test_local_and_ray_runners_write_the_same_output(make_workdir, ray_session, monkeypatch, extra):
    from curate.engine import ray_docs

    monkeypatch.setattr(ray_docs, "SMALL_GROUP_BYTES", 0)  # every group_by a hash shuffle over several blocks
    rows = _planted_rows(80, seed=11)
    pipe = PIPE.replace("fp_rate: 0.001", "fp_rate: 0.001" + extra)
    wd = make_workdir(docs={f"in/p{k}.parquet": rows[k * 20 : (k + 1) * 20] for k in range(4)}, pipeline=pipe)
    local = engine.run(config.load("p.yaml", output_path="local"), runner="local")
    ray = engine.run(config.load("p.yaml", output_path="ray"), runner="ray")
    assert local["conserved"] and ray["conserved"]
    assert _outputs(wd / "local") == _outputs(wd / "ray")
    assert _outputs(wd / "local")[1]  # something was rejected
    counters = [next(s for s in st["stages"] if s["id"] == "bloom")["counters"] for st in (local, ray)]
    assert counters[0] == counters[1] and counters[0]["paragraphs_removed"] > 0


# -- real text -------------------------------------------------------------------------------------------------------


def _corpus_docs(root: Path, seed: int = 0) -> list[tuple[str, str]]:
    """697 CC pages (about 40 languages) with reused paragraphs planted, in id order."""
    texts: list[str] = []
    for path in sorted((root / "jsonl-dolma-cc2019-cclicensed").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            texts.extend(t for line in fh if (t := json.loads(line).get("text")))
    rng = random.Random(seed)
    for k in range(10, len(texts)):
        if k % 25 == 0:
            texts[k] = texts[rng.randrange(k)]
        elif k % 5 == 0:
            paras = texts[k].split("\n")
            donor = [p for p in texts[rng.randrange(k)].split("\n") if len(p.split()) >= 30]
            if donor:
                paras.insert(rng.randrange(len(paras) + 1), rng.choice(donor))
            texts[k] = "\n".join(paras)
    return [(f"d{i:05d}", t) for i, t in enumerate(texts)]


def _paragraph_decisions(docs, got) -> dict[tuple[str, int], bool]:
    return {(i, j): j in got.get(i, ([], None))[0] for i, t in docs for j in range(t.count("\n") + 1)}


@pytest.mark.corpus
@pytest.mark.parametrize("mode", ["bff", "dolma"])
def test_corpus_decisions_equal_an_exact_reference(corpus, mode):
    docs = _corpus_docs(corpus)
    params = {"mode": mode, "document_threshold": 0.8 if mode == "bff" else None}
    exact = _paragraph_decisions(docs, decide(dict(docs), exact=True, **params))
    assert sum(exact.values()) > 500  # planted and natural repeats (boilerplate lines) were found
    # a filter with negligible false positives decides exactly as the set
    assert _paragraph_decisions(docs, decide(dict(docs), fp_rate=1e-7, **params)) == exact
    # at the default 1% (at capacity) false positives only add removals, and a handful
    bloom = _paragraph_decisions(docs, decide(dict(docs), **params))
    differ = [k for k in exact if exact[k] != bloom[k]]
    assert len(differ) <= 0.002 * len(exact), len(differ)
    if mode == "dolma":  # nothing is kept out of the filter, so a false positive cannot hide a later repeat
        assert all(bloom[k] and not exact[k] for k in differ)


def run_dolma(docs: list[tuple[str, str]], work: Path, expected: int, ngram: int = 13, threshold: float = 0.8):
    """Dolma's Rust deduper (by_ngram paragraphs) over `docs` in one file, one process: id -> removed paragraphs."""
    import dolma

    folder = work / "documents"
    folder.mkdir(parents=True)
    with gzip.open(folder / "docs.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": i, "text": t, "source": "test"}) + "\n" for i, t in docs)
    by_ngram = {"ngram_length": ngram, "stride": 0, "overlap_threshold": threshold, "skip_short_paragraphs": False}
    dolma.deduper(
        {
            "documents": [str(folder / "docs.jsonl.gz")],
            "work_dir": {"input": str(work / "in"), "output": str(work / "out")},
            "dedupe": {
                "name": "bloom",
                "paragraphs": {"attribute_name": "dup", "by_ngram": by_ngram},
                "skip_empty": False,
                "min_length": 0,
                "min_words": 0,
                "num_partitions": 1,
                "partition_index": 0,
                "file_partition": False,
                "document_dir": "documents",
            },
            "bloom_filter": {
                "file": str(work / "filter.bin"),
                "read_only": False,
                "size_in_bytes": 0,
                "estimated_doc_count": expected,
                "desired_false_positive_rate": 0.01,
            },
            "processes": 1,
            "is_s3_volume": False,
            "compression": {"input": None, "output": None},
        }
    )
    texts = dict(docs)
    out: dict[str, tuple[list[int], None]] = {}
    with gzip.open(work / "attributes" / "bloom" / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            starts, at = {}, 0
            for j, p in enumerate(texts[row["id"]].split("\n")):
                starts[at] = j
                at += len(p) + 1
            spans = row["attributes"].get("dup") or []
            if spans:
                out[row["id"]] = (sorted(starts[s[0]] for s in spans), None)  # spans are in characters
    return out


@pytest.mark.corpus
def test_parity_with_dolma_dedupe(corpus, tmp_path):
    pytest.importorskip("dolma")
    docs = _corpus_docs(corpus)
    params = {"mode": "dolma", "document_threshold": None}
    stage = BloomDedup(**params)
    items = DeriveItems(stage.rules)(pa.table({"id": [i for i, _ in docs], "text": [t for _, t in docs]}))
    expected = int(pa.compute.sum(pa.compute.list_value_length(items.column("grams"))).as_py()) + sum(
        1 for ks in items.column("keys").to_pylist() for k in ks if k
    )
    theirs = _paragraph_decisions(docs, run_dolma(docs, tmp_path, expected))
    exact = _paragraph_decisions(docs, decide(dict(docs), exact=True, **params))
    ours = _paragraph_decisions(docs, decide(dict(docs), fp_rate=1e-7, **params))
    assert sum(theirs.values()) > 500
    # the same tokens, n-grams and rules: the decisions differ only where Dolma's filter gave a false positive
    # (it sizes to a power of two: 0.07% here), which can only add a removal
    differ = [k for k in theirs if theirs[k] != exact[k]]
    assert all(theirs[k] and not exact[k] for k in differ) and len(differ) <= 0.001 * len(theirs)
    assert ours == exact
