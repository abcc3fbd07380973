"""What a poison record costs: a run of N documents with one record that segfaults, exits, hangs (holding the GIL)
or blows up its worker's memory, against the same run clean, on the local and the Ray runner, at the defaults
(engine.isolation: process, record_deadline 30 s, memory_limit half the RAM over the CPUs).

Documents: corpus pages of ../shared/corpus when present (bench/corpus_docs.py), repeated to N with fresh ids, else
generated text; the chain is the poison stage -> c4_quality -> gopher_quality -> exact_dedup. Each cell is one run
in a fresh process (`curate run`), its wall time and what stats.json says of the poison record.

    python bench/poison.py [--docs 20000] [--runners local ray] [--kinds segfault exit hang memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STAGES = """
import ctypes
import os
import re

import curate


@curate.filter
def poison(doc, kind: str = "none"):
    if "POISON-MARK" in doc.text:
        if kind == "segfault":
            ctypes.string_at(0)
        elif kind == "exit":
            os._exit(1)
        elif kind == "hang":
            re.match(r"(a+)+$", "a" * 40 + "b")
        elif kind == "memory":
            blob = []
            while True:
                blob.append(b"x" * (1 << 26))
    return None
"""

PIPE = """
name: poison-bench
input: {{format: parquet, path: in}}
output: {{path: out}}
engine: {{progress_seconds: 0}}
stages:
  - {{id: poison, uses: "poison_stages:poison", with: {{kind: {kind}}}}}
  - {{id: c4, uses: c4_quality}}
  - {{id: gopher, uses: gopher_quality}}
  - {{id: dedup, uses: exact_dedup}}
"""


def _texts() -> tuple[list[str], str]:
    from corpus_docs import CORPUS, extracted_docs

    if CORPUS.is_dir():
        texts = [t for t in extracted_docs().column("text").to_pylist() if len(t.split()) > 60]
        return texts, f"{len(texts)} corpus pages (bench/corpus_docs.py) repeated"
    words = "the of and to in a is that for it as was with be by on not he this are or his from at which".split()
    return [" ".join(words[(i * 7 + j) % len(words)] for j in range(300)) + "." for i in range(500)], "generated text"


def write_input(folder: Path, n: int) -> str:
    texts, what = _texts()
    rows = [
        {"id": f"d{i:07d}", "text": f"{texts[i % len(texts)]} (copy {i})", "url": f"https://e.org/{i}"}
        for i in range(n)
    ]
    rows[n // 2 + 7]["text"] += " POISON-MARK"
    (folder / "in").mkdir(parents=True)
    step = max(1, n // 8)
    for j in range(0, n, step):
        pq.write_table(pa.Table.from_pylist(rows[j : j + step]), folder / "in" / f"part{j // step}.parquet")
    (folder / "poison_stages.py").write_text(STAGES)
    return what


def run(folder: Path, kind: str, runner: str) -> dict:
    (folder / "p.yaml").write_text(PIPE.format(kind=kind))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", "p.yaml", "--runner", runner, "--overwrite"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{kind}/{runner} failed:\n{proc.stderr[-3000:]}")
    stats = json.loads((folder / "out" / "stats.json").read_text())
    entry = next(e for e in stats["stages"] if e["id"] == "poison")
    lines = [ln for ln in proc.stderr.splitlines() if "isolated" in ln or "rejected as" in ln]
    return {"wall": wall, "reasons": entry["reasons"], "isolated": entry.get("isolated", []), "log": lines}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--runners", nargs="*", default=["local", "ray"])
    ap.add_argument("--kinds", nargs="*", default=["segfault", "exit", "hang", "memory"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        what = write_input(folder, args.docs)
        print(f"{args.docs} documents ({what}), one poison record\n")
        print("| runner | poison | wall s | clean wall s | extra s | rejected as | what the log says |")
        print("|---|---|---:|---:|---:|---|---|")
        for runner in args.runners:
            clean = run(folder, "none", runner)
            for kind in args.kinds:
                r = run(folder, kind, runner)
                reason = ", ".join(f"{k} {v}" for k, v in r["reasons"].items())
                said = r["log"][0].split(": ", 1)[-1][:110] if r["log"] else ""
                extra = r["wall"] - clean["wall"]
                print(f"| {runner} | {kind} | {r['wall']:.1f} | {clean['wall']:.1f} | {extra:+.1f} | {reason} | "
                      f"{said} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
