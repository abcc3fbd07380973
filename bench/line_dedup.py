"""line_dedup: documents/s per core end to end (`curate run --runner local`), exactness against a brute-force
reference (a plain Counter over normalised units), and peak RSS, on real and on generated text.

Data:
- corpus: every corpus page extracted once (bench/corpus_docs.py, 1,491 texts), as they are (their own repeats:
  navigation, bylines, licence lines), and the same pages 4 times over under new ids (every line then repeats
  at least 4 times, a worst case for the shuffle);
- generated: documents of 8-30 lines of random words, with 300 boilerplate lines planted 31-3,000 times each
  (Zipf-like), half of the copies varied in case, digits, punctuation or spacing.

Each run is a fresh process that only runs the pipeline, its batches in that process (`engine.isolation: none`):
CPU time and peak RSS are the run's. docs/s per core = documents / CPU seconds of the run. `exact_dedup` on the
same documents (one shuffle of (hash, id) rows) is the baseline: what the engine's read, global phase and write
cost without line_dedup's work.

    python bench/line_dedup.py [--docs 20000] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import extracted_docs  # noqa: E402

from curate import config, engine  # noqa: E402
from curate_filters.dedup import lines  # noqa: E402

STAGE = "line_dedup"
# name: (data, stage, its parameters); exact_dedup (a one-shuffle global stage) is the engine's baseline
CONFIGS = {
    "corpus, max_count 6": ("corpus", STAGE, "{max_count: 6}"),
    "corpus x4, max_count 6": ("corpus4", STAGE, "{max_count: 6}"),
    "corpus x4, paragraphs, keep first": ("corpus4", STAGE, "{unit: paragraph, keep: first}"),
    "corpus x4, exact_dedup (baseline)": ("corpus4", "exact_dedup", "{}"),
    "generated, max_count 6": ("generated", STAGE, "{max_count: 6}"),
    "generated, keep first": ("generated", STAGE, "{keep: first}"),
    "generated, exact_dedup (baseline)": ("generated", "exact_dedup", "{}"),
}
WORDS = sorted({"".join(random.Random(i).choices("abcdefghijklmnoprstuvwy", k=random.Random(-i).randrange(2, 9)))
                for i in range(20000)})  # fmt: skip


def generated(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs = [
        [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 16))) for _ in range(rng.randrange(8, 30))]
        for _ in range(n)
    ]
    for j in range(300):
        line = f"Boilerplate line {j}: " + " ".join(random.Random(j).choice(WORDS) for _ in range(8))
        for _ in range(min(3000, int(3000 / (j + 1) ** 0.8))):
            copy = line
            style = rng.randrange(6)
            if style == 0:
                copy = line.upper()
            elif style == 1:
                copy = re.sub(r"\d", "7", line) + " ..."
            elif style == 2:
                copy = "  " + line.replace(" ", "  ")
            d = docs[rng.randrange(n)]
            d.insert(rng.randrange(len(d) + 1), copy)
    return [{"id": f"gen-{i:07d}", "text": "\n".join(d)} for i, d in enumerate(docs)]


def dataset(name: str, n: int) -> list[dict]:
    if name == "generated":
        return generated(n)
    t = extracted_docs()
    rows = [{"id": i, "text": x} for i, x in zip(t.column("id").to_pylist(), t.column("text").to_pylist())]
    if name == "corpus4":
        rows = [{"id": f"{k}/{r['id']}", "text": r["text"]} for k in range(4) for r in rows]
    return rows


def reference(rows: list[dict], unit: str, max_count: int | None, min_length: int = 10, min_chars: int = 50):
    """Brute force over normalised strings: {id: text left} for kept documents, and the rejected ids."""
    count: Counter[str] = Counter()
    first: dict[str, tuple[str, int]] = {}
    split = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        units, seps = lines.split_units(r["text"], unit)
        norms = [lines.normalize_unit(u) for u in units]
        split[r["id"]] = (units, seps, norms)
        for pos, n in enumerate(norms):
            if len(n) >= min_length:
                count[n] += 1
                first.setdefault(n, (r["id"], pos))
    kept, rejected = {}, set()
    for r in rows:
        units, seps, norms = split[r["id"]]
        cut = {
            pos
            for pos, n in enumerate(norms)
            if len(n) >= min_length and (count[n] > max_count if max_count is not None else first[n] != (r["id"], pos))
        }
        left = lines.join_kept(units, seps, cut)
        if cut and len(re.sub(r"\s", "", left)) < min_chars:
            rejected.add(r["id"])
        else:
            kept[r["id"]] = left
    return kept, rejected


def run_engine(tmp: str, uses: str, with_: str) -> dict:
    """In a fresh process: the pipeline over tmp/in -> tmp/out; wall, CPU and peak RSS. Batches run in this process
    (`engine.isolation: none`), so that its CPU time is all of the run's (an isolated child's is not reaped)."""
    pipe = Path(tmp) / "p.yaml"
    pipe.write_text(
        f"name: bench\ninput: {{format: parquet, path: {tmp}/in}}\noutput: {{path: {tmp}/out}}\n"
        "engine: {isolation: none}\n"
        f'stages:\n  - {{id: lines, uses: "{uses}", with: {with_}}}\n'
    )
    cfg = config.load(str(pipe))
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    t0 = time.perf_counter()
    stats = engine.run(cfg, runner="local")
    wall = time.perf_counter() - t0
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, usage))
    counters = next(s for s in stats["stages"] if s["id"] == "lines").get("counters", {})
    rss = max(a.ru_maxrss for a in after) / 1024  # KiB on Linux; the largest of this process and its children
    return {"wall": wall, "cpu": cpu, "rss": rss, "counters": counters}


def measure(name: str, rows: list[dict]) -> dict:
    data, uses, with_ = CONFIGS[name]
    params = dict(re.findall(r"(\w+): (\w+)", with_))
    unit = params.get("unit", "line")
    max_count = int(params["max_count"]) if "max_count" in params else None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for k in range(4):
            pq.write_table(pa.Table.from_pylist(rows[k::4]), src / f"part{k}.parquet")
        proc = subprocess.run([sys.executable, __file__, "--run", tmp, uses, with_], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        kept = {r["id"]: r["text"] for r in pq.read_table(f"{tmp}/out/data").to_pylist()}
        rej = Path(tmp) / "out" / "rejected" / "lines"
        rejected = set(pq.read_table(rej).column("id").to_pylist()) if rej.exists() else set()
    counters = run["counters"]
    common = {**run, "docs": len(rows), "rejected": len(rejected)}
    if uses != STAGE:
        return common
    # the per-document step alone (split, normalise, hash), in batches of 1,000, in this process
    table = pa.Table.from_pylist(rows)
    derive = lines.UnitRows(unit, 10, 1)
    t0 = time.process_time()  # CPU time: the machine is shared
    for start in range(0, table.num_rows, 1000):
        derive(table.slice(start, 1000))
    hashing = time.process_time() - t0
    want_kept, want_rejected = reference(rows, unit, max_count)
    missed = extra = 0
    for i, text in want_kept.items():
        got = Counter(lines.split_units(kept.get(i, ""), unit)[0])
        want = Counter(lines.split_units(text, unit)[0])
        extra += sum((want - got).values())  # removed by the stage, kept by the reference
        missed += sum((got - want).values())  # kept by the stage, removed by the reference
    return {
        **common,
        "units": counters.get("units_counted", 0),
        "removed": counters.get("units_removed", 0),
        "chars_removed": counters.get("chars_removed", 0),
        "hashing_docs_s": len(rows) / hashing,
        "equal": sum(1 for i, t in want_kept.items() if kept.get(i) == t) + len(rejected & want_rejected),
        "missed": missed,
        "extra": extra,
        "rejected_diff": len(rejected ^ want_rejected),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20000, help="generated documents")
    ap.add_argument("--only", help="configurations whose name contains this")
    ap.add_argument("--run", nargs=3, metavar=("DIR", "USES", "WITH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_engine(*args.run)))
        return
    print(
        "| data, stage | docs | units counted | units removed | chars removed | rejected | wall s | CPU s "
        "| docs/s per core | split+normalise+hash alone, docs/s | equal to reference | missed / extra units "
        "| peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cache: dict[str, list[dict]] = {}
    for name, (data, _, _) in CONFIGS.items():
        if args.only and args.only not in name:
            continue
        if data not in cache:
            cache[data] = dataset(data, args.docs)
        r = measure(name, cache[data])
        if "units" in r:
            dedup = [
                f"{r['units']:,}",
                f"{r['removed']:,}",
                f"{r['chars_removed']:,}",
                f"{r['rejected']:,}",
            ]
            check = [
                f"{r['hashing_docs_s']:,.0f}",
                f"{r['equal']:,}/{r['docs']:,}",
                f"{r['missed']} / {r['extra']} (rejected differ: {r['rejected_diff']})",
            ]
        else:
            dedup, check = ["—", "—", "—", f"{r['rejected']:,}"], ["—", "—", "—"]
        speed = [f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{r['docs'] / r['cpu']:,.0f}"]
        cells = [name, f"{r['docs']:,}", *dedup, *speed, *check, f"{r['rss']:,.0f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
