"""The ledger: input counts, stage figures and stage errors while a run goes, for the live progress view.

Standard library only (with curate.output.figures, and so is `curate/__init__`), so that the Ray actor holding it
(curate.engine.ray) starts without importing pyarrow, numpy and the stage API: on a small machine that process
starts while the map workers do, and takes CPU from them. stats.json does not come from here but from the commit
records (exact under retries); the ledger is what a run has seen so far.
"""

from __future__ import annotations

from typing import Any

from curate.output.figures import Figures


class Ledger:
    """Counts kept by the driver (local) or an actor (Ray). Input counts are keyed by read unit, so a retried
    read reports the same figure again instead of adding to it."""

    def __init__(self) -> None:
        self.units: dict[str, int] = {}
        self.figures = Figures()
        self.errors: dict[str, int] = {}
        # records a global stage's per-batch work isolated as poison (engine/isolate.py), by stage, then id
        self.quarantine: dict[str, dict[str, dict[str, str]]] = {}

    def unit_done(self, key: str, docs: int) -> None:
        self.units[key] = docs

    def add(self, figures: Figures) -> None:
        """The figures of one batch through a segment (one call, one message on Ray, per batch)."""
        self.figures.add(figures)

    def add_errors(self, stage: str, n: int) -> int:
        self.errors[stage] = self.errors.get(stage, 0) + n
        return sum(self.errors.values())

    def isolate(self, stage: str, records: list[dict[str, str]]) -> None:
        """Records ({"id", "reason", "detail"}) that a global stage's derive() isolated; a retried task's again."""
        mine = self.quarantine.setdefault(stage, {})
        for r in records:
            mine[r["id"]] = r

    def isolated(self, stage: str) -> dict[str, dict[str, str]]:
        return dict(self.quarantine.get(stage, {}))

    def snapshot(self) -> dict[str, Any]:
        """{"units": {key: docs}, "stages": {stage: StageFigures}, "errors": {stage: n}}."""
        return {"units": dict(self.units), "stages": dict(self.figures.stages), "errors": dict(self.errors)}
