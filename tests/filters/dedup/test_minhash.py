"""The minhash stage: signature properties, the S-curve, parameter checks, connected components, the stage end to
end on both runners, and the cross-dump index."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError, InputError
from curate_filters.dedup import minhash
from curate_filters.dedup import minhash_math as mm
from curate_filters.dedup.components import connected_components
from curate_filters.dedup.minhash import MinHash

# letters only: simplify_text turns digits into 0
VOCAB = sorted({"".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyz", k=6)) for i in range(5000)})


def _text(rng: random.Random, n: int = 200) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def _edit(rng: random.Random, text: str, substitutions: int) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), substitutions):
        words[i] = rng.choice(VOCAB) + "x"
    return " ".join(words)


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = text.split()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)} if len(w) >= n else {tuple(w)}


# -- signatures ------------------------------------------------------------------------------------------------------


def test_estimated_jaccard_tracks_exact_jaccard():
    rng = np.random.default_rng(7)
    perms = mm.Permutations.make(256, 3)
    errors, sigmas = [], []
    for _ in range(300):
        size = int(rng.integers(50, 600))
        shared = int(rng.integers(0, size + 1))
        a = rng.integers(0, 2**64 - 1, size, dtype=np.uint64)
        b = np.concatenate([a[:shared], rng.integers(0, 2**64 - 1, size - shared, dtype=np.uint64)])
        exact = mm.exact_jaccard(a.tolist(), b.tolist())
        sig = mm.signatures(np.concatenate([a, b]), np.array([size, size]), perms)
        errors.append(mm.estimated_jaccard(sig[0], sig[1]) - exact)
        sigmas.append(max(np.sqrt(exact * (1 - exact) / 256), 1 / 256))
    errors, sigmas = np.array(errors), np.array(sigmas)
    assert abs(errors.mean()) < 0.005  # unbiased
    assert np.mean(np.abs(errors) <= 2 * sigmas) > 0.9  # about as spread as the binomial
    assert np.all(np.abs(errors) <= 6 * sigmas)


def test_signature_depends_only_on_the_set_of_shingles():
    rng = np.random.default_rng(1)
    perms = mm.Permutations.make(64, 1)
    h = rng.integers(0, 2**64 - 1, 300, dtype=np.uint64)
    shuffled = rng.permutation(np.concatenate([h, h[:50]]))  # reordered, some repeated
    sig = mm.signatures(np.concatenate([h, shuffled]), np.array([300, 350]), perms)
    assert np.array_equal(sig[0], sig[1])
    other = mm.signatures(h[100:], np.array([200]), perms)  # a third fewer shingles: J = 2/3
    assert 0.4 < mm.estimated_jaccard(sig[0], other[0]) < 0.9


def test_signatures_do_not_depend_on_how_documents_are_batched(monkeypatch):
    rng = random.Random(2)
    texts = [_text(rng, rng.randint(0, 300)) for _ in range(40)] + ["", "one two", "Ünïcode, 42 words!"]
    table = pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    stage = MinHash()
    whole, has = stage.signatures(table)
    monkeypatch.setattr(mm, "CHUNK_SHINGLES", 97)  # many chunks, documents split across none
    parts = [stage.signatures(table.slice(i, 7))[0] for i in range(0, table.num_rows, 7)]
    assert np.array_equal(whole, np.concatenate(parts))
    assert has.tolist() == [bool(t.split()) for t in texts]
    rows = stage.derive_rows(table)
    assert rows.num_rows == (20 + 1) * int(has.sum())  # band rows and a sketch row per document with a word
    parts = pa.concat_tables([stage.derive_rows(table.slice(i, 5)) for i in range(0, table.num_rows, 5)])
    order = [("node", "ascending"), ("band", "ascending"), ("key", "ascending")]
    assert rows.sort_by(order).equals(parts.sort_by(order))


def test_shingles_follow_simplify_text_and_short_documents_are_one_shingle():
    stage = MinHash()
    t = pa.table(
        {
            "id": list("abcdefg"),
            "text": [
                "Hello, World! It is 2024 and all is well here.",
                "hello world it is 1999 and all is WELL here",
                "Héllo wörld it is 7 and all is well here",
                "just three words",
                "Just three words!",
                "just three other",
                "",
            ],
        }
    )
    sig, has = stage.signatures(t)
    assert np.array_equal(sig[0], sig[1]) and np.array_equal(sig[0], sig[2])  # case, digits, marks, punctuation
    assert np.array_equal(sig[3], sig[4]) and not np.array_equal(sig[3], sig[5])
    assert has.tolist() == [True] * 6 + [False]
    hashes, counts = mm.shingle_hashes([np.arange(12, dtype=np.uint64), np.arange(3, dtype=np.uint64)], 5)
    assert counts.tolist() == [8, 1] and len(hashes) == 9


def test_batch_word_hashing_equals_hashing_each_word():
    import xxhash

    from curate.text import simplify_text, tokenizer

    # "" (no word) and "cannot" (two) among the distinct chunks: as many values as chunks, not one each
    texts = ["Cannot go, gonna stay!", "a \u0300 b", "", "Ünïcode WORDS 12 and 3.5", "one"] + [_text(random.Random(4))]
    simple = [simplify_text(t) for t in texts]
    tok = tokenizer("en")
    flat, counts = mm.batch_word_hashes(simple, tok)
    want = [[xxhash.xxh3_64_intdigest(w.encode()) for w in tok.words(t)] for t in simple]
    assert counts.tolist() == [len(w) for w in want] and counts[0] == 6  # can not go gon na stay
    assert flat.tolist() == [h for w in want for h in w]
    assert all(np.array_equal(mm.word_hashes(t, tok), np.array(w, np.uint64)) for t, w in zip(simple, want))
    flat, counts = mm.batch_word_hashes(["cannot", "", "x"], tok)
    assert counts.tolist() == [2, 0, 1] and len(flat) == 3


def test_documents_in_their_own_language_hash_as_alone():
    zh, en = "今天天气很好我们去公园散步吧", "the weather is fine today so we walk in the park"
    mixed = MinHash(language=None).signatures(pa.table({"id": ["a", "b"], "text": [zh, en], "language": ["zh", "en"]}))
    alone_zh = MinHash(language="zh").signatures(pa.table({"id": ["a"], "text": [zh]}))
    alone_en = MinHash(language="en").signatures(pa.table({"id": ["b"], "text": [en]}))
    assert np.array_equal(mixed[0], np.concatenate([alone_zh[0], alone_en[0]]))


def test_cjk_documents_are_shingled_by_character():
    zh = "今天天气很好我们去公园散步吧"
    stage = MinHash(language="zh")
    words = mm.word_hashes(zh, __import__("curate.text", fromlist=["tokenizer"]).tokenizer("zh"))
    assert len(words) == len(zh)
    sig, _ = stage.signatures(pa.table({"id": ["a", "b"], "text": [zh, zh.replace("公园", "公圆")]}))
    assert 0.2 < mm.estimated_jaccard(sig[0], sig[1]) < 0.9  # a one-character edit changes 5 of 10 shingles


def test_band_collisions_follow_the_s_curve():
    # pairs of sets at exact Jaccard 0.6 and 0.8: the share with a common band key is 1 - (1 - J^r)^b
    rng = np.random.default_rng(5)
    perms = mm.Permutations.make(20 * 8, 9)
    for target in (0.6, 0.8):
        size = 200
        shared = int(round(2 * size * target / (1 + target)))
        hits = 0
        trials = 600
        for _ in range(trials):
            a = rng.integers(0, 2**64 - 1, size, dtype=np.uint64)
            b = np.concatenate([a[:shared], rng.integers(0, 2**64 - 1, size - shared, dtype=np.uint64)])
            keys = mm.band_keys(mm.signatures(np.concatenate([a, b]), np.array([size, size]), perms), 20, 8)
            hits += bool((keys[0] == keys[1]).any())
        exact = shared / (2 * size - shared)
        p = mm.detection_probability(exact, 20, 8)
        assert abs(hits / trials - p) < 4 * np.sqrt(p * (1 - p) / trials) + 0.01, (target, hits / trials, p)


def test_s_curve_and_the_choice_of_bands_and_rows():
    assert mm.detection_probability(0.8, 14, 8) == pytest.approx(0.924, abs=5e-4)
    assert mm.detection_probability(0.8, 20, 8) == pytest.approx(0.975, abs=5e-4)
    assert mm.choose_bands_rows(0.8) == (20, 8)
    for t in (0.5, 0.6, 0.7, 0.75, 0.85, 0.9, 0.95):
        b, r = mm.choose_bands_rows(t)
        assert b * r <= mm.PERMUTATION_BUDGET and mm.detection_probability(t, b, r) >= mm.TARGET_RECALL
        # the sharpest such split: one more row per band would miss the target
        assert mm.detection_probability(t, mm.PERMUTATION_BUDGET // (r + 1), r + 1) < mm.TARGET_RECALL
    assert mm.bands_for(0.8, 8) == 17
    assert "0.80:0.975" in mm.describe(20, 8)


# -- parameters ------------------------------------------------------------------------------------------------------


def test_defaults_and_presets():
    assert (MinHash().plan.bands, MinHash().plan.rows, MinHash().plan.min_jaccard) == (20, 8, 0.7)
    fw = MinHash(preset="fineweb").plan
    assert (fw.ngram, fw.bands, fw.rows, fw.min_jaccard) == (5, 14, 8, None)
    t9 = MinHash(threshold=0.9).plan
    assert (t9.bands, t9.rows, t9.min_jaccard) == (12, 13, 0.8)
    assert MinHash(bands=14, rows=8, min_jaccard=None).plan.min_jaccard is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bands": 8, "rows": 14}, "looks swapped"),
        ({"bands": 2, "rows": 16, "threshold": 0.8}, "probability"),
        ({"bands": 8, "rows": 14, "threshold": 0.8}, "swapped"),
        ({"bands": 20}, "both bands and rows"),
        ({"preset": "fineweb", "bands": 20, "rows": 8}, "preset"),
        ({"preset": "fineweb", "ngram": 3}, "ngram"),
        ({"threshold": 0.8, "min_jaccard": 0.9}, "above threshold"),
        ({"min_jaccard": 1.5}, "between 0 and 1"),
        ({"ngram": 0}, "at least 1"),
        ({"threshold": 1.2}, "between 0 and 1"),
        ({"index": {"wrte": "x"}}, "unknown key"),
        ({"index": {"write": "a", "against": ["a"]}}, "differ"),
        ({"keep": "text"}, "not a ranking"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        MinHash(**params)


def test_config_errors_name_the_stage_and_datatrove_names_load(tmp_path):
    (tmp_path / "in.parquet").write_bytes(b"")
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "in.parquet")
    bad = write_pipeline(
        tmp_path / "bad.yaml",
        f"""
        name: t
        input: {{format: parquet, path: {tmp_path / "in.parquet"}}}
        output: {{path: {tmp_path / "out"}}}
        stages:
          - {{id: dedup, uses: minhash, with: {{bands: 8, rows: 14}}}}
        """,
    )
    with pytest.raises(ConfigError, match=r"stage 'dedup' \(minhash\).*looks swapped") as e:
        config.load(str(bad))
    assert "swap them" in str(e.value)
    good = write_pipeline(tmp_path / "good.yaml", bad.read_text().replace("bands: 8, rows: 14", "n_grams: 3"))
    assert config.load(str(good)).stages[0].build().plan.ngram == 3


# -- connected components --------------------------------------------------------------------------------------------


class _PieceTable:
    """A Table of the protocol over pieces split at random (map_batches) and hash-partitioned (group_by)."""

    def __init__(self, t: pa.Table, rng: random.Random) -> None:
        self.t, self.rng = t, rng

    def _pieces(self, t: pa.Table) -> list[pa.Table]:
        n = t.num_rows
        cuts = sorted(self.rng.sample(range(1, n), min(3, n - 1))) if n > 1 else []
        return [t.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, n])]

    def map_batches(self, fn):
        outs = [fn(p) for p in self._pieces(self.t) if p.num_rows]
        return _PieceTable(pa.concat_tables(outs, promote_options="permissive") if outs else self.t, self.rng)

    def group_by(self, key, fn):
        keys = self.t.column(key).to_pylist()
        parts = [[i for i, k in enumerate(keys) if hash(k) % 3 == j] for j in range(3)]
        outs = [fn(self.t.take(pa.array(p, pa.int64()))) for p in parts if p]
        return _PieceTable(pa.concat_tables(outs, promote_options="permissive"), self.rng)

    def materialize(self):
        return self

    def count(self):
        return self.t.num_rows


def _components_of(edges: list[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    nodes = {x for e in edges for x in e}
    return {x: min(y for y in nodes if find(y) == find(x)) for x in nodes}


@pytest.mark.parametrize("seed", range(8))
def test_connected_components_label_every_node_with_its_component_minimum(seed):
    rng = random.Random(seed)
    n, m = rng.randint(2, 80), rng.randint(1, 120)
    if seed == 0:  # a long path in shuffled order: the worst case for rounds
        order = [f"n{i:03d}" for i in range(60)]
        rng.shuffle(order)
        edges = list(zip(order, order[1:]))
    else:
        edges = [(f"n{rng.randint(0, n):03d}", f"n{rng.randint(0, n):03d}") for _ in range(m)]
    table = pa.table({"u": [a for a, _ in edges], "v": [b for _, b in edges]})
    stars, rounds = connected_components(_PieceTable(table, rng))
    label = dict(zip(stars.t.column("u").to_pylist(), stars.t.column("v").to_pylist()))
    assert len(label) == stars.t.num_rows  # one centre per leaf
    want = _components_of(edges)
    for node, minimum in want.items():
        assert label.get(node, node) == minimum
    assert 1 <= rounds <= 12


# -- the stage end to end --------------------------------------------------------------------------------------------


def _corpus(seed: int = 0, originals: int = 60, prefix: str = "d") -> tuple[list[dict], dict[str, str]]:
    """Original documents, and for every third one two near copies (1 and 2 substituted words of 200: Jaccard about 0.95 and 0.9); returns
    the rows and {copy id: original id}."""
    rng = random.Random(seed)
    rows, copies = [], {}
    for i in range(originals):
        text = _text(rng)
        oid = f"{prefix}{i:03d}"
        rows.append({"id": oid, "text": text, "score": rng.random()})
        if i % 3 == 0:
            for k, subs in enumerate((1, 2)):
                cid = f"{prefix}{i:03d}-copy{k}"
                rows.append({"id": cid, "text": _edit(rng, text, subs), "score": rng.random()})
                copies[cid] = oid
    rows.append({"id": f"{prefix}-empty", "text": "", "score": 0.5})
    rng.shuffle(rows)
    return rows, copies


PIPE = """
name: mh
input: {format: parquet, path: IN}
output: {path: OUT, shard_rows: 50}
engine: {batch_rows: 17, shuffle_partitions: 3}
stages:
  - {id: dedup, uses: minhash, with: WITH}
