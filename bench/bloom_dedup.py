"""bloom_dedup: curate's stage beside Dolma's Rust `dedupe` (by_ngram paragraphs) on the same documents in the same
order: documents per second, peak RSS, and agreement of the paragraph decisions; plus the stage's BFF mode against
an exact reference (a Python set where the Bloom filter is).

Documents: ../shared/corpus jsonl-dolma-cc2019-cclicensed (697 CC pages, ~40 languages), jsonl-cc-docs-dolma (CCNet
pages) and prose-gutenberg (8 books cut into documents of 40 paragraphs, hard-wrapped lines joined). Planted: every
5th document gets 1-3 paragraphs copied from earlier documents (every third copy with one word changed), every 25th
is a copy of an earlier document. `--scale K` repeats the set K times (later repeats are duplicates). Ids are
zero-padded positions, so id order is file order and both sides see one order. Each side runs in its own process
(peak RSS is that process's); dolma gets one process and one file so that its order is the file order.

    python bench/bloom_dedup.py [--scale 1] [--repeats 3]

`--docs N` instead runs the stage end to end on the Ray runner over N generated documents (bench/minhash_scale.py's
documents, generation, run and per-process memory sampling, reused) and prints its peak RSS per worker, at
`--partitions` (16) hash partitions and `--shuffle-partitions` (default: the engine's, twice the CPUs):

    python bench/bloom_dedup.py --docs 1000000 --shuffle-partitions 16
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

CORPUS = Path(os.environ.get("CURATE_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
NGRAM, THRESHOLD, FP_RATE = 13, 0.8, 0.01


# -- the documents ------------------------------------------------------------------------------------------------


def base_texts(root: Path = CORPUS) -> list[str]:
    texts: list[str] = []
    for name in ("jsonl-dolma-cc2019-cclicensed", "jsonl-cc-docs-dolma"):
        for path in sorted((root / name).glob("*.json*.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                texts.extend(t for line in fh if (t := json.loads(line).get("text")))
    for path in sorted((root / "prose-gutenberg").glob("*.txt")):
        blocks = [" ".join(b.split()) for b in path.read_text(encoding="utf-8", errors="replace").split("\n\n")]
        blocks = [b for b in blocks if b]
        texts.extend("\n".join(blocks[i : i + 40]) for i in range(0, len(blocks), 40))
    return texts


def planted(texts: list[str], seed: int = 0, scale: int = 1) -> list[tuple[str, str]]:
    """(id, text) in processing order, with reused paragraphs and documents planted."""
    rng = random.Random(seed)
    out = list(texts) * scale
    for k in range(10, len(out)):
        if k % 25 == 0:
            out[k] = out[rng.randrange(k)]
        elif k % 5 == 0:
            paras = out[k].split("\n")
            for c in range(rng.randint(1, 3)):
                donor = [p for p in out[rng.randrange(k)].split("\n") if len(p.split()) >= 30]
                if not donor:
                    continue
                p = rng.choice(donor)
                if c == 2:
                    words = p.split(" ")
                    words[len(words) // 2] = "changed"
                    p = " ".join(words)
                paras.insert(rng.randrange(len(paras) + 1), p)
            out[k] = "\n".join(paras)
    return [(f"d{i:07d}", t) for i, t in enumerate(out)]


def paragraph_starts(text: str) -> list[int]:
    starts, at = [], 0
    for p in text.split("\n"):
        starts.append(at)
        at += len(p) + 1
    return starts


# -- the two sides (each in its own process) ------------------------------------------------------------------------


def count_items(docs: list[tuple[str, str]]) -> int:
    """The n-grams (and whole-paragraph keys) Dolma's mode inserts: both sides size their filter for this count."""
    from curate_filters.dedup.bloom import Rules, paragraph_items

    rules = Rules("dolma", NGRAM, NGRAM, THRESHOLD, None, 0)
    return sum(
        sum(len(g) for g in gs) + sum(1 for k in ks if k) for gs, ks, _ in (paragraph_items(t, rules) for _, t in docs)
    )


