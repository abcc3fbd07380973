"""substring_dedup against a suffix-array reference (Lee et al.'s ExactSubstr on whitespace tokens), side by side
on the same documents: documents/s and tokens/s, peak RSS, and agreement (identical removed ranges).

The reference is Lee et al.'s method on token ids: every document's tokens mapped to integer ids, documents
concatenated with a unique separator id each (so no match crosses a document), the suffix array built (pydivsufsort,
else a numpy prefix-doubling rank of each position's 50-token prefix), adjacent suffixes sharing their first L
tokens marked (`self-similar`: all copies), the marked L-windows merged into ranges (`collect`), ranges cut as
character ranges. Agreement: for every document, the stage's output text equals the reference's, and the numbers
of spans and tokens removed are equal.

Data:
- corpus: every corpus page extracted once (bench/corpus_docs.py, 1,491 texts), with their own repeats
  (licences, navigation, bylines);
- corpus + planted: the same pages with 3,000 spans of 50-500 tokens copied from one page into another;
- generated: --docs documents of 100-1,000 random words, with 5,000 spans of 50-500 tokens copied between them.

Each side runs in a fresh process (`engine.isolation: none` for the stage): CPU time and peak RSS are its own.
docs/s and tokens/s are per CPU second. The stage runs end to end (`curate run --runner local`: read, global
phase, write); the reference only computes ranges and cuts texts in memory.

    python bench/substring_dedup.py [--docs 20000] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import extracted_docs  # noqa: E402

from curate import config, engine  # noqa: E402
from curate_filters.dedup.lines import non_space_chars  # noqa: E402
from curate_filters.dedup.substring import cut_ranges, tokenize  # noqa: E402

STAGE = "substring_dedup"
L = 50
MIN_CHARS = 50
WORDS = sorted({"".join(random.Random(i).choices("abcdefghijklmnoprstuvwy", k=random.Random(-i).randrange(2, 9)))
                for i in range(20000)})  # fmt: skip


def plant(rows: list[dict], spans: int, seed: int) -> list[dict]:
    """Copy `spans` spans of 50-500 tokens from one document into another, at a token boundary."""
    rng = random.Random(seed)
    texts = [r["text"] for r in rows]
    for _ in range(spans):
        src = texts[rng.randrange(len(texts))].split()
        if len(src) < L:
            continue
        n = rng.randrange(L, min(500, len(src)) + 1)
        a = rng.randrange(len(src) - n + 1)
        t = rng.randrange(len(texts))
        words = texts[t].split(" ")
        at = rng.randrange(len(words) + 1)
        texts[t] = " ".join(words[:at] + [" ".join(src[a : a + n])] + words[at:])
    return [{"id": r["id"], "text": t} for r, t in zip(rows, texts)]


def dataset(name: str, n: int) -> list[dict]:
    if name == "generated":
        rng = random.Random(0)
        rows = [
            {"id": f"gen-{i:07d}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(100, 1000)))}
            for i in range(n)
        ]
        return plant(rows, 5000, seed=1)
    t = extracted_docs()
    rows = [{"id": i, "text": x} for i, x in zip(t.column("id").to_pylist(), t.column("text").to_pylist())]
    return plant(rows, 3000, seed=2) if name == "planted" else rows


# -- the suffix-array reference ------------------------------------------------------------------------------------


def suffix_array(seq: np.ndarray) -> tuple:
    """(suffix array, LCP of neighbours) with pydivsufsort; without it, (positions sorted by their L-token prefix,
    None) by numpy prefix doubling."""
    try:
        import pydivsufsort
    except ImportError:
        return prefix_doubling(seq), None
    sa = pydivsufsort.divsufsort(seq)
    return sa, pydivsufsort.kasai(seq, sa)


def prefix_doubling(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of every position's first h tokens for h = 1, 2, 4, ... (past the end: -1), sorted; returns the
    positions ordered by their L-token prefix (ranks of 32 tokens at i and at i + L - 32), ties adjacent."""
    n = len(seq)
    rank = np.unique(seq, return_inverse=True)[1].astype(np.int64)
    h = 1
    while 2 * h <= L:
        nxt = np.full(n, -1, np.int64)
        nxt[: n - h] = rank[h:]
        order = np.lexsort((nxt, rank))
        key = np.stack([rank[order], nxt[order]])
        new = np.concatenate([[0], np.cumsum(np.any(key[:, 1:] != key[:, :-1], axis=0))])
        rank = np.empty(n, np.int64)
        rank[order] = new
        h *= 2
    tail = np.full(n, -1, np.int64)
    tail[: n - (L - h)] = rank[L - h :]
    return np.lexsort((tail, rank)), rank, tail


