"""Tokenization speed per core: `curate tokenize --format megatron` against the floor (`tokenizers`' own
`encode_batch` on the same texts, already in memory, nothing written) and datatrove's `DocumentTokenizer` (reading the
same Parquet files with its ParquetReader, writing .ds files), all with the same tokenizer.json, EOS after each
document.

Documents: the paragraphs (blank-line separated) of the Project Gutenberg books in /work/shared/corpus/prose-gutenberg,
or the CommonCrawl documents of /work/shared/corpus/jsonl-dolma-cc2019-cclicensed (--corpus dolma), read in place and
written to a few Parquet files (columns id, text) in a temporary directory. The tokenizer is a byte-level BPE in GPT-2's
layout trained on the documents (--vocab-size), or --tokenizer FILE.

Every run is a fresh process with TOKENIZERS_PARALLELISM=false, so all work is on one core: rates are per core. A
run's figure is documents (tokens, EOS included) over its CPU seconds (process time, which other jobs sharing the
machine do not inflate); wall seconds are printed too. Process start and imports are not timed. Each case runs
--runs times (default 3): median and range.

    python bench/tokenize_speed.py                    # gutenberg paragraphs
    python bench/tokenize_speed.py --corpus dolma
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

CORPUS = "/work/shared/corpus"

CASES = {
    "floor": "tokenizers encode_batch (in memory)",
    "curate": "curate tokenize --format megatron",
    "curate-shuffle": "curate tokenize --format megatron --shuffle-seed 0",
    "datatrove": "datatrove DocumentTokenizer (no shuffle)",
    "datatrove-shuffle": "datatrove DocumentTokenizer (its default shuffle)",
}

# One case, run in a fresh process: prints {"cpu": s, "wall": s} on its last line.
CHILD = r"""
import json, os, sys, time
import pyarrow as pa
pa.array(["x"])  # pyarrow's one-time lazy import of pandas happens here, outside the timed part, for every case
case, data, tok_path, out, eos = sys.argv[1:6]
if case == "floor":
    import pyarrow.parquet as pq, glob
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    files = sorted(glob.glob(os.path.join(data, "*.parquet")))
    texts = [t for f in files for t in pq.read_table(f).column("text").to_pylist()]
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(0, len(texts), 1000):
        tok.encode_batch(texts[i : i + 1000])
elif case.startswith("curate"):
    from curate.train.formats import build_formatted
    from curate.train.tokenizer import Tokenizer
    c0, w0 = time.process_time(), time.perf_counter()
    tok = Tokenizer.from_file(tok_path)
    seed = 0 if case.endswith("shuffle") else None
    build_formatted(data, tok, out, "megatron", shuffle_seed=seed, parallel="local", tokenizer_name=tok_path)
else:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer
    import logging
    c0, w0 = time.process_time(), time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[
            ParquetReader(data, glob_pattern="*.parquet"),
            DocumentTokenizer(out, tokenizer_name_or_path=tok_path, eos_token=eos,
                              shuffle_documents=case.endswith("shuffle"), seed=0),
        ],
        tasks=1, workers=1, logging_dir=os.path.join(out, "_logs"), skip_completed=False,
    ).run()
print(json.dumps({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}))
"""


def gutenberg_docs() -> list[str]:
    docs = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "prose-gutenberg", "*.txt"))):
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read().replace("\r\n", "\n")
        docs += [" ".join(p.split()) for p in text.split("\n\n") if len(p.strip()) >= 40]
    return docs


def dolma_docs() -> list[str]:
    docs = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "jsonl-dolma-cc2019-cclicensed", "*.jsonl*"))):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            docs += [t for line in fh if line.strip() and (t := json.loads(line).get("text"))]
    return docs


def write_inputs(docs: list[str], where: str, files: int) -> None:
    per = -(-len(docs) // files)
    for k in range(files):
        part = docs[k * per : (k + 1) * per]
        ids = [f"d{k}-{i}" for i in range(len(part))]
        pq.write_table(pa.table({"id": ids, "text": part}), os.path.join(where, f"part-{k:05d}.parquet"))


def run_case(case: str, data: str, tok_path: str, eos: str, work: str) -> dict[str, float]:
    out = tempfile.mkdtemp(dir=work, prefix=f"{case}-")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", CHILD, case, data, tok_path, out, eos], env=env, capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(f"{case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=("gutenberg", "dolma"), default="gutenberg")
    ap.add_argument("--tokenizer", help="a tokenizer.json (default: train a byte-level BPE on the documents)")
    ap.add_argument("--vocab-size", type=int, default=16384)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=4, help="Parquet files the documents are written to")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    args = ap.parse_args()

    from curate.train.formats import build_formatted
    from curate.train.tokenizer import EOS, Tokenizer, train_bpe

    docs = gutenberg_docs() if args.corpus == "gutenberg" else dolma_docs()
    work = tempfile.mkdtemp(prefix="tokenize-speed-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    write_inputs(docs, data, args.files)
    if args.tokenizer:
        tok = Tokenizer.from_file(args.tokenizer)
        tok_path = args.tokenizer
    else:
        tok = train_bpe(docs, args.vocab_size)
        tok_path = os.path.join(work, "tokenizer.json")
        tok.save(tok_path)
    eos = tok.eos_token if args.tokenizer else EOS
    # the counts every rate divides by: documents and tokens (EOS included) as written
    m = build_formatted(data, tok, os.path.join(work, "count"), "megatron", parallel="local")
    n_docs, n_tokens = m["docs"], m["tokens"]
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(
        f"{args.corpus}: {n_docs:,} documents, {mb:.1f} MB of text, {n_tokens:,} tokens (EOS included), "
        f"vocab {tok.vocab_size:,}, {args.files} Parquet files; {args.runs} runs per case, one core each"
    )
    cases = [c for c in args.cases.split(",") if c]
    results: dict[str, list[dict[str, float]]] = {c: [] for c in cases}
    for _ in range(args.runs):  # interleaved, so drift on a shared machine hits every case alike
        for c in cases:
            results[c].append(run_case(c, data, tok_path, eos, work))

    floor = statistics.median(r["cpu"] for r in results["floor"]) if "floor" in results else None
    head = (
        f"| {'case':<52} | {'docs/s/core':>20} | {'tokens/s/core':>24} | {'CPU s (range)':>17} "
        f"| {'wall s':>6} | {'vs floor':>8} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(p)) for p in head.split("|")[1:-1]) + "|")
    for c in cases:
        cpu = sorted(r["cpu"] for r in results[c])
        wall = statistics.median(r["wall"] for r in results[c])
        med = statistics.median(cpu)
        d = f"{n_docs / med:,.0f} ({n_docs / cpu[-1]:,.0f}-{n_docs / cpu[0]:,.0f})"
        t = f"{n_tokens / med:,.0f} ({n_tokens / cpu[-1]:,.0f}-{n_tokens / cpu[0]:,.0f})"
        rng = f"{med:.2f} ({cpu[0]:.2f}-{cpu[-1]:.2f})"
        vs = f"{floor / med:.2f}x" if floor else "-"
        print(f"| {CASES[c]:<52} | {d:>20} | {t:>24} | {rng:>17} | {wall:>6.2f} | {vs:>8} |")
    print(f"(work directory {work})")


if __name__ == "__main__":
    main()