def run_curate(docs: list[tuple[str, str]], mode: str, exact: bool = False, pow2: int = 0) -> list[list[int]]:
    """The stage's own functions, as its global pass calls them (derive per batch of 1,000, then the partitioned
    pass, each step in one call), or (exact) the reference: one ordered pass over a set. `pow2`: the filter's size
    for `pow2` items rounded up to a power of two bytes, as Dolma rounds it."""
    import math

    import pyarrow as pa

    from curate_filters.dedup.bloom import BloomDedup, DeriveItems, partitioned_pass_in_process, run_pass
    from curate_filters.dedup.bloom_filter import ExactSet, bloom_size

    size = None
    if pow2:
        size = 2 ** math.ceil(math.log2(bloom_size(pow2, FP_RATE)[0] / 8))
    stage = BloomDedup(mode=mode, document_threshold=None if mode == "dolma" else THRESHOLD, size_in_bytes=size)
    batches = [
        pa.table({"id": [i for i, _ in docs[s : s + 1000]], "text": [t for _, t in docs[s : s + 1000]]})
        for s in range(0, len(docs), 1000)
    ]
    if exact:
        items = pa.concat_tables([DeriveItems(stage.rules)(b) for b in batches])
        decisions = run_pass(items, stage.rules, ExactSet())
    else:
        decisions = partitioned_pass_in_process(stage, batches)[0]
    removed = {r["id"]: r["__bloom_drop"] for r in decisions.to_pylist()}
    return [removed.get(i, []) for i, _ in docs]