def reference(rows: list[dict]) -> dict:
    """Lee et al.'s ExactSubstr on whitespace tokens: {id: (character starts, ends)}, with the time of each step."""
    t0 = time.process_time()
    vocab: dict[str, int] = {}
    parts, bounds, offsets = [], [], []
    at = 0
    for r in rows:
        toks, s, e = tokenize(r["text"])
        parts.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), np.int64, len(toks)))
        offsets.append((s, e))
        bounds.append(at)
        at += len(toks) + 1
    n_vocab = len(vocab)
    seps = [np.array([n_vocab + i], np.int64) for i in range(len(rows))]  # a unique separator after each document
    seq = np.concatenate([x for pair in zip(parts, seps) for x in pair]).astype(np.uint32)
    t1 = time.process_time()
    out = suffix_array(seq)
    if out[1] is not None:
        sa, lcp = out
        hit = np.flatnonzero(lcp[:-1] >= L)
        marked = np.unique(np.concatenate([sa[hit], sa[hit + 1]]))
    else:
        order, rank, tail = out[0]
        same = (rank[order][1:] == rank[order][:-1]) & (tail[order][1:] == tail[order][:-1])
        # a prefix of L tokens with no separator in it (separators are unique, so equal prefixes hold none)
        hit = np.flatnonzero(same)
        marked = np.unique(np.concatenate([order[hit], order[hit + 1]]))
    t2 = time.process_time()
    ranges: dict[str, tuple[list[int], list[int]]] = {}
    doc_of = np.searchsorted(np.asarray(bounds), marked, side="right") - 1
    run_start = prev = -1
    cur = -1
    removed = [0]

    def close() -> None:
        if cur >= 0:
            s, e = offsets[cur]
            a, b = run_start - bounds[cur], prev - bounds[cur] + L
            removed[0] += b - a
            ranges.setdefault(rows[cur]["id"], ([], []))[0].append(s[a])
            ranges[rows[cur]["id"]][1].append(e[b - 1])

    for p, d in zip(marked.tolist(), doc_of.tolist()):  # collect: merge overlapping and touching windows
        if d != cur or p > prev + L:
            close()
            run_start, cur = p, d
        prev = p
    close()
    t3 = time.process_time()
    tokens = int(sum(len(p) for p in parts))
    return {"ranges": ranges, "tokens": tokens, "removed": removed[0], "t": [t1 - t0, t2 - t1, t3 - t2]}


# -- the two sides, each in its own process --------------------------------------------------------------------------


def run_stage(tmp: str) -> dict:
    pipe = Path(tmp) / "p.yaml"
    pipe.write_text(
        f"name: bench\ninput: {{format: parquet, path: {tmp}/in}}\noutput: {{path: {tmp}/out}}\n"
        "engine: {isolation: none}\n"
        f'stages:\n  - {{id: substr, uses: "{STAGE}", with: {{min_tokens: {L}}}}}\n'
    )
    cfg = config.load(str(pipe))
    t0 = time.perf_counter()
    stats = engine.run(cfg, runner="local")
    wall = time.perf_counter() - t0
    counters = next(s for s in stats["stages"] if s["id"] == "substr").get("counters", {})
    return {"wall": wall, "counters": counters}


