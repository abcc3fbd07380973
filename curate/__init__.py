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
    "Stage",
    "StageColumns",
    "StageError",
    "StageResult",
    "filter",
    "mapper",
    "run",
    "tracked",
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
