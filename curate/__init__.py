"""curate: turn raw web crawls into LLM pretraining data.

The Python API for custom stages:

    import curate

    @curate.filter
    def no_lorem(doc, max_hits: int = 0) -> str | None:
        return "lorem_ipsum" if doc.text.lower().count("lorem ipsum") > max_hits else None
"""

from __future__ import annotations

from curate.doc import Doc
from curate.errors import ConfigError, CurateError, InputError, MissingDependency, StageError
from curate.stage import Filter, GlobalStage, GroupFilter, Mapper, Stage, StageResult, filter, mapper

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CurateError",
    "Doc",
    "Filter",
    "GlobalStage",
    "GroupFilter",
    "InputError",
    "Mapper",
    "MissingDependency",
    "Stage",
    "StageError",
    "StageResult",
    "filter",
    "mapper",
    "run",
]


def run(
    pipeline: str,
    *,
    runner: str = "ray",
    overrides: list[str] | None = None,
    input: str | None = None,
    output: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Run a pipeline file (or bundled name) from Python; returns the run's stats (OUT/stats.json)."""
    from curate import config, engine

    p = config.load(pipeline, overrides, input, output)
    return engine.run(p, runner=runner, address=address, overwrite=overwrite)
