"""MinHash at scale on this machine: N generated documents with planted near and exact copies, deduplicated by the
`minhash` stage on the Ray runner, with peak memory per worker process and in total, and recall of the plants.

Documents come from the sample crawl's text generator (curate.samples: articles in English, German, French and
Spanish). A planted near copy is a syndicated article with one or two sentences replaced and maybe one added (the
generator's own near_duplicate); an exact copy is the same text again. Parquet shards are written once per
(--docs, --seed) into --work and reused.

    python bench/minhash_scale.py --docs 1000000            # the issue's run (about 1.1 GB of text)
    python bench/minhash_scale.py --docs 50000 --repeat 2   # a quick look

Memory: every process of the run (the driver, the raylet, Ray's workers) is sampled every 0.5 s with psutil; RSS
counts the pages of Ray's shared object store that a process touched, so the total is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

NEAR_SHARE, EXACT_SHARE = 0.08, 0.04


def _text(article: Any) -> str:
    body = "\n".join(" ".join(p) for p in article.paragraphs)
    return f"{article.title}\n{body}"


def generate(n: int, out: Path, seed: int, shards: int) -> dict[str, Any]:
    """Write n documents in `shards` Parquet files; returns the plant counts. Ids are d<number>."""
    from curate.samples.generator import CrawlGenerator
    from curate.samples.phrases import LANGUAGE_WEIGHTS

    done = out / "_GENERATED.json"
    if done.exists():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    gen = CrawlGenerator(seed)
    rng = random.Random(seed)
    langs, weights = zip(*LANGUAGE_WEIGHTS.items())
    recent: dict[str, deque] = {lang: deque(maxlen=2000) for lang in langs}
    per_shard = -(-n // shards)
    plants = {"near": 0, "exact": 0, "articles": 0}
    t0 = time.time()
    for s in range(shards):
        ids, texts, sources = [], [], []
        for i in range(s * per_shard, min(n, (s + 1) * per_shard)):
            lang = rng.choices(langs, weights)[0]
            r = rng.random()
            kind = "article"
            if r < NEAR_SHARE + EXACT_SHARE and recent[lang]:
                src_id, src_article, src_text = rng.choice(recent[lang])
                if r < NEAR_SHARE:
                    gen.recent[lang] = deque([src_article])  # the generator copies from its recent articles
                    text, kind = _text(gen.near_duplicate(lang)), "near"
                else:
                    text, kind = src_text, "exact"
                source = src_id
            else:
                article = gen.article(lang)
                text, source = _text(article), None
                recent[lang].append((f"d{i:08d}", article, text))
            plants["articles" if kind == "article" else kind] += 1
            ids.append(f"d{i:08d}")
            texts.append(text)
            sources.append(source)
        table = pa.table({"id": ids, "text": texts, "planted_of": pa.array(sources, pa.string())})
        pq.write_table(table, out / f"part-{s:04d}.parquet", compression="zstd")
        print(f"  generated shard {s + 1}/{shards} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    plants["seconds"] = round(time.time() - t0, 1)
    done.write_text(json.dumps(plants))
    return plants


class MemoryWatch:
    """Samples the RSS of every process that belongs to the run (the driver's tree and Ray's processes)."""

    def __init__(self, root_pid: int) -> None:
        self.root = root_pid
        self.peak_total = 0
        self.peak_by_kind: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _procs(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        # Ray's workers are children of the raylet, which the driver started: they are in the tree
        return procs

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            total = 0
            for p in self._procs():
                try:
                    rss = p.memory_info().rss
                    name = " ".join(p.cmdline()[:2])
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                kind = _kind(name, p.pid == self.root)
                self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), rss)
            self.peak_total = max(self.peak_total, total)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _kind(cmdline: str, is_root: bool) -> str:
    if is_root:
        return "driver"
    for k in ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "runtime_env"):
        if k in cmdline:
            return "ray system"
    if "ray::" in cmdline or "default_worker" in cmdline or "worker" in cmdline:
        return "worker"
    return "other"


def run(
    data: Path, work: Path, shuffle_partitions: int | None, runner: str, index: dict[str, Any] | None = None
) -> dict[str, Any]:
    out = work / f"out-{runner}-{data.name}"
    pipe = work / "minhash-scale.yaml"
    params: dict[str, Any] = {"language": "en", **({"index": index} if index else {})}
    engine = {"progress_seconds": 30}
    if shuffle_partitions:
        engine["shuffle_partitions"] = shuffle_partitions
    pipe.write_text(
        "name: minhash-scale\n"
        f"input: {{format: parquet, path: {data}}}\n"
        f"output: {{path: {out}, shard_rows: 100000}}\n"
        f"engine: {json.dumps(engine)}\n"
        "stages:\n"
        f"  - {{id: dedup, uses: minhash, with: {json.dumps(params)}}}\n"
    )
    cmd = [sys.executable, "-m", "curate.cli", "run", str(pipe), "--overwrite", "--runner", runner]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with MemoryWatch(proc.pid) as watch:
        log = proc.communicate()[0]
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"curate run failed ({proc.returncode}):\n{log[-3000:]}")
    stats = json.loads((out / "stats.json").read_text())
    return {"wall": wall, "stats": stats, "memory": watch, "out": out}


def recall(data: Path, out: Path) -> dict[str, Any]:
    """Recall of the planted copies by their exact word-5-gram Jaccard with the document they copy (shingled as the
    stage shingles), and how many removed documents were not planted (an upper bound on false positives: two
    generated articles can truly be near copies, since the generator's phrase lists are small)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from minhash_data import jaccard, shingles

    table = pq.read_table(data, columns=["id", "text", "planted_of"])
    text = dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
    pairs = [(i, src) for i, src in zip(table.column("id").to_pylist(), table.column("planted_of").to_pylist()) if src]
    removed = set(pq.read_table(out / "rejected" / "dedup", columns=["id"]).column("id").to_pylist())
    buckets: dict[str, list[int]] = {}
    for doc, src in pairs:
        j = jaccard(shingles(text[doc]), shingles(text[src]))
        name = ">= 0.9" if j >= 0.9 else ">= 0.8" if j >= 0.8 else ">= 0.5" if j >= 0.5 else "< 0.5"
        hit = buckets.setdefault(name, [0, 0])
        hit[0] += 1
        hit[1] += doc in removed or src in removed  # one of the two copies goes, whichever the cluster keeps
    planted = {d for d, _ in pairs} | {s for _, s in pairs}
    return {
        "by_jaccard": {k: (n, found / n) for k, (n, found) in sorted(buckets.items())},
        "removed_not_planted": len(removed - planted),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=0, help="input Parquet files (default: one per 50,000 documents)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "curate-minhash-scale"))
    ap.add_argument("--shuffle-partitions", type=int, default=None)
    ap.add_argument("--runner", default="ray", choices=["ray", "local"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--index", action="store_true", help="also write the cross-dump index (bytes per document)")
    ap.add_argument("--against", nargs="*", default=[], help="deduplicate against these indexes (earlier dumps)")
    args = ap.parse_args()
    work = Path(args.work)
    data = work / f"docs-{args.docs}-{args.seed}"
    plants = generate(args.docs, data, args.seed, args.shards or max(1, args.docs // 50_000))
    size = sum(f.stat().st_size for f in data.glob("*.parquet"))
    print(
        f"input: {args.docs:,} documents in {len(list(data.glob('*.parquet')))} files, {size / 1e6:.0f} MB; "
        f"planted {plants['near']:,} near and {plants['exact']:,} exact copies"
    )
    rows = []
    index_dir = work / f"index-{data.name}"
    index: dict[str, Any] = {}
    if args.index:
        index["write"] = str(index_dir)
    if args.against:
        index["against"] = args.against
    for _ in range(args.repeat):
        if index_dir.exists() and args.index:
            import shutil

            shutil.rmtree(index_dir)
        r = run(data, work, args.shuffle_partitions, args.runner, index or None)
        dedup = next(s for s in r["stats"]["stages"] if s["id"] == "dedup")
        rows.append((r, dedup, recall(data, r["out"])))
    print()
    print(
        "| run | docs | removed | planted pairs found (J >= 0.9 / 0.8-0.9 / 0.5-0.8 / < 0.5) | removed, not planted "
        "| wall s | docs/s | peak RSS worker | peak RSS driver | peak RSS total |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, (r, dedup, rec) in enumerate(rows):
        mem = r["memory"]
        found = " / ".join(
            f"{rec['by_jaccard'][k][1]:.3f} of {rec['by_jaccard'][k][0]:,}" if k in rec["by_jaccard"] else "-"
            for k in (">= 0.9", ">= 0.8", ">= 0.5", "< 0.5")
        )
        print(
            f"| {i + 1} | {r['stats']['input_docs']:,} | {dedup['rejected']:,} | {found} | "
            f"{rec['removed_not_planted']:,} | {r['wall']:.0f} | {r['stats']['input_docs'] / r['wall']:,.0f} | "
            f"{mem.peak_by_kind.get('worker', 0) / 2**20:,.0f} MiB | {mem.peak_by_kind.get('driver', 0) / 2**20:,.0f} "
            f"MiB | {mem.peak_total / 2**30:.1f} GiB |"
        )
    print()
    print("dedup counters:", json.dumps(rows[-1][1].get("counters", {})))
    if args.index:
        size = sum(f.stat().st_size for f in index_dir.rglob("*.parquet"))
        kept = rows[-1][0]["stats"]["output_docs"]
        print(f"index: {size / 1e6:.1f} MB for {kept:,} kept documents = {size / max(1, kept):.0f} bytes per document")


if __name__ == "__main__":
    main()
