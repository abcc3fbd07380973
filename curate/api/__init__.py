"""The Python API for building, running and reading pipelines (curate in a notebook as on the command line):

    import curate

    p = curate.Pipeline(
        name="sample",
        input=curate.inputs.warc("sample:crawl?pages=200"),
        output="out/sample",
        stages=[curate.stages.trafilatura(favour_precision=True), curate.stages.fasttext_langid(languages=["en"])],
    )
    result = curate.run(p, runner="local")  # the stats, shown as the table `curate run` prints
    out = curate.open(result.output)  # kept and rejected documents as Arrow, pandas, Ray or HF datasets

Building goes through curate.config (the checks and messages of a pipeline file), running through curate.engine,
reading through curate.report (explain, diff): this package adds no second copy of any of them.
"""

from __future__ import annotations

import curate.inputs as inputs
import curate.stages as stages
from curate.api.build import InputEntry, Pipeline, StageEntry
from curate.api.outputs import Diff, Documents, OutputData, open_output
from curate.api.result import RunResult
from curate.api.runs import run

open = open_output  # curate.open(OUT)

__all__ = [
    "Diff",
    "Documents",
    "InputEntry",
    "OutputData",
    "Pipeline",
    "RunResult",
    "StageEntry",
    "inputs",
    "open",
    "run",
    "stages",
]
