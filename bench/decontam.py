"""decontaminate: parity with datatrove's NGramsDecontFilter, span-mode exactness, throughput with a 1M-n-gram index,
and what an index of every common benchmark costs.

Documents: every corpus page extracted once (bench/corpus_docs.py, 1,491 texts). Evaluation items: GSM8K test,
MMLU test (the original CSVs) and HumanEval from ../shared/corpus, read by curate's evaluation reader; the same
query/answer strings go to both sides. Every 8th page gets an item planted: verbatim, with light edits (upper
case, spaces doubled, a comma moved) or split across line breaks (five words a line).

datatrove: its own NGramsDecontIndexer.compute_hashes and NGramsDecontFilter.filter (its index file format, its
spaCy tokenizer), built without lighteval (no download); its xxhash64 hash is given the n-gram's UTF-8 bytes, since
xxhash >= 4 no longer hashes str (datatrove 0.10.1 raises TypeError there).

    python bench/decontam.py [--repeats 3] [--skip-scale]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import CORPUS, extracted_docs  # noqa: E402

from curate_filters.decontam import reference  # noqa: E402
from curate_filters.decontam.evals import EvalSpec, items_of  # noqa: E402
from curate_filters.decontam.index import NgramIndex, build_index  # noqa: E402
from curate_filters.decontam.stage import Decontaminate  # noqa: E402

EVALS = [
    {"path": str(CORPUS / "evals-gsm8k/test.jsonl.gz"), "name": "gsm8k"},
    {"path": str(CORPUS / "evals-mmlu/test/*.csv"), "name": "mmlu", "preset": "mmlu_csv"},
    {"path": str(CORPUS / "evals-humaneval/HumanEval.jsonl.gz"), "name": "humaneval"},
]
DATATROVE = {"n_grams": 12, "find_query_ngrams": False, "find_overlap_ngrams": True, "max_items_per_ngram": None}


def planted_docs(items, seed: int = 0, every: int = 8) -> tuple[list[str], list[str], list[int]]:
    t = extracted_docs()
    ids, texts = t.column("id").to_pylist(), t.column("text").to_pylist()
    rng = random.Random(seed)
    which = [-1] * len(texts)
    for k in range(0, len(texts), every):
        i = rng.randrange(len(items))
        body = "\n".join(p for p in (items[i].query, *items[i].golds) if p)
        style = k // every % 3
        if style == 1:
            body = body.upper().replace("  ", " ").replace(" ", "  ").replace(", ", " ,")
        elif style == 2:
            words = body.split(" ")
            body = "\n".join(" ".join(words[j : j + 5]) for j in range(0, len(words), 5))
        paras = texts[k].split("\n")
        at = rng.randrange(len(paras) + 1)
        texts[k] = "\n".join(paras[:at] + [body] + paras[at:])
        which[k] = i
    return ids, texts, which


def median_spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"


# -- datatrove ---------------------------------------------------------------------------------------------------


def datatrove_filter(items, folder: str):
    import xxhash
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer

    def h64(s: str) -> int:
        return xxhash.xxh64_intdigest(s.encode("utf-8"))

    config = NGramsDecontConfig()  # n_grams 12, find_query_ngrams False, find_overlap_ngrams True
    # object.__new__: PipelineStep.__new__ insists on lighteval, which only the indexer's run() uses
    indexer = object.__new__(NGramsDecontIndexer)
    indexer.__init__(output_folder=folder, config=config)
    indexer.hash_func = h64
    per_task: dict[str, set[int]] = {}
    for item in items:
        for gold in item.golds:
            per_task.setdefault(item.set, set()).update(indexer.compute_hashes(gold, item.query))
    for task, hashes in per_task.items():
        np.array(sorted(hashes), dtype="<u8").tofile(os.path.join(folder, f"{task}.index.hashes"))
    filt = NGramsDecontFilter(index_folder=folder, config=config)
    filt.hash_func = h64
    filt.load_index_hashes()
    return filt


def parity(repeats: int) -> None:
    specs = [EvalSpec.parse(e) for e in EVALS]
    items = [i for s in specs for i in items_of(s)]
    ids, texts, which = planted_docs(items)
    from datatrove.data import Document

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        filt = datatrove_filter(items, folder)
        dt_build = time.perf_counter() - t0
        dt_times, dt_rejected = [], set()
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = [filt.filter(Document(text=t, id=i)) for i, t in zip(ids, texts)]
            dt_times.append(time.perf_counter() - t0)
            dt_rejected = {i for i, o in zip(ids, out) if o is not True}
    with tempfile.TemporaryDirectory() as cache:
        stage = Decontaminate(evals=EVALS, cache_dir=cache, **DATATROVE)
        t0 = time.perf_counter()
        stage.setup()
        ours_build = time.perf_counter() - t0
        batches = [pa.table({"id": ids[a : a + 1000], "text": texts[a : a + 1000]}) for a in range(0, len(ids), 1000)]
        ours_times, ours_rejected = [], set()
        for _ in range(repeats):
            t0 = time.perf_counter()
            reasons = []
            for b in batches:
                r = stage.apply(b).reasons
                reasons += r.to_pylist() if r is not None else [None] * b.num_rows
            ours_times.append(time.perf_counter() - t0)
            ours_rejected = {i for i, r in zip(ids, reasons) if r}
    planted = {ids[k] for k, i in enumerate(which) if i >= 0}
    agree = sum((i in dt_rejected) == (i in ours_rejected) for i in ids)
    print(
        f"\n### Parity with datatrove NGramsDecontFilter ({len(ids):,} corpus pages, {len(planted)} with a planted "
        f"item; {len(items):,} items: GSM8K test, MMLU test, HumanEval; 12-grams, answer + overlap n-grams)\n"
    )
    print("| | rejected | planted items found | decisions agree | index build s | docs/s, median (min-max) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rej, times, build in (
        ("datatrove", dt_rejected, dt_times, dt_build),
        ("curate", ours_rejected, ours_times, ours_build),
    ):
        rate = [len(ids) / t for t in times]
        print(
            f"| {name} | {len(rej)} | {len(rej & planted)}/{len(planted)} | {agree}/{len(ids)} | {build:.1f} | "
            f"{median_spread(rate)} |"
        )
    if dt_rejected != ours_rejected:
        print(f"\ndisagree: datatrove only {sorted(dt_rejected - ours_rejected)[:10]}, "
              f"curate only {sorted(ours_rejected - dt_rejected)[:10]}")  # fmt: skip

    # span mode (GPT-3's settings) against the brute-force oracle
    with tempfile.TemporaryDirectory() as cache:
        stage = Decontaminate(evals=EVALS, mode="span", cache_dir=cache)
        stage.setup()
        res = stage.apply(pa.table({"id": ids, "text": texts}))
    out = res.table.column("text").to_pylist()
    reasons = res.reasons.to_pylist() if res.reasons is not None else [None] * len(ids)
    table = reference.item_ngram_table(items, stage.settings)
    same = removed = margin_only = short = 0
    left_over = 0
    planted_cut = 0
    for k, text in enumerate(texts):
        want, why, spans = reference.cut(text, table, stage.settings)
        same += why == reasons[k] and (why is not None or want == out[k])
        if which[k] >= 0 and spans:
            planted_cut += 1
        if why is None and spans:
            removed += len(text) - len(out[k])
            # characters in the cuts themselves (n-grams and margins) vs in the short pieces dropped around them
            wide, _, _ = reference.cut(text, table, stage.settings, min_piece=0)
            margin_only += len(text) - len(wide)
            short += len(wide) - len(out[k])
        if why is None:
            left_over += bool(reference.hits(stage.settings.normalizer.words(out[k]), table, stage.n_grams))
    n_planted = sum(i >= 0 for i in which)
    print("\n### Span mode (GPT-3: 13-grams, 200-character margin, pieces under 200 characters dropped)\n")
    print("| documents equal to the brute-force oracle | planted items cut | kept documents with an n-gram left | "
          "characters cut: n-grams + margins / short pieces |")  # fmt: skip
    print("|---:|---:|---:|---:|")
    print(f"| {same}/{len(ids)} | {planted_cut}/{n_planted} | {left_over} | {margin_only:,} / {short:,} |")


# -- scale --------------------------------------------------------------------------------------------------------

SCALE_EVALS = EVALS[:2] + [
    {"path": str(CORPUS / "evals-gsm8k/train.jsonl.gz"), "name": "gsm8k_train"},
    {"path": str(CORPUS / "evals-mmlu/val/*.csv"), "name": "mmlu_val", "preset": "mmlu_csv"},
    {"path": str(CORPUS / "evals-mmlu/dev/*.csv"), "name": "mmlu_dev", "preset": "mmlu_csv"},
]
# Items per benchmark (their test/validation splits as usually evaluated) and words per item: measured below for
# the sets in the corpus, assumed for the rest (from the shape of their items: a passage for reading tasks).
COMMON = [
    ("MMLU (test)", 14_042, "mmlu"),
    ("GSM8K (test)", 1_319, "gsm8k"),
    ("HumanEval", 164, "humaneval"),
    ("MATH (test)", 5_000, 120),
    ("ARC easy + challenge (test)", 3_548, 40),
    ("HellaSwag (validation)", 10_042, 110),
    ("Winogrande (validation)", 1_267, 30),
    ("TruthfulQA", 817, 80),
    ("BBH (27 tasks)", 6_511, 120),
    ("DROP (validation)", 9_536, 250),
    ("TriviaQA (validation)", 17_944, 25),
    ("Natural Questions (validation)", 3_610, 15),
    ("PIQA (validation)", 1_838, 50),
    ("SIQA (validation)", 1_954, 45),
    ("BoolQ (validation)", 3_270, 130),
    ("OpenBookQA (test)", 500, 35),
    ("CommonsenseQA (validation)", 1_221, 35),
    ("MBPP (test)", 500, 90),
    ("AGIEval (English)", 8_062, 150),
    ("GPQA (diamond)", 198, 180),
    ("MMLU-Pro (test)", 12_032, 150),
    ("IFEval", 541, 60),
]


def rss() -> int:
    return psutil.Process().memory_info().rss


def scale(repeats: int) -> None:
    specs = [EvalSpec.parse(e) for e in SCALE_EVALS]
    settings = Decontaminate(evals=SCALE_EVALS).settings
    t0 = time.perf_counter()
    full = build_index(specs, settings)
    build_s = time.perf_counter() - t0
    distinct = np.unique(full.hashes)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(distinct, 1_000_000, replace=False)) if len(distinct) > 1_000_000 else distinct
    keep = np.isin(full.hashes, chosen)
    before = rss()
    index = NgramIndex(full.hashes[keep], full.items[keep], full.item_set, full.item_keys, full.sets, settings,
                       {**full.stats, "ngrams": len(chosen)})  # fmt: skip
    index.lookup(np.zeros(1, np.uint64))  # builds the bitmap
    held = rss() - before
    t = extracted_docs()
    ids, texts = t.column("id").to_pylist(), t.column("text").to_pylist()
    batches = [pa.table({"id": ids[a : a + 1000], "text": texts[a : a + 1000]}) for a in range(0, len(ids), 1000)]
    mb = sum(map(len, texts)) / 1e6
    print(f"\n### Throughput: one process (one core), {len(ids):,} corpus pages ({mb:.1f} MB of text), an index of "
          f"{len(chosen):,} distinct 13-grams\n")  # fmt: skip
    print("| mode | docs/s per core, median (min-max) | MB/s | index in memory | RSS added |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("document", "span"):
        stage = Decontaminate(evals=SCALE_EVALS, mode=mode)
        stage.index = index
        stage.apply(batches[0])  # warm the tokenizer's caches once, as a worker does on its first batch
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for b in batches:
                stage.apply(b)
            rates.append(len(ids) / (time.perf_counter() - t0))
        print(f"| {mode} | {median_spread(rates)} | {statistics.median(rates) * mb / len(ids):.1f} | "
              f"{index.nbytes / 2**20:.1f} MiB | {held / 2**20:.1f} MiB |")  # fmt: skip
    print(f"\nfull index of {', '.join(full.sets)}: {full.describe()}; built in {build_s:.1f}s")

    # every common benchmark
    words_per_item = {}
    for name in ("mmlu", "gsm8k", "humaneval"):
        spec = EvalSpec.parse(next(e for e in EVALS if e["name"] == name))
        its = list(items_of(spec))
        words_per_item[name] = sum(len(settings.normalizer.words(i.text)) for i in its) / len(its)
    bytes_per_ngram = index.nbytes / len(chosen)
    total = 0.0
    print("\n### An index of every common benchmark (estimate)\n")
    print("| benchmark | items | words per item | 13-grams |")
    print("|---|---:|---:|---:|")
    for name, n_items, words in COMMON:
        w = words_per_item[words] if isinstance(words, str) else words
        grams = n_items * max(0.0, w - 12)
        total += grams
        src = "measured" if isinstance(words, str) else "assumed"
        print(f"| {name} | {n_items:,} | {w:.0f} ({src}) | {grams / 1e6:.2f}M |")
    print(f"| **all** | | | **{total / 1e6:.1f}M** |")
    print(f"\nAt {bytes_per_ngram:.1f} bytes per n-gram (measured above: hash 8 + item 4 + bitmap), "
          f"{total * bytes_per_ngram / 2**20:.0f} MiB per machine (memory-mapped, shared by its workers).")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()
    parity(args.repeats)
    if not args.skip_scale:
        scale(args.repeats)


if __name__ == "__main__":
    main()
