"""minhash `clusters: star`: chained near-duplicates (A~B~C, A and C unlike) are not removed for a kept document
they are not themselves similar to; `clusters: connected` documents the old behaviour; `auto`, the default, is star
wherever verification runs."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError
from curate_filters.dedup import minhash
from curate_filters.dedup import minhash_steps as steps
from curate_filters.dedup.minhash import MinHash

VOCAB = sorted({"".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyz", k=6)) for i in range(5000)})
WINDOW, SHIFT, LINKS = 300, 25, 6  # a chain of 6 documents: each the last one shifted by 25 of its 300 words


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = text.split()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _corpus(seed: int = 0) -> tuple[list[dict], list[str]]:
    """Two chains c<k>-0..5 (consecutive exact J 0.84, J(c-0, c-5) 0.41), a true duplicate pair (J ~0.95) and
    unrelated documents. Returns the rows and the ids of the first chain."""
    rng = random.Random(seed)
    rows = []
    for k in range(2):
        stream = [rng.choice(VOCAB) for _ in range(WINDOW + SHIFT * (LINKS - 1))]
        for i in range(LINKS):
            words = stream[i * SHIFT : i * SHIFT + WINDOW]
            rows.append({"id": f"c{k}-{i}", "text": " ".join(words), "score": rng.random()})
    base = [rng.choice(VOCAB) for _ in range(WINDOW)]
    copy = list(base)
    copy[150] = "zzzzzz"
    rows += [{"id": "p-a", "text": " ".join(base), "score": 0.3}, {"id": "p-b", "text": " ".join(copy), "score": 0.9}]
    rows += [{"id": f"u{i:02d}", "text": " ".join(rng.choices(VOCAB, k=200)), "score": rng.random()} for i in range(20)]
    rng.shuffle(rows)
    return rows, [f"c0-{i}" for i in range(LINKS)]


PIPE = """
name: chains
input: {format: parquet, path: IN}
output: {path: OUT, shard_rows: 50}
engine: {batch_rows: BATCH, shuffle_partitions: 3}
stages:
  - {id: dedup, uses: minhash, with: WITH}
