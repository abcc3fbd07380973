"""MinHash speed, side by side in one run on the same real documents (see minhash_data.py).

1. Signature throughput on one core, same documents, same number of permutations: curate (XXH3-64 per distinct
   word, n-gram hashes combined in numpy, multiply-shift permutations), datasketch 2.0 `MinHash.bulk` (its default
   hash: the first 32 bits of SHA-1 of each shingle, then the affine32 scheme), rensa `RMinHash` (R-MinHash, FxHash
   of each shingle; a different sketch, the fastest reference we know). All start from the same simplified text
   (datatrove's simplify_text, timed once apart); datasketch and rensa get str.split() words and their 5-gram
   strings built in Python, curate splits with its own tokenizer. A second table times the permutation core only
   (precomputed 64-bit shingle hashes in, signatures out).
2. End to end: datatrove's four MinHash stages (signature, buckets, cluster, filter; LocalPipelineExecutor, one
   worker, FineWeb's 5-grams, 14 x 8, 64-bit xxhash) against `minhash` on curate's local runner (one process), same
   documents (originals and a near copy of each), each side in its own process for its peak RSS; and how often
   the two agree on the planted pairs, and their recall.

    python bench/minhash_speed.py [--perms 128] [--max-docs 3000] [--rounds 3]
"""

from __future__ import annotations

import os

for _var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per side

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from minhash_data import gutenberg_docs, web_docs  # noqa: E402

from curate.text import clear_caches, simplify_text, tokenizer  # noqa: E402
from curate_filters.dedup import minhash_math as mm  # noqa: E402


def _best(fn, rounds: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.process_time()  # CPU time of this process: the machine is shared
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def _ngrams(words: list[str], n: int = 5) -> list[str]:
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def signature_table(texts: list[str], perms: int, rounds: int) -> None:
    import datasketch
    import rensa

    t_simplify, simple = _best(lambda: [simplify_text(t) for t in texts], 1)
    split = [s.split() for s in simple]
    n_shingles = sum(max(len(w) - 4, 1) for w in split if w)
    tok = tokenizer("en")
    permutations = mm.Permutations.make(perms, 1)

    def curate_sigs(cold: bool = False) -> np.ndarray:
        if cold:  # as a fresh worker's first batch: no tokenizer caches, no word hashes
            clear_caches()
            mm._hashers.clear()
        # else the steady state: distinct chunks (words) already hashed, as after a few batches of Zipfian text
        hashes, counts = mm.shingle_hashes(mm.batch_word_hashes(simple, tok), 5)
        return mm.signatures(hashes, counts, permutations)

    def datasketch_sigs() -> list:
        return datasketch.MinHash.bulk([[g.encode() for g in _ngrams(w)] for w in split], num_perm=perms)

    def rensa_sigs() -> object:
        return rensa.RMinHash.digest_matrix_from_token_sets([_ngrams(w) for w in split], num_perm=perms, seed=1)

    rows = [
        ("curate (warm: words seen before hashed)", _best(curate_sigs, rounds)[0]),
        ("curate (cold: tokenizer caches cleared)", _best(lambda: curate_sigs(True), rounds)[0]),
        ("datasketch 2.0 MinHash.bulk (SHA-1/32, affine32)", _best(datasketch_sigs, min(rounds, 2))[0]),
        (f"rensa {rensa.__version__ if hasattr(rensa, '__version__') else '0.5'} RMinHash (FxHash)",
         _best(rensa_sigs, rounds)[0]),
    ]  # fmt: skip
    ref = rows[0][1]
    print(f"\n1. Signatures, {len(texts)} documents, {n_shingles:,} 5-gram shingles, {perms} permutations, one core")
    print(f"   simplify_text (shared by all, not counted below): {t_simplify:.2f}s")
    print(f"   {'':<50} {'CPU s':>8} {'docs/s':>9} {'shingles/s':>12} {'time/curate':>12}")
    for name, sec in rows:
        print(f"   {name:<50} {sec:>8.2f} {len(texts) / sec:>9.0f} {n_shingles / sec:>12,.0f} {sec / ref:>11.1f}x")

    # the permutation core on the same precomputed 64-bit shingle hashes
    words = [mm.word_hashes(s, tok) for s in simple]
    hashes, counts = mm.shingle_hashes(words, 5)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    per_doc = np.split(hashes, np.cumsum(counts)[:-1])
    core = [
        ("curate signatures()", _best(lambda: mm.signatures(hashes, counts, permutations), rounds)[0]),
        ("datasketch MinHash.bulk, hashfunc=identity",
         _best(lambda: datasketch.MinHash.bulk([h.tolist() for h in per_doc], num_perm=perms,
                                               hashfunc=lambda x: x & 0xFFFFFFFF), min(rounds, 2))[0]),
        ("rensa digest_matrix_from_flat_token_hashes",
         _best(lambda: rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm=perms, seed=1),
               rounds)[0]),
    ]  # fmt: skip
    print(f"\n   permutation core only (precomputed shingle hashes in): {len(hashes):,} hashes")
    for name, sec in core:
        print(f"   {name:<50} {sec:>8.3f} {len(hashes) / sec:>12,.0f} hashes/s {sec / core[0][1]:>8.1f}x")