def run_dolma(docs: list[tuple[str, str]], work: Path, expected: int) -> list[list[int]]:
    import dolma

    folder = work / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "docs.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i, t in docs:
            fh.write(json.dumps({"id": i, "text": t, "source": "bench"}) + "\n")
    config = {
        "documents": [str(folder / "docs.jsonl.gz")],
        "work_dir": {"input": str(work / "wi"), "output": str(work / "wo")},
        "dedupe": {
            "name": "bloom",
            "paragraphs": {
                "attribute_name": "bff_duplicate_paragraph_spans",
                "by_ngram": {
                    "ngram_length": NGRAM,
                    "stride": 0,
                    "overlap_threshold": THRESHOLD,
                    "skip_short_paragraphs": False,
                },
            },
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
            "desired_false_positive_rate": FP_RATE,
        },
        "processes": 1,
        "is_s3_volume": False,
        "compression": {"input": None, "output": None},
    }
    dolma.deduper(config)
    spans: dict[str, list[int]] = {}
    with gzip.open(work / "attributes" / "bloom" / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            spans[row["id"]] = [s[0] for s in row["attributes"].get("bff_duplicate_paragraph_spans", [])]
    out = []
    for i, t in docs:
        starts = {s: j for j, s in enumerate(paragraph_starts(t))}
        out.append(sorted(starts[s] for s in spans.get(i, [])))
    return out


def child(side: str, data: Path, out: Path, expected: int) -> None:
    docs = [tuple(r) for r in json.loads(data.read_text())]
    t0 = time.perf_counter()
    if side == "dolma":
        with tempfile.TemporaryDirectory() as work:
            removed = run_dolma(docs, Path(work), expected)
    else:
        mode, _, kind = side.partition(":")
        removed = run_curate(docs, mode, kind == "exact", expected if kind == "pow2" else 0)
    seconds = time.perf_counter() - t0
    out.write_text(json.dumps({"seconds": seconds, "removed": removed}))


def measure(side: str, data: Path, expected: int, folder: Path) -> tuple[dict, int]:
    """Run one side in a child process: its result and its peak RSS (bytes)."""
    out = folder / f"{side.replace(':', '-')}.json"
    args = [
        sys.executable,
        __file__,
        "--child",
        side,
        "--data",
        str(data),
        "--out",
        str(out),
        "--expected",
        str(expected),
    ]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed (status {status}): rerun it: {' '.join(args)}")
    return json.loads(out.read_text()), usage.ru_maxrss * 1024


def agreement(a: list[list[int]], b: list[list[int]], docs: list[tuple[str, str]]) -> tuple[float, int, int]:
    """Share of paragraphs with the same decision, paragraphs that differ, paragraphs removed by b."""
    total = differ = 0
    for x, y, (_, t) in zip(a, b, docs):
        n = t.count("\n") + 1
        total += n
        differ += len(set(x) ^ set(y))
    return 1 - differ / total, differ, sum(len(y) for y in b)


# the single ordered task this stage ran before its partitioned pass, at 10^6 documents (bench/README.md)
BEFORE = {"docs": 1_000_000, "wall": 970, "worker_mib": 6019, "all_gib": 7.3}


class PrivateWatch:
    """minhash_scale's MemoryWatch that also keeps the largest worker's private memory (RSS less the shared pages:
    RSS counts the object store's pages a process touched, so Ray's spill workers look large)."""

    @staticmethod
    def of(module: types.ModuleType) -> type:
        import psutil

        class Watch(module.MemoryWatch):
            peak_private = 0
            peak_private_task = ""

            def _procs(self) -> list:
                procs = super()._procs()
                for p in procs:
                    try:
                        name = " ".join(p.cmdline()[:2])
                        m = p.memory_info()
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    if module._kind(name, p.pid == self.root) == "worker" and m.rss - m.shared > self.peak_private:
                        self.peak_private, self.peak_private_task = m.rss - m.shared, name[:120]
                return procs

        return Watch


def at_scale(docs: int, partitions: int, shuffle_partitions: int | None, work: Path) -> None:
    """The stage end to end on Ray over `docs` generated documents: minhash_scale's generator, run and memory
    watch (every process sampled every 0.5 s), with the stage's `partitions`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import minhash_scale

    data = work / f"docs-{docs}-0"
    plants = minhash_scale.generate(docs, data, 0, max(1, docs // 50_000))
    print(f"{docs:,} generated documents ({plants['near']:,} near and {plants['exact']:,} exact copies planted)")
    minhash_scale.MemoryWatch = PrivateWatch.of(minhash_scale)
    r = minhash_scale.run(data, work, shuffle_partitions, "ray", None, "bloom_dedup", {"partitions": partitions})
    dedup = next(s for s in r["stats"]["stages"] if s["id"] == "dedup")
    c, mem = dedup.get("counters", {}), r["memory"]
    head = (
        "run | docs | kept | rejected | paragraphs removed | filter bits (k) | wall s | docs/s "
        "| peak RSS largest worker | its private (RSS - shared) | all processes | object store | spilled"
    )
    print(f"\n| {head} |\n|{'---|' * len(head.split(' | '))}")
    if docs == BEFORE["docs"]:
        print(
            f"| before: one ordered task (recorded) | {docs:,} | 823,652 | 176,348 | 920,342 | 1.22 G (7) | "
            f"{BEFORE['wall']} | {docs / BEFORE['wall']:,.0f} | {BEFORE['worker_mib']:,} MiB | - | "
            f"{BEFORE['all_gib']} GiB | 2,172 MiB | 0 |"
        )
    shuffle = shuffle_partitions or "engine default"
    print(
        f"| partitions {partitions}, shuffle partitions {shuffle} | {docs:,} | {r['stats']['output_docs']:,} | "
        f"{dedup['rejected']:,} | {c.get('paragraphs_removed', 0):,} | {c.get('bloom_bits', 0) / 1e9:.2f} G "
        f"({c.get('bloom_hashes', 0)}) | {r['wall']:.0f} | {docs / r['wall']:,.0f} | "
        f"{mem.peak_by_kind.get('worker', 0) / 2**20:,.0f} MiB | {mem.peak_private / 2**20:,.0f} MiB | "
        f"{mem.peak_total / 2**30:.1f} GiB | "
        f"{mem.peak_shm / 2**20:,.0f} MiB | {mem.peak_spilled / 2**20:,.0f} MiB |"
    )
    print(f"\nlargest worker at its peak: {mem.peak_worker_task}; most private memory: {mem.peak_private_task}")
    print("dedup counters:", json.dumps(c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--docs", type=int, default=0, help="run at scale on Ray over this many generated documents")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--shuffle-partitions", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "curate-minhash-scale")
    ap.add_argument("--child")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--expected", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.out, args.expected)
        return
    if args.docs:
        at_scale(args.docs, args.partitions, args.shuffle_partitions, args.work)
        return
    if not CORPUS.is_dir():
        raise SystemExit(f"corpus not found at {CORPUS} (set CURATE_CORPUS)")
    import importlib.util

    if importlib.util.find_spec("dolma") is None:
        raise SystemExit(
            "dolma is not installed: `pip install --no-deps dolma==1.2.1 anyascii blingfire boto3 s3transfer jq"
            " jsonpath-ng msgspec necessary omegaconf python-dotenv uniseg` (with its pins it would downgrade numpy"
            " below 2 and s3fs; its Rust deduper runs under NumPy 2), then run this again"
        )
    docs = planted(base_texts(), scale=args.scale)
    expected = count_items(docs)
    paragraphs = sum(t.count("\n") + 1 for _, t in docs)
    chars = sum(len(t) for _, t in docs)
    print(f"{len(docs):,} documents, {paragraphs:,} paragraphs, {chars / 1e6:.1f} M characters, {expected:,} n-grams")
    print(f"ngram {NGRAM}, threshold {THRESHOLD}, fp_rate {FP_RATE}, filters sized for {expected:,} items\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "docs.json"
        data.write_text(json.dumps(docs))
        sides = {
            "dolma": "dolma dedupe (Rust, 1 process)",
            "dolma:bloom": "curate bloom_dedup, mode dolma",
            "dolma:pow2": "curate, mode dolma, Dolma's filter size",
            "bff:bloom": "curate bloom_dedup, mode bff",
            "dolma:exact": "exact reference (set), mode dolma",
            "bff:exact": "exact reference (set), mode bff",
        }
        results: dict[str, dict] = {}
        rss: dict[str, int] = {}
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for side in sides:
                res, peak = measure(side, data, expected, folder)
                results[side] = res
                rss[side] = max(rss.get(side, 0), peak)
                times.setdefault(side, []).append(res["seconds"])
        rows = []
        for side, label in sides.items():
            secs = times[side]
            rate = [len(docs) / s for s in secs]
            if side.startswith("dolma"):
                ref = "dolma"
            else:
                ref = "bff:exact"
            agree, differ, removed = agreement(results[ref]["removed"], results[side]["removed"], docs)
            vs = "-" if side == ref else f"{agree:.4%} vs {ref} ({differ} differ)"
            rows.append(
                (
                    label,
                    f"{statistics.median(rate):,.0f} ({min(rate):,.0f}-{max(rate):,.0f})",
                    f"{rss[side] / 2**20:,.0f}",
                    f"{removed:,}",
                    vs,
                )
            )
        head = ("side", "docs/s median (range)", "peak RSS MiB", "paragraphs removed", "agreement")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
        print("-|-".join("-" * w for w in widths))
        for r in rows:
            print(" | ".join(str(v).ljust(w) for v, w in zip(r, widths)))
        exact = agreement(results["dolma"]["removed"], results["dolma:exact"]["removed"], docs)
        print(f"\ndolma vs the exact reference (mode dolma): {exact[0]:.4%} ({exact[1]} paragraphs differ)")


if __name__ == "__main__":
    main()