def run_reference(tmp: str) -> dict:
    rows = pq.read_table(f"{tmp}/in").to_pylist()
    t0 = time.perf_counter()
    ref = reference(rows)
    kept, rejected = {}, []
    for r in rows:
        s, e = ref["ranges"].get(r["id"], ([], []))
        left = cut_ranges(r["text"], s, e)
        if s and non_space_chars(left) < MIN_CHARS:
            rejected.append(r["id"])
        else:
            kept[r["id"]] = left
    wall = time.perf_counter() - t0
    spans = sum(len(s) for s, _ in ref["ranges"].values())
    Path(f"{tmp}/ref.pkl").write_bytes(pickle.dumps((kept, rejected)))
    return {"wall": wall, "spans": spans, "tokens": ref["tokens"], "removed": ref["removed"], "steps": ref["t"]}


def in_child(side: str, tmp: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--run", side, tmp], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(rows: list[dict]) -> tuple[dict, dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        for k in range(4):
            pq.write_table(pa.Table.from_pylist(rows[k::4]), f"{tmp}/in/part{k}.parquet")
        stage = in_child("stage", tmp)
        ref = in_child("reference", tmp)
        kept = {r["id"]: r["text"] for r in pq.read_table(f"{tmp}/out/data").to_pylist()}
        rej = Path(tmp) / "out" / "rejected" / "substr"
        rejected = set(pq.read_table(rej).column("id").to_pylist()) if rej.exists() else set()
        ref_kept, ref_rejected = pickle.loads(Path(f"{tmp}/ref.pkl").read_bytes())
    agree = {
        "equal": sum(1 for i, t in ref_kept.items() if kept.get(i) == t) + len(rejected & set(ref_rejected)),
        "rejected_diff": len(rejected ^ set(ref_rejected)),
    }
    return stage, ref, agree


def child(side: str, tmp: str) -> None:
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    out = run_stage(tmp) if side == "stage" else run_reference(tmp)
    after = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    out["cpu"] = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, usage))
    out["rss"] = max(a.ru_maxrss for a in after) / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20000, help="generated documents")
    ap.add_argument("--only", help="data sets whose name contains this (corpus, planted, generated)")
    ap.add_argument("--run", nargs=2, metavar=("SIDE", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        child(*args.run)
        return
    try:
        import pydivsufsort  # noqa: F401

        sa_name = "pydivsufsort"
    except ImportError:
        sa_name = "numpy prefix doubling"
    print(f"suffix array: {sa_name}; L = {L} whitespace tokens, remove: all\n")
    print(
        "| data | side | docs | tokens | spans removed | tokens removed | wall s | CPU s | docs/s | tokens/s "
        "| peak RSS MiB | agreement |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for data in ("corpus", "planted", "generated"):
        if args.only and args.only not in data:
            continue
        rows = dataset(data, args.docs)
        stage, ref, agree = measure(rows)
        c = stage["counters"]
        n, tokens = len(rows), ref["tokens"]
        same = f"{agree['equal']:,}/{n:,} docs equal, rejected differ: {agree['rejected_diff']}"
        for side, r, spans, removed, note in (
            ("substring_dedup", stage, c.get("spans_removed", 0), c.get("tokens_removed", 0), same),
            (f"suffix array ({sa_name})", ref, ref["spans"], ref["removed"], "steps s: tokenize {:.1f}, SA {:.1f}, "
             "collect {:.1f}".format(*ref["steps"])),
        ):  # fmt: skip
            cells = [data, side, f"{n:,}", f"{tokens:,}", f"{spans:,}", f"{removed:,}"]
            cells += [f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{n / r['cpu']:,.0f}", f"{tokens / r['cpu']:,.0f}"]
            cells += [f"{r['rss']:,.0f}", note]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
