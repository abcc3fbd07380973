"""The ledger: input counts, stage timings and progress while a run goes.

Standard library only, and so is `curate/__init__`, so that the Ray actor holding it (curate.engine.ray) starts
without importing pyarrow, numpy and the stage API: on a small machine that process starts while the map workers do,
and takes CPU from them.
"""

from __future__ import annotations

from typing import Any


class Ledger:
    """Counts kept by the driver (local) or an actor (Ray). Input counts are keyed by read unit, so a retried
    read reports the same figure again instead of adding to it."""

    def __init__(self) -> None:
        self.units: dict[str, int] = {}
        self.stages: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, int] = {}

    def unit_done(self, key: str, docs: int) -> None:
        self.units[key] = docs

    def stage_batch(
        self, stage: str, docs_in: int, rejected: dict[str, int], seconds: float, counters: dict[str, int]
    ) -> None:
        s = self.stages.setdefault(stage, {"docs_in": 0, "rejected": {}, "seconds": 0.0, "counters": {}})
        s["docs_in"] += docs_in
        s["seconds"] += seconds
        for k, v in rejected.items():
            s["rejected"][k] = s["rejected"].get(k, 0) + v
        for k, v in counters.items():
            s["counters"][k] = s["counters"].get(k, 0) + v

    def stage_batches(self, figures: list[tuple[str, int, dict[str, int], float, dict[str, int]]]) -> None:
        """stage_batch for each stage of one batch through a segment: one call (one message on Ray) per batch."""
        for figure in figures:
            self.stage_batch(*figure)

    def add_errors(self, stage: str, n: int) -> int:
        self.errors[stage] = self.errors.get(stage, 0) + n
        return sum(self.errors.values())

    def snapshot(self) -> dict[str, Any]:
        return {"units": dict(self.units), "stages": self.stages, "errors": dict(self.errors)}
