"""curate.run: a pipeline (a file, a bundled name, a mapping or a Pipeline) run from Python as `curate run` runs it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from curate import config
from curate.api.build import Pipeline, override_list, python_value
from curate.api.result import RunResult


def resolve(
    pipeline: str | os.PathLike[str] | Mapping[str, Any] | config.Pipeline,
    overrides: str | list[str] | Mapping[str, Any] | None = None,
    input: str | None = None,
    output: str | None = None,
) -> Pipeline:
    """The validated pipeline `curate run` would run: a path or bundled name is loaded as the CLI loads it, a mapping
    as a pipeline file's, and a Pipeline is taken as it is (validated again when overrides, input or output change
    it)."""
    sets = override_list(overrides)
    if isinstance(pipeline, config.Pipeline):
        if not sets and input is None and output is None:
            return Pipeline.of(pipeline)
        return Pipeline.of(config.from_dict(pipeline.resolved, sets, input, output, file=pipeline.file))
    if isinstance(pipeline, Mapping):
        return Pipeline.of(config.from_dict(python_value(pipeline), sets, input, output))
    return Pipeline.of(config.load(os.fspath(pipeline), sets, input, output))


def run(
    pipeline: str | os.PathLike[str] | Mapping[str, Any] | config.Pipeline,
    *,
    input: str | None = None,
    output: str | None = None,
    overrides: str | list[str] | Mapping[str, Any] | None = None,
    runner: str = "ray",
    address: str | None = None,
    overwrite: bool = False,
    take_over: bool = False,
    report: bool = False,
) -> RunResult:
    """Run a pipeline from Python, as `curate run` does, and return its RunResult (a dict of OUT/stats.json with the
    table, the output's paths and its documents).

    `pipeline` is a pipeline file, a bundled pipeline's name ('fineweb'), a mapping as a file holds it, or a
    curate.Pipeline. `input` / `output` replace input.path / output.path (--input, --output); `overrides` are --set
    values ('stages.lang.language_threshold=0.8', a list of them, or a mapping); `runner` is 'ray' (an embedded local
    Ray, or the cluster at `address` / RAY_ADDRESS) or 'local' (in this process); `overwrite` replaces a finished run
    in the output directory (else running again resumes, and a finished output is refused as by the CLI); `report`
    writes OUT/report.html. Mistakes raise the CurateError (ConfigError, InputError, ...) whose message the CLI prints.
    """
    from curate import engine

    p = resolve(pipeline, overrides, input, output)
    stats = engine.run(p, runner=runner, address=address, overwrite=overwrite, take_over=take_over)
    result = RunResult(stats, p)
    if report:
        result.report()
    return result
