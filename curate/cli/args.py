"""Command-line arguments shared by the subcommands of several modules (`curate run`, `validate`, `submit`,
`train`...). Kept apart from curate.cli so that the modules adding subcommands need not import it back."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """The pipeline file and the overrides every pipeline command takes: --input, --output, --set."""
    p.add_argument("pipeline", help="a pipeline file, or the name of a bundled one (e.g. fineweb.yaml)")
    p.add_argument("--input", help="override input.path (a file, directory, glob or fsspec URL)")
    p.add_argument("--output", help="override output.path")
    add_set_argument(p, "stages.lang.language_threshold=0.8")
    p.add_argument(
        "--tokenizer",
        action=_TokenizerOverride,
        metavar="TOKENIZER_JSON",
        help="count tokens with this local tokenizer.json in stats.json, the run table and the report, and in the "
        "stages that count tokens (sets output.tokenizer)",
    )


class _TokenizerOverride(argparse.Action):
    """--tokenizer PATH: the override `output.tokenizer=<absolute path>` (quoted as JSON, which YAML reads)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        overrides = list(getattr(namespace, "overrides", None) or [])  # never the parser's default list
        overrides.append(f"output.tokenizer={json.dumps(os.path.abspath(str(values)))}")
        namespace.overrides = overrides


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
