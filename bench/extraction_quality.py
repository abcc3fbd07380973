"""Extraction quality on trafilatura's own benchmark (990 pages, must-include / must-exclude snippets) and on
Mozilla Readability's 130 test pages (expected article text), for every extraction engine curate has, in one run.

Engines (curate's stages, each decoding the page bytes itself):
  trafilatura standard          Trafilatura(favour_precision=False)
  trafilatura precision         Trafilatura(favour_precision=True): FineWeb's setting, curate's default
  trafilatura precision fast    the same with fast=True: trafilatura's no-fallback mode (no readability/justext)
  resiliparse                   Resiliparse(main_content=True): DCLM's extractor
  fast_extract                  FastExtract: curate's block classifier (filters/extraction/fast)
--direct adds trafilatura.extract() on the raw bytes, as trafilatura's benchmark calls it.

The numbers that count are on the held-out split (fast.corpus: sites whose SHA-1 starts with an odd
byte), which fast_extract was never trained or tuned on; the tuned split and all pages are shown beside them, the
latter to compare with the published figures (../shared/corpus/html-trafilatura-eval/published_scores_*.rst).

Metrics. Trafilatura's benchmark (its own scoring): per page, a "with" snippet found in the output is a true
positive, missing a false negative; a "without" snippet found is a false positive, absent a true negative;
P/R/accuracy/F1 over all snippets. Readability pages: bag-of-words precision/recall/F1 of the output's lower-cased
\\w+ tokens against those of Readability's expected article, per page, averaged over pages (the token metric of the
article-extraction benchmarks; both empty counts as 1).

    python bench/extraction_quality.py [--corpus ../shared/corpus] [--split held_out|tune|all] [--direct]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate_filters.extraction.extractors import Resiliparse, Trafilatura  # noqa: E402
from curate_filters.extraction.fast import FastExtract  # noqa: E402
from curate_filters.extraction.fast.corpus import (  # noqa: E402
    HELD_OUT,
    TUNE,
    Page,
    prf,
    readability_pages,
    snippet_counts,
    token_prf,
    trafilatura_eval,
)


def run_stage(stage, pages: list[Page]) -> tuple[dict[str, str | None], float]:
    """The stage's text for each page (batches of 100, as a run would), and the seconds it took."""
    stage.setup()
    t0 = time.perf_counter()
    out: dict[str, str | None] = {}
    for i in range(0, len(pages), 100):
        chunk = pages[i : i + 100]
        table = pa.table(
            {
                "id": [p.id for p in chunk],
                "url": [p.url or None for p in chunk],
                "html": pa.array([p.html for p in chunk], pa.binary()),
                "charset": pa.nulls(len(chunk), pa.string()),
            }
        )
        result, _ = stage.map_batch(table)
        out.update(zip([p.id for p in chunk], result.column("text").to_pylist()))
    return out, time.perf_counter() - t0


def run_direct(pages: list[Page], **kwargs) -> tuple[dict[str, str | None], float]:
    import trafilatura

    t0 = time.perf_counter()
    out = {p.id: trafilatura.extract(p.html, url=p.url or None, **kwargs) for p in pages}
    return out, time.perf_counter() - t0


def published(folder: Path) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for f in folder.glob("published_scores_*.rst"):
        for line in f.read_text().splitlines():
            m = re.match(r"^(\S.*?)\s{2,}\**([\d.]+)\**\s+\**([\d.]+)\**\s+\**([\d.]+)\**\s+\**([\d.]+)\**", line)
            if m and ("trafilatura" in m.group(1) or "resiliparse" in m.group(1)):
                rows.append((m.group(1).strip(), *(float(m.group(k)) for k in range(2, 6))))
    return rows


def in_split(pages: list[Page], split: str) -> list[Page]:
    return pages if split == "all" else [p for p in pages if p.split == split]


def bench_scores(out: dict[str, str | None], pages: list[Page]) -> dict[str, float]:
    return prf(sum((snippet_counts(out.get(p.id), p) for p in pages), np.zeros(4)))


