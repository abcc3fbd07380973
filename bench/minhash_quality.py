"""Near-duplicate detection quality of the minhash stage against exact word-5-gram Jaccard, on real text.

Every real document (Gutenberg prose and extracted web pages, see minhash_data.py) gets one near copy at a drawn
target Jaccard (uniform in 0.2-1.0); all originals and copies go through `minhash` on the local runner, once per
configuration. A pair is detected when both documents end in one cluster. Reported per exact-Jaccard bucket, with
the targets: recall >= 0.95 at J >= 0.8, >= 0.99 at J >= 0.9, and under 2% of pairs with J < 0.5 removed; and the
precision of all pairs the stage put in one cluster (planted or not) against exact Jaccard.

    python bench/minhash_quality.py [--max-docs N] [--seed S]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from minhash_data import gutenberg_docs, jaccard, near_copy, shingles, web_docs  # noqa: E402

from curate import config, engine  # noqa: E402

CONFIGS = {
    "default (20x8, verified)": "{}",
    "20x8, no verification": "{min_jaccard: null}",
    "fineweb (14x8)": "{preset: fineweb}",
}
BUCKETS = [(0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 0.85),
           (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)]  # fmt: skip


def build(max_docs: int, seed: int) -> tuple[list[dict], list[tuple[str, str, float]]]:
    rng = random.Random(seed)
    docs = gutenberg_docs() + web_docs()
    rng.shuffle(docs)
    docs = docs[:max_docs]
    vocab = sorted({w for _, t in docs[:300] for w in t.split() if w.isalpha()})
    rows, pairs = [], []
    for doc_id, text in docs:
        copy, j, how = near_copy(text, rng.uniform(0.2, 1.0), rng, vocab)
        rows.append({"id": doc_id, "text": text})
        rows.append({"id": f"{doc_id}~copy", "text": copy, "edits": how})
        pairs.append((doc_id, f"{doc_id}~copy", j))
    return rows, pairs


def run(rows: list[dict], with_: str, work: Path, name: str) -> tuple[dict[str, str], dict, float]:
    """Cluster of every document (kept: dedup_cluster, removed: duplicate_of), the stage counters, seconds."""
    inp = work / "in.parquet"
    if not inp.exists():
        pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in rows]), inp)
    pipe = work / f"{name}.yaml"
    pipe.write_text(
        f"name: q\ninput: {{format: parquet, path: {inp}}}\noutput: {{path: {work / name}}}\n"
        f"stages:\n  - {{id: dedup, uses: minhash, with: {with_}}}\n"
    )
    t0 = time.perf_counter()
    stats = engine.run(config.load(str(pipe)), runner="local")
    seconds = time.perf_counter() - t0
    kept = pq.read_table(work / name / "data", columns=["id", "dedup_cluster"])
    cluster = dict(zip(kept.column("id").to_pylist(), kept.column("dedup_cluster").to_pylist()))
    rej_dir = work / name / "rejected" / "dedup"
    if rej_dir.exists():
        rej = pq.read_table(rej_dir, columns=["id", "duplicate_of"])
        cluster.update(zip(rej.column("id").to_pylist(), rej.column("duplicate_of").to_pylist()))
    counters = next(s for s in stats["stages"] if s["id"] == "dedup")["counters"]
    return cluster, counters, seconds


def cluster_pairs(cluster: dict[str, str], cap: int = 50) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for doc, c in cluster.items():
        groups.setdefault(c, []).append(doc)
    out = []
    for members in groups.values():
        out += list(itertools.combinations(sorted(members)[:cap], 2))
    return out


def _share(pairs: list[tuple[str, str, float]], cluster: dict[str, str], cond) -> tuple[float, int]:
    """Share of the planted pairs whose Jaccard satisfies cond that ended in one cluster, and their number."""
    sel = [p for p in pairs if cond(p[2])]
    return (sum(cluster[a] == cluster[b] for a, b, _ in sel) / len(sel) if sel else float("nan")), len(sel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-docs", type=int, default=3000, help="originals (each gets one copy)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, pairs = build(args.max_docs, args.seed)
    texts = {r["id"]: r["text"] for r in rows}
    print(f"{len(pairs)} originals + {len(pairs)} near copies ({time.perf_counter() - t0:.0f}s to build)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, with_ in CONFIGS.items():
            cluster, counters, seconds = run(rows, with_, Path(tmp), f"c{len(results)}")
            results[name] = (cluster, counters, seconds)
    names = list(CONFIGS)
    print(f"\n{'exact J':>11} {'pairs':>6} " + " ".join(f"{n:>26}" for n in names))
    summary: dict[str, dict] = {n: {} for n in names}
    for lo, hi in BUCKETS:
        inside = [p for p in pairs if lo <= p[2] < hi]
        cells = []
        for n in names:
            cluster = results[n][0]
            hit = sum(cluster[a] == cluster[b] for a, b, _ in inside)
            cells.append(f"{hit / len(inside):>26.3f}" if inside else f"{'-':>26}")
        print(f"{lo:>4.2f}-{min(hi, 1):<4.2f}  {len(inside):>6} " + " ".join(cells))
    print()
    for n in names:
        cluster, counters, seconds = results[n]

        r80, n80 = _share(pairs, cluster, lambda j: j >= 0.8)
        r90, n90 = _share(pairs, cluster, lambda j: j >= 0.9)
        fp50, n50 = _share(pairs, cluster, lambda j: j < 0.5)
        together = cluster_pairs(cluster)
        exact = [jaccard(shingles(texts[a]), shingles(texts[b])) for a, b in together]
        prec80 = sum(j >= 0.8 for j in exact) / len(exact) if exact else float("nan")
        prec50 = sum(j >= 0.5 for j in exact) / len(exact) if exact else float("nan")
        summary[n] = {
            "recall_j>=0.8": round(r80, 4), "pairs_j>=0.8": n80, "recall_j>=0.9": round(r90, 4), "pairs_j>=0.9": n90,
            "removed_j<0.5": round(fp50, 4), "pairs_j<0.5": n50, "pairs_in_clusters": len(together),
            "precision_j>=0.8": round(prec80, 4), "precision_j>=0.5": round(prec50, 4),
            "seconds": round(seconds, 1), "counters": counters,
        }  # fmt: skip
        ok = r80 >= 0.95 and r90 >= 0.99 and fp50 < 0.02
        print(
            f"{n:<26} recall J>=0.8 {r80:.3f} (n={n80})  J>=0.9 {r90:.3f} (n={n90})  removed J<0.5 {fp50:.3f} "
            f"(n={n50})  precision of {len(together)} clustered pairs: J>=0.8 {prec80:.3f}, J>=0.5 {prec50:.3f}  "
            f"candidates {counters.get('candidate_pairs')} -> verified {counters.get('verified_pairs')}  "
            f"{seconds:.1f}s  {'meets targets' if ok else 'MISSES targets'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
