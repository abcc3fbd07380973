"""Dedup stages at scale on this machine: N generated documents with planted near and exact copies, deduplicated by
the `minhash` stage (or, with --stage, by `line_dedup`, `substring_dedup` or `bloom_dedup`) on the Ray runner, with
peak memory per worker process and in total, and (minhash) recall of the plants.

Documents come from the sample crawl's text generator (curate.samples: articles in English, German, French and
Spanish). A planted near copy is a syndicated article with one or two sentences replaced and maybe one added (the
generator's own near_duplicate); an exact copy is the same text again. Parquet shards are written once per
(--docs, --seed) into --work and reused.

    python bench/minhash_scale.py --docs 1000000            # the issue's run (about 1.1 GB of text)
    python bench/minhash_scale.py --docs 50000 --repeat 2   # a quick look
    python bench/minhash_scale.py --docs 1000000 --stage line_dedup        # max_count 6 (LLaMA 3)
    python bench/minhash_scale.py --docs 1000000 --stage substring_dedup   # min_tokens 50 (RefinedWeb)
    python bench/minhash_scale.py --docs 1000000 --stage bloom_dedup       # DCLM's BFF settings (the defaults)
    python bench/minhash_scale.py --docs 1000000 --with clusters=star      # any stage parameter: --with KEY=VALUE

The sub-document stages see the same shards: exact copies repeat every line, paragraph and span of an article, near
copies all but a sentence or two, and the generator's titles repeat (its phrase lists are small), so each stage has
something to remove without any extra planting. For them the table gives the stage's counters from stats.json
instead of recall.

Memory: every process of the run (the driver, the raylet, Ray's workers) is sampled every 0.5 s with psutil; RSS
counts the pages of Ray's shared object store that a process touched, so the total is an upper bound. "Private" is
RSS less its shared pages (psutil's `shared`: the object store's pages and mapped files), the memory a worker holds
of its own: what its task's data structures cost, and what grows with the data a call holds. The object
store column is the growth of /dev/shm's use over the run (Ray's embedded object store lives there; objects spilled
to disk are not in it, and another job's use of /dev/shm would be).
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
# The stages this bench runs, with the parameters they run at unless --with overrides them.
STAGES: dict[str, dict[str, Any]] = {
    "minhash": {"language": "en"},
    "line_dedup": {"max_count": 6},  # LLaMA 3's (and the stage's default); one bucket: the whole corpus
    "substring_dedup": {},  # min_tokens 50, remove all (RefinedWeb)
    "bloom_dedup": {},  # ngram 13, threshold 0.8, fp_rate 0.01 (DCLM's BFF)
}


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
        self.peak_private_by_kind: dict[str, int] = {}  # RSS less shared pages (object store, mapped files)
        self.peak_private_task = ""  # the process title of the worker at its private peak
        self.peak_worker_task = ""  # the process title of the worker at its peak (which step held the memory)
        self.peak_shm = 0  # growth of /dev/shm's use (Ray's object store) over the run
        self._shm0 = _shm_used()
        self.peak_spilled = 0  # bytes in the run's Ray session's spill folders (the object store's overflow on disk)
        self.store_capacity = 0  # the object store's size, from the raylet's command line
        self._session: str | None = None
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

    def _spilled(self) -> int:
        total = 0
        for d in Path(self._session or "/nonexistent").glob("ray_spilled_objects*"):
            try:
                total += sum(e.stat().st_size for e in os.scandir(d) if e.is_file())
            except OSError:
                pass
        return total

    def _loop(self) -> None:
        tick = 0
        while not self._stop.wait(0.5):
            total = 0
            tick += 1
            for p in self._procs():
                try:
                    info = p.memory_info()
                    rss, private = info.rss, info.rss - getattr(info, "shared", 0)
                    cmd = p.cmdline()
                    name = " ".join(cmd[:2])
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if self._session is None and "raylet" in name:
                    for arg in cmd:
                        if arg.startswith("--raylet_socket_name=") and "/sockets/" in arg:
                            self._session = arg.split("=", 1)[1].split("/sockets/")[0]
                        if arg.startswith("--static_resource_list=") and "object_store_memory," in arg:
                            self.store_capacity = int(arg.split("object_store_memory,")[1].split(",")[0])
                total += rss
                kind = _kind(name, p.pid == self.root)
                if kind == "worker" and rss > self.peak_by_kind.get(kind, 0):
                    self.peak_worker_task = name[:120]
                self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), rss)
                if kind == "worker" and private > self.peak_private_by_kind.get(kind, 0):
                    self.peak_private_task = name[:120]
                self.peak_private_by_kind[kind] = max(self.peak_private_by_kind.get(kind, 0), private)
            self.peak_total = max(self.peak_total, total)
            self.peak_shm = max(self.peak_shm, _shm_used() - self._shm0)
            if self._session and tick % 4 == 0:
                self.peak_spilled = max(self.peak_spilled, self._spilled())

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _shm_used() -> int:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


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
    data: Path,
    work: Path,
    shuffle_partitions: int | None,
    runner: str,
    index: dict[str, Any] | None = None,
    stage: str = "minhash",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    tag = "" if stage == "minhash" else f"{stage}-"
    out = work / f"out-{runner}-{tag}{data.name}"
    pipe = work / ("minhash-scale.yaml" if stage == "minhash" else f"{stage}-scale.yaml")
    params: dict[str, Any] = {**STAGES[stage], **({"index": index} if index else {}), **(overrides or {})}
    engine = {"progress_seconds": 30}
    if shuffle_partitions:
        engine["shuffle_partitions"] = shuffle_partitions
    pipe.write_text(
        f"name: {pipe.stem}\n"
        f"input: {{format: parquet, path: {data}}}\n"
        f"output: {{path: {out}, shard_rows: 100000}}\n"
        f"engine: {json.dumps(engine)}\n"
        "stages:\n"
        f"  - {{id: dedup, uses: {stage}, with: {json.dumps(params)}}}\n"
    )
    cmd = [sys.executable, "-m", "curate.cli", "run", str(pipe), "--overwrite", "--runner", runner]
    run_log = pipe.with_suffix(".log")  # the run's own log, written as it goes (tail it to follow a long run)
    print(f"running {stage} ({json.dumps(params)}); log: {run_log}", file=sys.stderr, flush=True)
    t0 = time.time()
    with open(run_log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)
        with MemoryWatch(proc.pid) as watch:
            proc.wait()
    wall = time.time() - t0
    log = run_log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"curate run failed ({proc.returncode}):\n{log[-3000:]}")
    stats = json.loads((out / "stats.json").read_text())
    return {"wall": wall, "stats": stats, "memory": watch, "out": out, "params": params, "log": log}


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
    ap.add_argument("--stage", default="minhash", choices=list(STAGES), help="the dedup stage to run (default minhash)")
    ap.add_argument(
        "--with",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stage parameter (the value is read as YAML: clusters=star, max_count=6, document_threshold=null)",
    )
    args = ap.parse_args()
    overrides = _overrides(args.overrides)
    if args.stage != "minhash" and (args.index or args.against):
        ap.error("--index and --against are minhash's")
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
        r = run(data, work, args.shuffle_partitions, args.runner, index or None, args.stage, overrides)
        dedup = next(s for s in r["stats"]["stages"] if s["id"] == "dedup")
        rows.append((r, dedup, recall(data, r["out"]) if args.stage == "minhash" else None))
    print()
    if args.stage != "minhash":
        _stage_table(args, rows)
        return
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
    mem = rows[-1][0]["memory"]
    print(
        f"with: {json.dumps(rows[-1][0]['params'])}; object store (/dev/shm growth) peak {mem.peak_shm / 2**20:,.0f} "
        f"MiB of {mem.store_capacity / 2**20:,.0f} MiB, spilled to disk peak {mem.peak_spilled / 2**20:,.0f} MiB; "
        f"largest worker at its peak: {mem.peak_worker_task}"
    )
    if args.index:
        size = sum(f.stat().st_size for f in index_dir.rglob("*.parquet"))
        kept = rows[-1][0]["stats"]["output_docs"]
        print(f"index: {size / 1e6:.1f} MB for {kept:,} kept documents = {size / max(1, kept):.0f} bytes per document")


def _overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--with takes KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _stage_table(args: argparse.Namespace, rows: list[tuple[dict[str, Any], dict[str, Any], Any]]) -> None:
    """The table of a sub-document stage: documents, the stage's counters, wall time and memory."""
    partitions = args.shuffle_partitions or f"{2 * (os.cpu_count() or 1)} (default: 2 x CPUs)"
    print(f"stage: {args.stage}, with: {json.dumps(rows[-1][0]['params'])}, shuffle partitions: {partitions}")
    print()
    print(
        "| run | docs in | kept | rejected | counters | wall s | docs/s | peak RSS largest worker | peak private "
        "largest worker | peak RSS driver | peak RSS all | object store (/dev/shm growth) | spilled to disk |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, (r, dedup, _) in enumerate(rows):
        mem = r["memory"]
        counters = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in dedup.get("counters", {}).items()
        )
        docs = r["stats"]["input_docs"]
        print(
            f"| {i + 1} | {docs:,} | {r['stats']['output_docs']:,} | {dedup['rejected']:,} | {counters} | "
            f"{r['wall']:.0f} | {docs / r['wall']:,.0f} | {mem.peak_by_kind.get('worker', 0) / 2**20:,.0f} MiB | "
            f"{mem.peak_private_by_kind.get('worker', 0) / 2**20:,.0f} MiB | "
            f"{mem.peak_by_kind.get('driver', 0) / 2**20:,.0f} MiB | {mem.peak_total / 2**30:.1f} GiB | "
            f"{mem.peak_shm / 2**20:,.0f} MiB | {mem.peak_spilled / 2**20:,.0f} MiB |"
        )
    print()
    r, dedup = rows[-1][0], rows[-1][1]
    print("largest worker at its peak:", r["memory"].peak_worker_task)
    print("largest worker at its private peak:", r["memory"].peak_private_task)
    print(f"object store capacity: {r['memory'].store_capacity / 2**20:,.0f} MiB")
    print("peak RSS by kind:", {k: f"{v / 2**20:,.0f} MiB" for k, v in r["memory"].peak_by_kind.items()})
    print("dedup stage stats:", json.dumps(dedup))


if __name__ == "__main__":
    main()