# -- end to end ------------------------------------------------------------------------------------------------------


def _usage() -> dict:
    """Peak RSS (MB) of this process (VmHWM: ru_maxrss would carry the parent's over fork and exec) and of its
    children, and CPU seconds of both."""
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return {"peak_mb": max(hwm, kids.ru_maxrss) / 1024, "cpu": cpu}


def child_datatrove(data: Path, work: Path) -> dict:
    import datatrove.utils.hashes.xxhash as dt_xxhash
    import xxhash
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    # datatrove 0.10 passes str to xxhash.xxh64_intdigest, which xxhash 3.x refuses; encode as older xxhash did
    dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode("utf-8") if isinstance(data, str) else data)
    cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)
    logs = str(work / "logs")
    t0 = time.perf_counter()
    steps = [
        ([JsonlReader(str(data)), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)], 1),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=cfg)], 14),
        (
            [
                MinhashDedupCluster(
                    input_folder=str(work / "buckets"),
                    output_folder=str(work / "remove"),
                    config=cfg,
                    save_cluster_id=True,
                )
            ],
            1,
        ),
        (
            [
                JsonlReader(str(data)),
                MinhashDedupFilter(
                    input_folder=str(work / "remove"),
                    exclusion_writer=JsonlWriter(str(work / "rm")),
                    load_cluster_ids=True,
                ),
                JsonlWriter(str(work / "kept")),
            ],
            1,
        ),
    ]
    for k, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=f"{logs}/{k}").run()
    seconds = time.perf_counter() - t0
    removed, cluster_of = [], {}
    for folder in ("rm", "kept"):
        for f in sorted((work / folder).glob("*.jsonl*")):
            opener = gzip.open if f.suffix == ".gz" else open
            with opener(f, "rt") as fh:
                for line in fh:
                    doc = json.loads(line)
                    if folder == "rm":
                        removed.append(doc["id"])
                    cid = doc.get("metadata", {}).get("minhash_cluster_id", -1)
                    if cid != -1:
                        cluster_of[doc["id"]] = str(cid)
    return {"seconds": seconds, **_usage(), "removed": removed, "cluster_of": cluster_of}


def child_curate(data: Path, work: Path, with_: str) -> dict:
    from curate import config, engine

    pipe = work / "p.yaml"
    pipe.write_text(
        f"name: speed\ninput: {{format: parquet, path: {data}}}\noutput: {{path: {work / 'out'}}}\n"
        f"stages:\n  - {{id: dedup, uses: minhash, with: {with_}}}\n"
    )
    t0 = time.perf_counter()
    engine.run(config.load(str(pipe)), runner="local")
    seconds = time.perf_counter() - t0
    kept = pq.read_table(work / "out" / "data", columns=["id", "dedup_cluster", "dedup_cluster_size"]).to_pylist()
    cluster_of = {r["id"]: r["dedup_cluster"] for r in kept if r["dedup_cluster_size"] > 1}
    rej = work / "out" / "rejected" / "dedup"
    rejected = pq.read_table(rej, columns=["id", "duplicate_of"]).to_pylist() if rej.exists() else []
    cluster_of.update({r["id"]: r["duplicate_of"] for r in rejected})
    return {"seconds": seconds, **_usage(), "removed": [r["id"] for r in rejected], "cluster_of": cluster_of}


