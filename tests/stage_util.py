"""Run one stage on a few texts, as the engine would, and read back reasons and texts (filter tests)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from curate.stage import Stage

GOOD = (
    "The committee met on Tuesday to review the budget for the coming year. Members discussed several proposals, "
    "and most agreed that the library needed new computers. A local teacher described how students use the "
    "reading room after school. The mayor promised to publish a detailed report with the final numbers before "
    "the end of March. Residents who attended the meeting asked questions about parking, street lights and the "
    "new bus schedule. Several volunteers offered to help organise a book fair in the spring, which would raise "
    "money for children's programmes."
)


def apply(stage: Stage, texts: list[str], **columns: list[Any]) -> tuple[list[str | None], list[str], pa.Table]:
    """(reason per text, text per row after the stage, output table)."""
    data: dict[str, Any] = {"id": [f"d{i}" for i in range(len(texts))], "text": texts}
    data.update(columns)
    batch = pa.table(data)
    if stage.needs_setup():
        stage.setup()
    result = stage.apply(batch)
    assert result.table.num_rows == batch.num_rows
    reasons = [None] * batch.num_rows if result.reasons is None else result.reasons.to_pylist()
    return reasons, result.table.column("text").to_pylist(), result.table


def reason(stage: Stage, text: str, **columns: Any) -> str | None:
    return apply(stage, [text], **{k: [v] for k, v in columns.items()})[0][0]


def counters(stage: Stage) -> dict[str, int]:
    """The counters a stage tallied since the last call (the engine pops them after each batch)."""
    return stage.__dict__.pop("_counters", None) or {}
