"""The resume plan: what a phase reads, minus what earlier attempts of the run committed.

Phase 0 reads the pipeline's input; a unit an earlier attempt committed whole is skipped, and a unit it committed in
part is read again leaving out the documents its commits hold (from each commit's ids sidecar). Later phases read
the checkpoint the phase before them committed; a phase that starts with a global stage is redone whole.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple, Protocol

import pyarrow.parquet as pq

from curate.config import Pipeline
from curate.errors import ConservationError
from curate.io.base import Reader, ReadUnit
from curate.output import sink
from curate.output.checkpoint import CheckpointReader
from curate.output.state import RunState

log = logging.getLogger("curate")


class PhasePlan(Protocol):
    """What the resume plan needs to know of a phase (curate.engine.plan.Phase)."""

    index: int

    @property
    def starts_global(self) -> bool: ...

    @property
    def first_stage(self) -> str | None: ...


class UnitSkip(NamedTuple):
    """What a resumed read of a partly committed unit leaves out: the ids whose first copy is committed, and how
    many later copies of an id (rejected as duplicate_id) are."""

    first: frozenset[str]
    copies: dict[str, int]


def phase_input(
    pipeline: Pipeline, phase: PhasePlan, state: RunState, schemas: dict[str, Any]
) -> tuple[Reader, list[ReadUnit], dict[str, UnitSkip] | None]:
    """What a phase reads, minus what earlier attempts committed (phases that start with a global stage redo)."""
    if phase.index > 0 or phase.starts_global:
        state.discard_phase(phase.index)
    if phase.index > 0:
        shards = [
            {
                "url": sink.join(pipeline.output.path, f["path"]),
                "key": f["path"],
                "sha256": f["sha256"],
                "bytes": f["bytes"],
            }
            for c in state.commits(phase.index - 1)
            for f in c["files"]
            if f["kind"] == "kept"
        ]
        reader: Reader = CheckpointReader(
            shards=shards, stored_schema=schemas[phase.first_stage], batch_rows=pipeline.engine.batch_rows
        )
        return reader, reader.units(), None
    reader = pipeline.input
    units = reader.units()
    commits = state.commits(0)
    state.check_inputs(sorted({u.path for u in units}), committed=bool(commits))  # never mix old and new input
    if not commits:
        return reader, units, None
    state.verify_files(commits)
    written, totals = state.written_per_unit(0), state.units(0)
    over = [k for k, n in written.items() if k in totals and n > totals[k]]
    if over:
        raise ConservationError(f"an earlier attempt committed unit {over[0]} more than once")
    done = {k for k, n in totals.items() if written.get(k, 0) == n}
    partial = set(written) - done
    todo = [u for u in units if u.key not in done]
    skip = unit_skips(pipeline.output.path, commits, partial)
    log.info(
        "resume: %d of %d input unit(s) already done, %d partly (%d documents already written are skipped)",
        len(done),
        len(units),
        len(partial),
        sum(len(s.first) + sum(s.copies.values()) for s in skip.values()),
    )
    return reader, todo, skip or None


def unit_skips(out: str, commits: list[dict[str, Any]], partial: set[str]) -> dict[str, UnitSkip]:
    """Per partly committed unit, the documents its commits already hold (from each commit's ids sidecar)."""
    first: dict[str, set[str]] = {u: set() for u in partial}
    copies: dict[str, dict[str, int]] = {u: {} for u in partial}
    for c in commits:
        if not partial & set(c["units"]):
            continue
        ids = pq.read_table(sink.join(out, c["ids"])).to_pydict()
        for doc_id, unit, copy in zip(ids["id"], ids["unit"], ids["copy"]):
            if unit not in partial:
                continue
            if copy:
                copies[unit][doc_id] = copies[unit].get(doc_id, 0) + 1
            else:
                first[unit].add(doc_id)
    return {u: UnitSkip(frozenset(first[u]), copies[u]) for u in partial}
