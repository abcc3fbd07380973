"""Extraction quality on trafilatura's own benchmark (990 pages, must-include / must-exclude snippets).

Scores curate's `trafilatura` stage (its own charset decoding, then trafilatura) in trafilatura's standard and
precision (FineWeb) modes, the `resiliparse` stage when installed, and trafilatura.extract() called directly on
the raw bytes as trafilatura's benchmark does, in the same run; prints them next to the published figures from
../shared/corpus/html-trafilatura-eval/published_scores_*.rst.

Scoring (the benchmark's): per page, a "with" snippet found in the output is a true positive, missing a false
negative; a "without" snippet found is a false positive, absent a true negative; P/R/accuracy/F1 over all snippets.

    python bench/extraction_quality.py [--corpus ../shared/corpus] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from filters.extraction import Resiliparse, Trafilatura  # noqa: E402


def score(outputs: dict[str, str | None], evaldata: dict) -> dict[str, float]:
    tp = fn = fp = tn = 0
    for url, entry in evaldata.items():
        text = outputs.get(url) or ""
        for s in entry.get("with", []):
            if s in text:
                tp += 1
            else:
                fn += 1
        for s in entry.get("without", []):
            if s in text:
                fp += 1
            else:
                tn += 1
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "accuracy": (tp + tn) / (tp + tn + fp + fn), "f1": 2 * p * r / (p + r)}


def run_stage(stage, pages: dict[str, bytes]) -> tuple[dict[str, str | None], float]:
    stage.setup()
    urls = list(pages)
    t0 = time.perf_counter()
    out: dict[str, str | None] = {}
    for i in range(0, len(urls), 100):
        chunk = urls[i : i + 100]
        table = pa.table(
            {
                "id": chunk,
                "url": chunk,
                "html": pa.array([pages[u] for u in chunk], pa.binary()),
                "charset": pa.nulls(len(chunk), pa.string()),
            }
        )
        result, _ = stage.map_batch(table)
        out.update(zip(chunk, result.column("text").to_pylist()))
    return out, time.perf_counter() - t0


def run_direct(pages: dict[str, bytes], **kwargs) -> tuple[dict[str, str | None], float]:
    import trafilatura

    t0 = time.perf_counter()
    out = {u: trafilatura.extract(b, url=u, **kwargs) for u, b in pages.items()}
    return out, time.perf_counter() - t0


def published(folder: Path) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for f in folder.glob("published_scores_*.rst"):
        for line in f.read_text().splitlines():
            m = re.match(r"^(\S.*?)\s{2,}\**([\d.]+)\**\s+\**([\d.]+)\**\s+\**([\d.]+)\**\s+\**([\d.]+)\**", line)
            if m and ("trafilatura" in m.group(1) or "resiliparse" in m.group(1)):
                rows.append((m.group(1).strip(), *(float(m.group(k)) for k in range(2, 6))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N pages (0: all 990)")
    args = ap.parse_args()
    folder = Path(args.corpus) / "html-trafilatura-eval"
    evaldata = json.loads((folder / "evaldata.json").read_text())
    if args.limit:
        evaldata = dict(list(evaldata.items())[: args.limit])
    pages = {url: gzip.decompress((folder / "html" / f"{e['file']}.gz").read_bytes()) for url, e in evaldata.items()}
    print(
        f"{len(pages)} pages, {sum(len(e['with']) for e in evaldata.values())} with / "
        f"{sum(len(e['without']) for e in evaldata.values())} without snippets\n"
    )

    runs = [
        (
            "curate trafilatura (standard)",
            lambda: run_stage(Trafilatura(favour_precision=False, deduplicate=False, timeout=0), pages),
        ),
        (
            "curate trafilatura (precision: FineWeb)",
            lambda: run_stage(Trafilatura(favour_precision=True, deduplicate=False, timeout=0), pages),
        ),
        (
            "curate trafilatura (FineWeb, timeout 1s)",
            lambda: run_stage(Trafilatura(favour_precision=True, deduplicate=False, timeout=1.0), pages),
        ),
        ("trafilatura.extract(bytes) standard", lambda: run_direct(pages, include_comments=False)),
        (
            "trafilatura.extract(bytes) precision",
            lambda: run_direct(pages, include_comments=False, favor_precision=True),
        ),
    ]
    try:
        import resiliparse  # noqa: F401

        runs.append(("curate resiliparse", lambda: run_stage(Resiliparse(timeout=0), pages)))
    except ImportError:
        print("(resiliparse not installed: pip install 'curate[fast]' to score it)\n")
    print(f"{'extractor':<44}{'precision':>10}{'recall':>9}{'accuracy':>10}{'F1':>8}{'pages/s':>9}")
    for name, fn in runs:
        out, seconds = fn()
        s = score(out, evaldata)
        print(
            f"{name:<44}{s['precision']:>10.3f}{s['recall']:>9.3f}{s['accuracy']:>10.3f}{s['f1']:>8.3f}"
            f"{len(pages) / seconds:>9.1f}",
            flush=True,
        )
    print("\npublished (trafilatura docs/evaluation.rst, same 990 pages):")
    for name, p, r, a, f1 in published(folder):
        print(f"  {name:<42}{p:>10.3f}{r:>9.3f}{a:>10.3f}{f1:>8.3f}")


if __name__ == "__main__":
    main()