def _share(planted: list[tuple[str, str, float]], cluster_of: dict[str, str], lo: float, hi: float) -> float:
    """Share of the planted pairs with lo <= J < hi whose two documents ended in one cluster."""
    sel = [(a, b) for a, b, j in planted if lo <= j < hi]
    hits = sum(_same_cluster(cluster_of, a, b) for a, b in sel)
    return hits / len(sel) if sel else float("nan")


def end_to_end(max_docs: int, seed: int) -> None:
    from minhash_quality import build

    rows, pairs = build(max_docs, seed)
    # ids in input order, so that datatrove's "first in input" and curate's `keep: first` keep the same document
    order = np.random.default_rng(seed).permutation(len(rows))
    rename = {rows[i]["id"]: f"{k:06d}" for k, i in enumerate(order)}
    docs = [{"id": rename[rows[i]["id"]], "text": rows[i]["text"]} for i in order]
    planted = [(rename[a], rename[b], j) for a, b, j in pairs]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "jsonl").mkdir()
        with open(tmp_path / "jsonl" / "docs.jsonl", "w") as fh:
            for d in docs:
                fh.write(json.dumps(d) + "\n")
        (tmp_path / "parquet").mkdir()
        pq.write_table(pa.Table.from_pylist(docs), tmp_path / "parquet" / "docs.parquet")
        sides = {
            "datatrove (4 stages, 14x8)": ["datatrove", str(tmp_path / "jsonl")],
            "curate preset: fineweb (14x8)": ["curate", str(tmp_path / "parquet"), "{preset: fineweb}"],
            "curate default (20x8, verified)": ["curate", str(tmp_path / "parquet"), "{}"],
        }
        results = {}
        for name, argv in sides.items():
            work = tmp_path / f"work-{len(results)}"
            work.mkdir()
            cmd = [sys.executable, __file__, "--child", *argv[:2], str(work), *argv[2:]]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n2. End to end, {len(docs)} documents ({len(pairs)} originals + a near copy of each), one process each")
    ref = results["datatrove (4 stages, 14x8)"]
    print(f"   {'':<34} {'wall s':>7} {'CPU s':>7} {'x faster':>9} {'peak MB':>8} {'removed':>8} {'clustered':>10} "
          f"{'agree':>7} {'agree out':>10} {'recall J>=0.8':>14} {'J<0.5 merged':>13}")  # fmt: skip
    for name, r in results.items():
        print(
            f"   {name:<34} {r['seconds']:>7.1f} {r['cpu']:>7.1f} {ref['cpu'] / r['cpu']:>8.1f}x {r['peak_mb']:>8.0f} "
            f"{len(r['removed']):>8} {len(r['cluster_of']):>10} "
            f"{_agree(planted, r['cluster_of'], ref['cluster_of'], False):>7.3f} "
            f"{_agree(planted, r['cluster_of'], ref['cluster_of'], True):>10.3f} "
            f"{_share(planted, r['cluster_of'], 0.8, 1.1):>14.3f} {_share(planted, r['cluster_of'], 0.0, 0.5):>13.3f}"
        )
    print("   x faster: datatrove's CPU seconds over this side's. clustered: documents in a cluster of two or more.")
    print("   agree: share of the planted pairs on which this side and datatrove make the same call (one cluster or")
    print("   not); agree out: the same outside the S-curve's transition zone (J < 0.5 or J >= 0.85), where a call")
    print("   is near certain; inside it each hash function detects its own random share of the pairs. Which member")
    print("   of a cluster is removed differs: datatrove keeps its union-by-size root, curate the smallest id.")


