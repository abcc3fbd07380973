"""Seeing what a run did: `curate report OUT` (OUT/report.html), `curate inspect`, `curate explain`, `curate diff`."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_report(args: argparse.Namespace) -> int:
    from curate.report import plots
    from curate.report.html import write_report

    path = write_report(args.out, max_rows=args.max_rows, examples=args.examples)
    print(f"report: {path}")
    if not plots.available():
        print("note: matplotlib is not installed, so the report has tables but no plots (pip install 'curate[report]')")
    return 0


def register_cli(sub: Any) -> None:
    """Add the report, inspect, explain and diff subcommands."""
    p = sub.add_parser("report", help="write OUT/report.html: what a finished run did, with plots")
    p.add_argument("out", metavar="OUT", help="the output directory of a finished run")
    p.add_argument("--max-rows", type=int, default=10_000, help="rows read for the distributions (default 10000)")
    p.add_argument("--examples", type=int, default=3, help="example documents per rejection reason (default 3)")
    p.set_defaults(fn=cmd_report)

    from curate.report import diff, inspect

    inspect.register(sub)
    diff.register(sub)
