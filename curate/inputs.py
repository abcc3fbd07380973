"""Input constructors, generated from the reader registry on first use: `curate.inputs.warc("crawl/*.warc.gz")` is
the section `input: {format: warc, path: "crawl/*.warc.gz"}`; keyword arguments are the format's other keys."""

from __future__ import annotations

from typing import Any

from curate.api.build import INPUTS, InputEntry

__all__ = ["InputEntry"]


def __getattr__(name: str) -> Any:
    return INPUTS.get(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(INPUTS.names()))
