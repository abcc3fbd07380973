"""Command-line arguments shared by the subcommands of several modules (`curate run`, `validate`, `submit`,
`train`...). Kept apart from curate.cli so that the modules adding subcommands need not import it back."""

from __future__ import annotations

import argparse


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """The pipeline file and the overrides every pipeline command takes: --input, --output, --set."""
    p.add_argument("pipeline", help="a pipeline file, or the name of a bundled one (e.g. fineweb.yaml)")
    p.add_argument("--input", help="override input.path (a file, directory, glob or fsspec URL)")
    p.add_argument("--output", help="override output.path")
    add_set_argument(p, "stages.lang.language_threshold=0.8")


def add_set_argument(p: argparse.ArgumentParser, example: str) -> None:
    """`--set KEY=VALUE` (repeatable), parsed as YAML; pipelines and training configs share it."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a value, e.g. --set {example} (repeatable)",
    )
