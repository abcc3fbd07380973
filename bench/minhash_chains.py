"""minhash chaining: `clusters: connected` (connected components, the default) vs `clusters: star` on planted chains
of real prose, and how many removals the two modes disagree on among the real corpus pages.

Planted documents (Gutenberg prose, bench/minhash_data.py: packed paragraphs of 250-600 words; edits are word
substitutions, insertions and deletions drawn from the corpus, as minhash_quality.py makes them):
- chains A0 -> A1 -> ... -> A6: each document a near copy of the one before at word-5-gram Jaccard 0.85, so the ends
  are far apart (exact J(A0, A6) about 0.45);
- true duplicate pairs: an original and a near copy at J drawn uniformly in 0.8-1.0;
- unrelated documents: the other Gutenberg documents.
All go through `minhash` (defaults: 20 x 8, min_jaccard 0.7) on the local runner, once per mode. Figures:
- recall: planted pairs at exact J >= 0.8 (the duplicate pairs; the chain links separately) with one of the two
  removed;
- precision: removed documents whose exact Jaccard with their `duplicate_of` is >= 0.7 (min_jaccard, the bar star
  mode applies to the estimate), and the number below 0.7 and below 0.5;
- seconds of the whole run (signatures included), median of --repeats runs.
Then both modes on every real corpus page (bench/corpus_docs.py: 1,491 texts extracted from the trafilatura and
Readability pages and the corpus WARCs): removals in either mode, those that differ, and removals below 0.7.

    python bench/minhash_chains.py [--chains 150] [--pairs 400] [--links 6] [--seed 0] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_docs import extracted_docs  # noqa: E402
from minhash_data import gutenberg_docs, jaccard, near_copy, shingles  # noqa: E402

from curate import config, engine  # noqa: E402

MODES = {"connected (default)": "{clusters: connected}", "star": "{clusters: star}"}
MIN_JACCARD = 0.7  # the default min_jaccard: threshold 0.8 - 0.1
LINK_J = 0.85


def build(chains: int, pairs: int, links: int, seed: int) -> tuple[list[dict], list[tuple[str, str, float]], dict]:
    """Rows, the planted pairs (a, b, exact J, kind) and facts about the chains."""
    rng = random.Random(seed)
    docs = gutenberg_docs()
    rng.shuffle(docs)
    if len(docs) < chains + pairs:
        sys.exit(f"{len(docs)} Gutenberg documents: fewer than --chains + --pairs")
    vocab = sorted({w for _, t in docs[:300] for w in t.split() if w.isalpha()})
    rows: list[dict] = []
    planted: list[tuple[str, str, float, str]] = []
    ends = []
    for doc_id, text in docs[:chains]:
        ids, texts = [f"{doc_id}~c0"], [text]
        for i in range(1, links + 1):
            copy, j, _ = near_copy(texts[-1], LINK_J, rng, vocab)
            ids.append(f"{doc_id}~c{i}")
            texts.append(copy)
            planted.append((ids[-2], ids[-1], j, "link"))
        ends.append(jaccard(shingles(texts[0]), shingles(texts[-1])))
        rows += [{"id": i, "text": t} for i, t in zip(ids, texts)]
    for doc_id, text in docs[chains : chains + pairs]:
        copy, j, _ = near_copy(text, rng.uniform(0.8, 1.0), rng, vocab)
        rows += [{"id": doc_id, "text": text}, {"id": f"{doc_id}~copy", "text": copy}]
        planted.append((doc_id, f"{doc_id}~copy", j, "pair"))
    rows += [{"id": i, "text": t} for i, t in docs[chains + pairs :]]
    ends.sort()
    facts = {"chain_ends_j_median": ends[len(ends) // 2], "chain_ends_j_max": ends[-1]} if ends else {}
    return rows, planted, facts


def run(rows: list[dict], with_: str, work: Path, name: str, repeats: int = 1) -> tuple[dict[str, str], dict, float]:
    """{removed id: duplicate_of}, the stage counters, median seconds of `repeats` runs (the whole run)."""
    times = []
    for k in range(repeats):
        removed, counters, seconds = _run_once(rows, with_, work, f"{name}-{k}")
        times.append(seconds)
    return removed, counters, statistics.median(times)


def _run_once(rows: list[dict], with_: str, work: Path, name: str) -> tuple[dict[str, str], dict, float]:
    inp = work / f"in-{len(rows)}.parquet"
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
    rej_dir = work / name / "rejected" / "dedup"
    removed: dict[str, str] = {}
    if rej_dir.exists():
        rej = pq.read_table(rej_dir, columns=["id", "duplicate_of"])
        removed = dict(zip(rej.column("id").to_pylist(), rej.column("duplicate_of").to_pylist()))
    counters = next(s for s in stats["stages"] if s["id"] == "dedup")["counters"]
    return removed, counters, seconds


def removal_quality(removed: dict[str, str], texts: dict[str, str], cache: dict) -> tuple[int, int, int]:
    """(removed with exact J >= MIN_JACCARD to duplicate_of, below it, below 0.5)."""
    js = []
    for doc, rep in removed.items():
        key = (doc, rep)
        if key not in cache:
            cache[key] = jaccard(shingle_set(doc, texts, cache), shingle_set(rep, texts, cache))
        js.append(cache[key])
    return sum(j >= MIN_JACCARD for j in js), sum(j < MIN_JACCARD for j in js), sum(j < 0.5 for j in js)


def shingle_set(doc: str, texts: dict[str, str], cache: dict) -> set:
    if doc not in cache:
        cache[doc] = shingles(texts[doc])
    return cache[doc]


def planted_bench(args: argparse.Namespace, work: Path) -> dict:
    t0 = time.perf_counter()
    rows, planted, facts = build(args.chains, args.pairs, args.links, args.seed)
    texts = {r["id"]: r["text"] for r in rows}
    links = [p for p in planted if p[3] == "link"]
    lj = sorted(p[2] for p in links)
    print(
        f"### Planted chains: {args.chains} chains of {args.links + 1} documents (links at exact J "
        f"{lj[0]:.2f}-{lj[-1]:.2f}, median {lj[len(lj) // 2]:.2f}; ends median {facts['chain_ends_j_median']:.2f}, "
        f"max {facts['chain_ends_j_max']:.2f}), {args.pairs} duplicate pairs at J 0.8-1.0, "
        f"{len(rows) - args.chains * (args.links + 1) - 2 * args.pairs} unrelated documents; {len(rows):,} in all "
        f"(built in {time.perf_counter() - t0:.0f}s)\n"
    )
    print(
        "| clusters | removed | precision (J >= 0.7 to duplicate_of) | removed below 0.7 | below 0.5 | "
        "recall, pairs at J >= 0.8 | recall, chain links | chain ends removed for each other | chain_kept | s, median |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cache: dict = {}
    out = {}
    for name, with_ in MODES.items():
        removed, counters, seconds = run(rows, with_, work, f"p-{name.split()[0]}", args.repeats)
        good, below, far = removal_quality(removed, texts, cache)
        pairs80 = [p for p in planted if p[3] == "pair" and p[2] >= 0.8]
        rec_pairs = sum(a in removed or b in removed for a, b, _, _ in pairs80) / len(pairs80)
        links80 = [p for p in links if p[2] >= 0.8]
        rec_links = sum(a in removed or b in removed for a, b, _, _ in links80) / len(links80)
        ends_for_each_other = sum(
            removed.get(f"{a.rsplit('~', 1)[0]}~c{args.links}") == f"{a.rsplit('~', 1)[0]}~c0"
            for a, _, _, _ in links
            if a.endswith("~c0")
        )
        precision = good / len(removed) if removed else float("nan")
        print(
            f"| {name} | {len(removed):,} | {precision:.3f} | {below} | {far} | {rec_pairs:.3f} (n={len(pairs80)}) | "
            f"{rec_links:.3f} (n={len(links80)}) | {ends_for_each_other}/{args.chains} | "
            f"{counters.get('chain_kept', 0)} | {seconds:.1f} |"
        )
        out[name] = {
            "removed": len(removed), "precision_j>=0.7": round(precision, 4), "removed_j<0.7": below,
            "removed_j<0.5": far, "recall_pairs_j>=0.8": round(rec_pairs, 4),
            "recall_links_j>=0.8": round(rec_links, 4), "chain_ends_removed_for_each_other": ends_for_each_other,
            "seconds": round(seconds, 1), "counters": counters,
        }  # fmt: skip
    return out


def real_pages(work: Path, repeats: int) -> dict:
    table = extracted_docs()
    rows = [{"id": i, "text": t} for i, t in zip(table.column("id").to_pylist(), table.column("text").to_pylist())]
    texts = {r["id"]: r["text"] for r in rows}
    results = {name: run(rows, with_, work, f"r-{name.split()[0]}", repeats) for name, with_ in MODES.items()}
    (conn, _, conn_s), (star, _, star_s) = results.values()
    only_conn = set(conn) - set(star)
    only_star = set(star) - set(conn)
    other_rep = sum(conn[d] != star[d] for d in set(conn) & set(star))
    print(f"\n### Real pages: {len(rows):,} corpus pages (bench/corpus_docs.py), default parameters\n")
    print("| clusters | removed | removed below 0.7 | below 0.5 | largest cluster | s, median |")
    print("|---|---:|---:|---:|---:|---:|")
    cache: dict = {}
    out: dict = {}
    for name, (removed, counters, seconds) in results.items():
        _, below, far = removal_quality(removed, texts, cache)
        print(f"| {name} | {len(removed)} | {below} | {far} | {counters.get('largest_cluster', 0)} | {seconds:.1f} |")
        out[name] = {"removed": len(removed), "removed_j<0.7": below, "removed_j<0.5": far}
        out[name]["seconds"] = round(seconds, 1)
    print(
        f"\nremovals that differ: {len(only_conn) + len(only_star)} ({len(only_conn)} removed by connected only, "
        f"{len(only_star)} by star only); removed by both but for another document: {other_rep}"
    )
    for d in sorted(only_conn)[:10]:
        j = jaccard(shingle_set(d, texts, cache), shingle_set(conn[d], texts, cache))
        print(f"  connected only: {d} for {conn[d]} (exact J {j:.2f})")
    out["differ"] = {"connected_only": len(only_conn), "star_only": len(only_star), "other_representative": other_rep}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chains", type=int, default=150)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--links", type=int, default=6, help="near copies per chain (documents: links + 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode; seconds are their median")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = {"planted": planted_bench(args, Path(tmp))}
        if not args.skip_real:
            summary["real"] = real_pages(Path(tmp), args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