"""


def _run(tmp_path, rows, with_: str, name: str = "out", runner: str = "local", inp: str = "in"):
    src = tmp_path / inp
    if not src.exists():
        src.mkdir()
        half = len(rows) // 2
        pq.write_table(pa.Table.from_pylist(rows[:half]), src / "a.parquet")
        pq.write_table(pa.Table.from_pylist(rows[half:]), src / "b.parquet")
    body = PIPE.replace("IN", str(src)).replace("OUT", str(tmp_path / name)).replace("WITH", with_)
    stats = engine.run(config.load(str(write_pipeline(tmp_path / f"{name}.yaml", body))), runner=runner)
    out = tmp_path / name
    kept = pq.read_table(out / "data")
    rejected = pq.read_table(out / "rejected" / "dedup") if (out / "rejected" / "dedup").exists() else None
    return stats, kept, rejected


def _groups(rows, copies):
    groups: dict[str, list[dict]] = {}
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        groups.setdefault(copies.get(r["id"], r["id"]), []).append(by_id[r["id"]])
    return {k: v for k, v in groups.items() if len(v) > 1}


@pytest.mark.parametrize("keep", ["first", "longest", "score"])
def test_stage_removes_planted_near_duplicates_and_keeps_by_rule(tmp_path, keep, monkeypatch):
    distributed = keep != "first"  # the other rules run connected components in rounds, not on one worker
    if distributed:
        monkeypatch.setattr(minhash, "SMALL_GRAPH_EDGES", 0)
    rows, copies = _corpus()
    stats, kept, rejected = _run(tmp_path, rows, f"{{keep: {keep}}}")
    groups = _groups(rows, copies)

    def winner(members):
        if keep == "first":
            return min(members, key=lambda r: r["id"])
        if keep == "longest":
            return min(members, key=lambda r: (-len(r["text"]), r["id"]))
        return max(members, key=lambda r: r["score"])

    want_dup_of = {r["id"]: winner(g)["id"] for g in groups.values() for r in g if r is not winner(g)}
    got = dict(zip(rejected.column("id").to_pylist(), rejected.column("duplicate_of").to_pylist()))
    assert got == want_dup_of
    assert set(rejected.column("reason").to_pylist()) == {"near_duplicate"}
    assert "duplicate_of" not in kept.column_names
    size = dict(zip(kept.column("id").to_pylist(), kept.column("dedup_cluster_size").to_pylist()))
    cluster = dict(zip(kept.column("id").to_pylist(), kept.column("dedup_cluster").to_pylist()))
    for g in groups.values():
        w = winner(g)["id"]
        assert size[w] == 3 and cluster[w] == w
    singles = [i for i in size if i not in {winner(g)["id"] for g in groups.values()}]
    assert all(size[i] == 1 and cluster[i] == i for i in singles)
    counters = next(s for s in stats["stages"] if s["id"] == "dedup")["counters"]
    assert counters["clusters"] == len(groups) == 20 and counters["largest_cluster"] == 3
    assert counters["near_duplicates"] == 40 and (
        counters["cc_rounds"] >= 2 if distributed else counters["cc_rounds"] == 0
    )
    assert counters["candidate_pairs"] >= counters["verified_pairs"] >= 40
    assert counters[f"hash_scheme:{mm.HASH_SCHEME}"] == 1
    assert stats["conserved"] and stats["output_docs"] == len(rows) - 40


def test_verification_drops_lsh_false_positives(tmp_path):
    # a deliberately loose banding (40 x 2) makes pairs at Jaccard ~0.35 candidates; verification removes them
    rng = random.Random(3)
    rows = []
    for i in range(15):
        text = _text(rng)
        rows.append({"id": f"a{i:02d}", "text": text})
        rows.append({"id": f"b{i:02d}", "text": _edit(rng, text, 14)})  # 14 of 200 words: J ~ 0.5
    for r in rows:
        if r["id"].startswith("b"):
            r["exact"] = mm.exact_jaccard(_shingles(r["text"]), _shingles(rows[rows.index(r) - 1]["text"]))
    loose, _, rej_loose = _run(tmp_path, rows, "{bands: 40, rows: 2, min_jaccard: null}", name="loose")
    strict, _, rej_strict = _run(tmp_path, rows, "{bands: 40, rows: 2, min_jaccard: 0.8}", name="strict")
    c_loose = next(s for s in loose["stages"] if s["id"] == "dedup")["counters"]
    c_strict = next(s for s in strict["stages"] if s["id"] == "dedup")["counters"]
    assert max(r.get("exact", 0) for r in rows) < 0.7
    assert rej_loose is not None and rej_loose.num_rows >= 10  # unverified: the loose banding merges them
    assert c_strict["candidate_pairs"] == c_loose["candidate_pairs"] >= 10
    assert c_strict["verified_pairs"] == 0 and rej_strict is None


def test_keep_column_must_exist(tmp_path):
    rows, _ = _corpus(originals=6)
    with pytest.raises(Exception, match="no column 'quality_score'"):
        _run(tmp_path, rows, "{keep: quality_score}")


# -- the cross-dump index --------------------------------------------------------------------------------------------


def test_a_later_dump_is_deduplicated_against_the_index_of_an_earlier_one(tmp_path):
    first, first_copies = _corpus(seed=1, originals=30, prefix="p")
    idx1 = tmp_path / "idx1"
    stats1, kept1, _ = _run(tmp_path, first, f"{{index: {{write: {idx1}}}}}", name="run1", inp="in1")
    kept1_ids = set(kept1.column("id").to_pylist())
    assert (idx1 / "_manifest.json").exists()
    index_rows = pq.read_table([str(p) for p in idx1.glob("*.parquet")])
    assert set(index_rows.column("id").to_pylist()) == kept1_ids - {"p-empty"}  # kept documents only
    assert index_rows.num_rows == 20 * (len(kept1_ids) - 1)
    meta = json.loads(pq.read_schema(next(idx1.glob("*.parquet"))).metadata[b"curate.minhash"])
    assert meta["hash_scheme"] == mm.HASH_SCHEME and (meta["bands"], meta["rows"]) == (20, 8)

    # dump 2: its own documents (with near copies among themselves), 5 documents of dump 1 as they were and
    # 5 near copies of other dump-1 documents
    second, second_copies = _corpus(seed=2, originals=30, prefix="q")
    rng = random.Random(9)
    originals = sorted(i for i in kept1_ids if "-" not in i)
    shared = originals[:5]
    near = originals[5:10]
    by_id = {r["id"]: r for r in first}
    for k, i in enumerate(shared):
        second.append({"id": f"r{k}", "text": by_id[i]["text"], "score": 0.1})
    for k, i in enumerate(near):
        second.append({"id": f"s{k}", "text": _edit(rng, by_id[i]["text"], 2), "score": 0.1})
    idx2 = tmp_path / "idx2"
    stats2, kept2, rej2 = _run(
        tmp_path, second, f"{{index: {{against: [{idx1}], write: {idx2}}}}}", name="run2", inp="in2"
    )
    rej = {r["id"]: r for r in rej2.to_pylist()}
    indexed = {i: r for i, r in rej.items() if r["reason"] == "near_duplicate_indexed"}
    want = {f"r{k}": i for k, i in enumerate(shared)} | {f"s{k}": i for k, i in enumerate(near)}
    assert {i: r["duplicate_of"] for i, r in indexed.items()} == want
    assert {r["duplicate_index"] for r in indexed.values()} == {str(idx1)}
    within = {i for i, r in rej.items() if r["reason"] == "near_duplicate"}
    assert within == {c for c in second_copies}
    counters = next(s for s in stats2["stages"] if s["id"] == "dedup")["counters"]
    assert counters["indexed_duplicates"] == 10

    # dump 3 against both indexes (written and read in one run above): dump 2's kept documents are found too
    third = [
        {"id": f"t{k}", "text": t, "score": 0.0}
        for k, t in enumerate([t for t in kept2.column("text").to_pylist() if t][:4])
    ]
    third += [{"id": "t-new", "text": _text(random.Random(11)), "score": 0.0}]
    _, kept3, rej3 = _run(tmp_path, third, f"{{index: {{against: [{idx1}, {idx2}]}}}}", name="run3", inp="in3")
    assert kept3.column("id").to_pylist() == ["t-new"]
    assert set(rej3.column("duplicate_index").to_pylist()) <= {str(idx1), str(idx2)}


def test_an_index_with_other_parameters_or_unfinished_is_refused(tmp_path):
    rows, _ = _corpus(originals=6)
    idx = tmp_path / "idx"
    _run(tmp_path, rows, f"{{index: {{write: {idx}}}}}", name="w")
    with pytest.raises(ConfigError, match="seed: 1 \\(here 2\\)"):
        _run(tmp_path, rows, f"{{seed: 2, index: {{against: [{idx}]}}}}", name="other_seed")
    with pytest.raises(ConfigError, match="bands"):
        _run(tmp_path, rows, f"{{preset: fineweb, index: {{against: [{idx}]}}}}", name="other_bands")
    (idx / "_manifest.json").unlink()
    with pytest.raises(InputError, match="_manifest.json"):
        _run(tmp_path, rows, f"{{index: {{against: [{idx}]}}}}", name="unfinished")


# -- both runners ----------------------------------------------------------------------------------------------------


def test_ray_and_local_runners_remove_the_same_documents(tmp_path, ray_session, monkeypatch):
    monkeypatch.setattr(minhash, "SMALL_GRAPH_EDGES", 0)  # connected components in distributed rounds
    from curate.engine import ray_docs as ray_engine

    monkeypatch.setattr(ray_engine, "SMALL_GROUP_BYTES", 0)  # and every group_by a hash shuffle
    rows, copies = _corpus(originals=30)
    idx = tmp_path / "idx"
    results = {}
    for runner in ("local", "ray"):
        stats, kept, rejected = _run(
            tmp_path, rows, f"{{keep: longest, index: {{write: {idx}-{runner}}}}}", name=f"out-{runner}", runner=runner
        )
        counters = next(s for s in stats["stages"] if s["id"] == "dedup")["counters"]
        files = sorted((tmp_path / f"idx-{runner}").glob("*.parquet"))
        assert all(b"curate.minhash" in pq.read_schema(f).metadata for f in files)  # what a reader checks
        index = pq.read_table([str(p) for p in files])
        results[runner] = (
            kept.sort_by("id").select(["id", "dedup_cluster", "dedup_cluster_size"]),
            rejected.sort_by("id").select(["id", "reason", "duplicate_of"]),
            {k: v for k, v in counters.items() if k != "cc_rounds"},
            index.sort_by([("band", "ascending"), ("key", "ascending"), ("id", "ascending")]),
        )
    for a, b in zip(results["local"], results["ray"]):
        assert a == b if isinstance(a, dict) else a.equals(b)
    assert pc.sum(pc.equal(results["ray"][1].column("reason"), "near_duplicate")).as_py() == len(copies)