def readability_scores(out: dict[str, str | None], pages: list[Page]) -> tuple[float, float, float]:
    scores = np.array([token_prf(out.get(p.id), p.expected_text) for p in pages]).reshape(-1, 3)
    return tuple(scores.mean(0)) if len(scores) else (0.0, 0.0, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    ap.add_argument("--split", default=HELD_OUT, choices=[HELD_OUT, TUNE, "all"], help="the split reported first")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pages of each benchmark (0: all)")
    ap.add_argument("--direct", action="store_true", help="also trafilatura.extract() on the raw bytes")
    args = ap.parse_args()
    corpus = Path(args.corpus)
    bench = trafilatura_eval(corpus)
    read = readability_pages(corpus)
    if args.limit:
        bench, read = bench[: args.limit], read[: args.limit]
    pages = bench + read
    other = TUNE if args.split == HELD_OUT else HELD_OUT
    b_main, b_other = in_split(bench, args.split), in_split(bench, other)
    r_main = in_split(read, args.split)
    print(
        f"trafilatura benchmark: {len(bench)} pages ({len(b_main)} {args.split}, {len(b_other)} {other}), "
        f"{sum(len(p.with_snippets) for p in b_main)} with / {sum(len(p.without_snippets) for p in b_main)} "
        f"without snippets on {args.split}; Readability test pages: {len(read)} ({len(r_main)} {args.split})\n"
    )

    runs: list[tuple[str, Callable[[], tuple[dict[str, str | None], float]]]] = [
        ("trafilatura standard", lambda: run_stage(Trafilatura(favour_precision=False, deduplicate=False, timeout=0),
                                                   pages)),
        ("trafilatura precision (FineWeb)", lambda: run_stage(Trafilatura(deduplicate=False, timeout=0), pages)),
        ("trafilatura precision fast", lambda: run_stage(Trafilatura(fast=True, deduplicate=False, timeout=0), pages)),
    ]  # fmt: skip
    if args.direct:
        runs += [
            ("trafilatura.extract(bytes) standard", lambda: run_direct(pages, include_comments=False)),
            ("trafilatura.extract(bytes) precision",
             lambda: run_direct(pages, include_comments=False, favor_precision=True)),
        ]  # fmt: skip
    try:
        import resiliparse  # noqa: F401

        runs.append(("resiliparse", lambda: run_stage(Resiliparse(timeout=0), pages)))
    except ImportError:
        print("(resiliparse not installed: pip install 'curate[fast]' to score it)\n")
    runs.append(("fast_extract", lambda: run_stage(FastExtract(timeout=0), pages)))

    results: dict[str, tuple[dict[str, str | None], float]] = {}
    for name, fn in runs:
        results[name] = fn()
        print(f"  ran {name} ({results[name][1]:.0f}s)", file=sys.stderr, flush=True)

    print(f"trafilatura's benchmark, {args.split} split (F1 on the {other} split and on all pages beside it):")
    print(f"| engine | precision | recall | accuracy | F1 | F1 {other} | F1 all {len(bench)} | pages/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    f1: dict[str, float] = {}
    for name, (out, seconds) in results.items():
        s = bench_scores(out, b_main)
        f1[name] = s["f1"]
        print(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['accuracy']:.3f} | {s['f1']:.3f} | "
            f"{bench_scores(out, b_other)['f1']:.3f} | {bench_scores(out, bench)['f1']:.3f} | "
            f"{len(pages) / seconds:.1f} |"
        )
    print(f"\nReadability test pages, {args.split} split (token F1 on all pages beside it):")
    print(f"| engine | token precision | token recall | token F1 | token F1 all {len(read)} |")
    print("|---|---:|---:|---:|---:|")
    tf1: dict[str, float] = {}
    for name, (out, _) in results.items():
        p, r, f = readability_scores(out, r_main)
        tf1[name] = f
        print(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {readability_scores(out, read)[2]:.3f} |")

    ref = "trafilatura precision (FineWeb)"
    print(f"\nfast_extract - {ref} on the {args.split} split: benchmark F1 {f1['fast_extract'] - f1[ref]:+.3f}, "
          f"Readability token F1 {tf1['fast_extract'] - tf1[ref]:+.3f}")  # fmt: skip
    if "resiliparse" in f1:
        print(f"fast_extract - resiliparse: benchmark F1 {f1['fast_extract'] - f1['resiliparse']:+.3f}, "
              f"Readability token F1 {tf1['fast_extract'] - tf1['resiliparse']:+.3f}")  # fmt: skip
    print("\npublished (trafilatura docs/evaluation.rst, all 990 pages):")
    for name, p, r, a, f in published(corpus / "html-trafilatura-eval"):
        print(f"  {name:<42}{p:>10.3f}{r:>9.3f}{a:>10.3f}{f:>8.3f}")


if __name__ == "__main__":
    main()
