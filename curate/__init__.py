"""curate: turn raw web crawls into LLM pretraining data.

The Python API for custom stages:

    import curate

    @curate.filter
    def no_lorem(doc, max_hits: int = 0) -> str | None:
        return "lorem_ipsum" if doc.text.lower().count("lorem ipsum") > max_hits else None
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curate import inputs, stages
    from curate.api import Pipeline, RunResult, run
    from curate.api import open as open  # noqa: A004
    from curate.doc import Doc
    from curate.errors import ConfigError, CurateError, InputError, MissingDependency, StageError
    from curate.inflight import tracked
    from curate.stage import (
        Filter,
        GlobalStage,
        GroupFilter,
        Mapper,
        Stage,
        StageColumns,
        StageResult,
        filter,
        mapper,
    )

__version__ = "0.1.0"

# The API's names load on first use: importing a submodule (the Ray ledger actor's curate.ledger, the CLI's
# argument parser) runs this file first, and the stage API pulls in pyarrow and numpy.
_LAZY = {
    "Doc": "curate.doc",
    **dict.fromkeys(("ConfigError", "CurateError", "InputError", "MissingDependency", "StageError"), "curate.errors"),
    **dict.fromkeys(
        ("Filter", "GlobalStage", "GroupFilter", "Mapper", "Stage", "StageColumns", "StageResult", "filter", "mapper"),
        "curate.stage",
    ),
    "tracked": "curate.inflight",
    # building, running and reading pipelines from Python (docs/python-api.md)
    **dict.fromkeys(("Pipeline", "RunResult", "inputs", "open", "run", "stages"), "curate.api"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'curate' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "Pipeline",
    "RunResult",
    "Stage",
    "StageColumns",
    "StageError",
    "StageResult",
    "filter",
    "inputs",
    "mapper",
    "run",
    "stages",
    "tracked",
]  # and curate.open(OUT), left out here so that `from curate import *` does not hide the builtin open
