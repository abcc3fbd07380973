"""`curate sample-crawl OUT.warc.gz --pages N --seed S`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from curate.samples.paths import DEFAULT_PAGES
from curate.samples.writer import write_sample_crawl


def cmd_sample_crawl(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    counts = write_sample_crawl(out, args.pages, args.seed)
    seconds = time.perf_counter() - t0
    size = out.stat().st_size
    kinds = ", ".join(f"{k} {v:,}" for k, v in counts.most_common())
    print(f"wrote {out}: {args.pages:,} captures ({kinds}), {size / 1e6:.1f} MB in {seconds:.1f}s")
    return 0


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample-crawl",
        help="write a synthetic Common-Crawl-like WARC (articles, boilerplate, duplicates, spam, non-HTML)",
    )
    p.add_argument("out", help="the .warc.gz file to write")
    p.add_argument("--pages", type=int, default=DEFAULT_PAGES, help=f"captures to write (default {DEFAULT_PAGES})")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same file)")
    p.set_defaults(fn=cmd_sample_crawl)