def _same_cluster(cluster_of: dict[str, str], a: str, b: str) -> bool:
    return a in cluster_of and cluster_of.get(a) == cluster_of.get(b)


def _agree(planted: list[tuple[str, str, float]], mine: dict[str, str], ref: dict[str, str], outside: bool) -> float:
    sel = [(a, b) for a, b, j in planted if not outside or j < 0.5 or j >= 0.85]
    return sum(_same_cluster(mine, a, b) == _same_cluster(ref, a, b) for a, b in sel) / len(sel) if sel else 1.0


def index_cost(max_docs: int, seed: int) -> None:
    """Dump 1 writes an index; dump 2 (new documents, plus copies of a tenth of dump 1's) is checked against it."""
    from minhash_quality import build

    from curate import config, engine

    rows, _ = build(max_docs, seed)
    half = len(rows) // 2
    first = [{"id": f"a{k:06d}", "text": r["text"]} for k, r in enumerate(rows[:half])]
    second = [{"id": f"b{k:06d}", "text": r["text"]} for k, r in enumerate(rows[half:])]
    second += [{"id": f"c{k:06d}", "text": r["text"]} for k, r in enumerate(first[::10])]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        idx = tmp_path / "index"

        def run(name: str, docs: list[dict], with_: str) -> tuple[float, dict]:
            (tmp_path / name).mkdir()
            pq.write_table(pa.Table.from_pylist(docs), tmp_path / name / "docs.parquet")
            pipe = tmp_path / f"{name}.yaml"
            pipe.write_text(
                f"name: idx\ninput: {{format: parquet, path: {tmp_path / name}}}\n"
                f"output: {{path: {tmp_path / (name + '-out')}}}\n"
                f"stages:\n  - {{id: dedup, uses: minhash, with: {with_}}}\n"
            )
            t0 = time.process_time()  # CPU seconds: the local runner is this process, the machine is shared
            stats = engine.run(config.load(str(pipe)), runner="local")
            return time.process_time() - t0, next(s for s in stats["stages"] if s["id"] == "dedup")

        t_write, s_write = run("dump1", first, f"{{index: {{write: {idx}}}}}")
        t_plain, _ = run("dump2-alone", second, "{}")
        t_against, s_against = run("dump2", second, f"{{index: {{against: [{idx}]}}}}")
        files = json.loads((idx / "_manifest.json").read_text())["files"]
        size = sum(f["bytes"] for f in files)
        kept = s_write["kept"]
    print(f"\n3. Cross-dump index (local runner): dump 1 {len(first)} documents, dump 2 {len(second)}")
    print(f"   index of dump 1: {kept} kept documents, {size / 1e6:.2f} MB on disk = {size / kept:.0f} bytes/document")
    print(f"   CPU seconds: dump 1 with index write {t_write:.1f}; dump 2 alone {t_plain:.1f}, against the index "
          f"{t_against:.1f} ({t_against - t_plain:+.1f}); removed as indexed duplicates: "
          f"{s_against['reasons'].get('near_duplicate_indexed', 0)} (planted: {len(first[::10])} copies)")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, data, work = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
        result = child_datatrove(data, work) if kind == "datatrove" else child_curate(data, work, sys.argv[5])
        print(json.dumps(result))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--perms", type=int, default=128, help="permutations for the signature table")
    ap.add_argument("--max-docs", type=int, default=3000, help="real documents (originals)")
    ap.add_argument("--rounds", type=int, default=3, help="best of this many runs per signature measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--only", choices=["signatures", "e2e", "index"], help="run one part")
    args = ap.parse_args()
    if args.only in (None, "signatures"):
        texts = [t for _, t in (gutenberg_docs() + web_docs())][: args.max_docs]
        signature_table(texts, args.perms, args.rounds)
    if args.only in (None, "e2e") and not args.skip_e2e:
        end_to_end(args.max_docs, args.seed)
    if args.only in (None, "index"):
        index_cost(args.max_docs, args.seed)


if __name__ == "__main__":
    main()