"""


def _run(tmp_path, rows, with_: str, name: str, runner: str = "local", batch: int = 7):
    src = tmp_path / "in"
    if not src.exists():
        src.mkdir()
        pq.write_table(pa.Table.from_pylist(rows[: len(rows) // 2]), src / "a.parquet")
        pq.write_table(pa.Table.from_pylist(rows[len(rows) // 2 :]), src / "b.parquet")
    body = PIPE.replace("IN", str(src)).replace("OUT", str(tmp_path / name)).replace("WITH", with_)
    body = body.replace("BATCH", str(batch))
    stats = engine.run(config.load(str(write_pipeline(tmp_path / f"{name}.yaml", body))), runner=runner)
    data = tmp_path / name / "data"
    kept = pq.read_table(data).sort_by("id") if data.exists() else None  # none when every document is removed
    rej_dir = tmp_path / name / "rejected" / "dedup"
    rejected = pq.read_table(rej_dir).sort_by("id") if rej_dir.exists() else None
    counters = next(s for s in stats["stages"] if s["id"] == "dedup")["counters"]
    return kept, rejected, counters


def _dup_of(rejected) -> dict[str, str]:
    return dict(zip(rejected.column("id").to_pylist(), rejected.column("duplicate_of").to_pylist()))


def test_the_planted_chain_is_what_it_claims():
    rows, chain = _corpus()
    texts = {r["id"]: r["text"] for r in rows}
    links = [_jaccard(texts[a], texts[b]) for a, b in zip(chain, chain[1:])]
    assert all(0.8 < j < 0.9 for j in links)
    assert _jaccard(texts[chain[0]], texts[chain[-1]]) < 0.45
    assert _jaccard(texts["p-a"], texts["p-b"]) > 0.9


def test_connected_mode_removes_the_chain_end_for_a_document_it_is_unlike(tmp_path):
    rows, chain = _corpus()
    texts = {r["id"]: r["text"] for r in rows}
    _, rejected, counters = _run(tmp_path, rows, "{clusters: connected}", "connected")
    dup_of = _dup_of(rejected)
    # the old behaviour: the whole chain is one cluster led by its first document
    assert all(dup_of[c] == chain[0] for c in chain[1:])
    assert _jaccard(texts[chain[-1]], texts[chain[0]]) < 0.45
    assert dup_of["p-b"] == "p-a" and counters["clusters"] == 3 and counters["largest_cluster"] == LINKS


@pytest.mark.parametrize("keep", ["first", "longest", "score"])
def test_star_mode_removes_nothing_below_the_threshold(tmp_path, keep, monkeypatch):
    if keep != "first":
        monkeypatch.setattr(minhash, "SMALL_GRAPH_EDGES", 0)  # components in distributed rounds
    rows, chain = _corpus()
    texts = {r["id"]: r["text"] for r in rows}
    by_id = {r["id"]: r for r in rows}
    kept, rejected, counters = _run(tmp_path, rows, f"{{clusters: star, keep: {keep}}}", f"star-{keep}")
    dup_of = _dup_of(rejected)
    kept_ids = set(kept.column("id").to_pylist())
    assert set(rejected.column("reason").to_pylist()) == {"near_duplicate"}
    for doc, rep in dup_of.items():
        assert rep in kept_ids  # removed as a duplicate of a kept document, never of a removed one
        assert _jaccard(texts[doc], texts[rep]) >= 0.7, (doc, rep)  # exact Jaccard (min_jaccard auto: 0.8 - 0.1)

    def rank(i: str):
        if keep == "first":
            return (i,)
        if keep == "longest":
            return (-len(texts[i]), i)
        return (-by_id[i]["score"], i)

    for doc, rep in dup_of.items():
        assert rank(rep) < rank(doc)  # the representative comes first in `keep` order
    # each chain splits: at least two of its documents stay, and the ends are never one's duplicate of the other
    for k in range(2):
        members = [f"c{k}-{i}" for i in range(LINKS)]
        assert len(kept_ids & set(members)) >= 2
        assert dup_of.get(members[-1]) != members[0] and dup_of.get(members[0]) != members[-1]
    assert dup_of.get("p-b") == "p-a" or dup_of.get("p-a") == "p-b"
    # cluster columns: a representative carries its own id and its star's size
    size = dict(zip(kept.column("id").to_pylist(), kept.column("dedup_cluster_size").to_pylist()))
    cluster = dict(zip(kept.column("id").to_pylist(), kept.column("dedup_cluster").to_pylist()))
    assert all(cluster[i] == i for i in kept_ids)
    reps = {}
    for rep in dup_of.values():
        reps[rep] = reps.get(rep, 1) + 1
    assert all(size[i] == reps.get(i, 1) for i in kept_ids)
    assert counters["clusters"] == len(reps) and counters["near_duplicates"] == len(dup_of)
    assert counters["chain_kept"] == len(kept_ids & {r["id"] for r in rows if r["id"][0] in "cp"}) - 3
    assert counters["largest_cluster"] == max(reps.values())


def test_star_mode_keeps_the_chain_end_with_its_neighbours(tmp_path):
    rows, chain = _corpus()
    _, rejected, _ = _run(tmp_path, rows, "{clusters: star}", "star")
    dup_of = _dup_of(rejected)
    assert chain[0] not in dup_of and chain[1] in dup_of and dup_of[chain[1]] == chain[0]
    # the far end is kept, or removed for a neighbour it is similar to: never for the chain's first document
    assert dup_of.get(chain[-1]) in (None, chain[-2], chain[-3])
    assert any(c not in dup_of for c in chain[2:])  # something past the first link stays


def test_star_clusters_are_deterministic_and_do_not_depend_on_batching_or_rounds(tmp_path, monkeypatch):
    rows, _ = _corpus(seed=3)
    a = _run(tmp_path, rows, "{clusters: star}", "a", batch=7)
    b = _run(tmp_path, rows, "{clusters: star}", "b", batch=50)
    monkeypatch.setattr(minhash, "SMALL_GRAPH_EDGES", 0)
    c = _run(tmp_path, rows, "{clusters: star}", "c", batch=11)
    for other in (b, c):
        assert a[0].equals(other[0]) and a[1].equals(other[1])
    assert {k: v for k, v in a[2].items() if k != "cc_rounds"} == {k: v for k, v in c[2].items() if k != "cc_rounds"}


def test_star_representatives_greedy_rule():
    from curate_filters.dedup import minhash_math as mm

    rng = np.random.default_rng(0)
    base = rng.choice(2**40, 100, replace=False).astype(np.uint64)
    fresh = iter(rng.choice(2**40, 1000, replace=False).astype(np.uint64) + np.uint64(2**41))

    def swap(s, lo, hi):
        s = s.copy()
        s[lo:hi] = [next(fresh) for _ in range(hi - lo)]
        return s

    # 1 shares 90 of 100 with 0 (J 0.82); 2 shares 90 with 1 (J 0.82) but 80 with 0 (J 0.67); 3 is unrelated
    r1 = swap(base, 0, 10)
    r2 = swap(r1, 10, 20)
    sets = [np.sort(x) for x in (base, r1, r2, swap(base, 0, 100))]
    counts = np.array([len(x) for x in sets])
    sigs = mm.signatures(np.concatenate(sets), counts, mm.Permutations.make(128, 1))
    assert steps.star_representatives(sets, sigs, 0.7).tolist() == [0, 0, 2, 3]
    assert steps.star_representatives(sets, sigs, 0.6).tolist() == [0, 0, 0, 3]
    assert steps.star_representatives(sets[1:], sigs[1:], 0.7).tolist() == [0, 0, 2]  # 1 first: it takes 2
    assert steps.exact_jaccards(sets[0], sets[1:]).round(3).tolist() == [0.818, 0.667, 0.0]
    assert steps.star_representatives([], sigs[:0], 0.7).tolist() == []


def test_star_mode_parameters(tmp_path):
    with pytest.raises(ConfigError, match="min_jaccard is null"):
        MinHash(clusters="star", min_jaccard=None)
    with pytest.raises(ConfigError, match="min_jaccard is null"):
        MinHash(clusters="star", preset="fineweb")
    assert MinHash(clusters="star", preset="fineweb", min_jaccard=0.7).plan.min_jaccard == 0.7
    with pytest.raises(ConfigError, match="index.against"):
        MinHash(clusters="star", index={"against": [str(tmp_path / "idx")]})
    with pytest.raises(ConfigError, match="connected or star"):
        MinHash(clusters="chain")
    # auto, the default: star where it can run, connected without verification or against an index
    assert MinHash().clusters == "auto" and MinHash().cluster_mode == "star"
    assert MinHash(preset="fineweb").cluster_mode == "connected"
    assert MinHash(index={"against": [str(tmp_path / "idx")]}).cluster_mode == "connected"
    assert MinHash(clusters="connected").cluster_mode == "connected"


def test_star_mode_writes_an_index_of_its_kept_documents(tmp_path):
    rows, _ = _corpus()
    idx = tmp_path / "idx"
    kept, _, _ = _run(tmp_path, rows, f"{{clusters: star, index: {{write: {idx}}}}}", "w")
    index = pq.read_table([str(p) for p in idx.glob("*.parquet")])
    assert set(index.column("id").to_pylist()) == set(kept.column("id").to_pylist())
    # and a connected run against it finds every document of the first run
    _, rej, _ = _run(tmp_path, rows, f"{{index: {{against: [{idx}]}}}}", "against")
    assert rej.num_rows == len(rows)


@pytest.mark.ray
@pytest.mark.e2e
def test_ray_and_local_runners_make_the_same_star_clusters(tmp_path, ray_session, monkeypatch):
    monkeypatch.setattr(minhash, "SMALL_GRAPH_EDGES", 0)
    from curate.engine import ray_docs as ray_engine

    monkeypatch.setattr(ray_engine, "SMALL_GROUP_BYTES", 0)  # every group_by a hash shuffle
    rows, _ = _corpus(seed=5)
    out = {}
    for runner in ("local", "ray"):
        kept, rejected, counters = _run(tmp_path, rows, "{clusters: star, keep: score}", f"o-{runner}", runner=runner)
        out[runner] = (
            kept.select(["id", "dedup_cluster", "dedup_cluster_size"]),
            rejected.select(["id", "reason", "duplicate_of"]),
            {k: v for k, v in counters.items() if k != "cc_rounds"},
        )
    assert out["local"][0].equals(out["ray"][0]) and out["local"][1].equals(out["ray"][1])
    assert out["local"][2] == out["ray"][2] and out["local"][2]["chain_kept"] >= 2
