"""Stage constructors, generated from the stage registry on first use:
`curate.stages.trafilatura(favour_precision=True)` makes the pipeline entry
`{id: trafilatura, uses: trafilatura, with: {favour_precision: true}}`. Every registered stage has one (third-party
stages too), with the stage's parameters as its signature and its description as its docstring;
`curate.stages.use(MyFilter, max_hits=1)` is the one for a stage of your own (a class or 'module:attr').
"""

from __future__ import annotations

from typing import Any

from curate.api.build import STAGES, StageEntry, use

__all__ = ["StageEntry", "use"]


def __getattr__(name: str) -> Any:
    return STAGES.get(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(STAGES.names()))
