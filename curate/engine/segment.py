"""What both runners share: the segment runner, the ledger and the stats (the plan is in plan.py).

A segment is a chain of row-wise stages fused into one pass over each batch; global stages sit between segments.
Rejected rows travel with the batch (in the reserved __reason__/__stage__ columns) to the one writer, so that a
document is written exactly once, kept or rejected, whatever retries happen upstream.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from curate.config import Pipeline, StageSpec
from curate.engine.plan import (  # noqa: F401  (re-exported: the runners and the CLI import the plan from here)
    Phase,
    Segment,
    plan_phases,
    plan_segments,
    rejected_schemas,
    stage_schemas,
)
from curate.errors import ConservationError, StageError
from curate.schema import (
    ID,
    INPUT_STAGE,
    REASON,
    RESERVED,
    STAGE,
    STATS,
    UNIT,
    WRITTEN,
    add_sizes,
    attach_figures,
    doc_sizes,
    merge_figures,
    stage_sizes,
    with_reserved,
)
from curate.stage import Stage, StageResult

log = logging.getLogger("curate.engine")


class Reporter(Protocol):
    def stage_batch(
        self, stage: str, docs_in: int, rejected: dict[str, int], seconds: float, counters: dict
    ) -> None: ...

    def stage_batches(self, figures: list[tuple[str, int, dict[str, int], float, dict[str, int]]]) -> None: ...

    def add_errors(self, stage: str, n: int) -> int: ...


# -- the segment runner ------------------------------------------------------------------------------------------


def setup_stage(sid: str, stage: Stage) -> None:
    """stage.setup(), with a failure turned into one StageError naming the stage (and keeping the cause)."""
    try:
        stage.setup()
    except Exception as e:
        if isinstance(e, StageError):
            raise
        raise StageError(f"stage '{sid}' failed in setup(): {type(e).__name__}: {e}") from e


def preflight(specs: list[StageSpec]) -> None:
    """Build and set up each stage once on the driver before any worker starts, so that a missing package or
    model file is one clear error in seconds, not an actor dying on every node. Stages that need a GPU are
    skipped (the driver may have none)."""
    for spec in specs:
        if spec.resources.get("num_gpus"):
            continue
        setup_stage(spec.id, spec.build())


class SegmentRunner:
    """Runs a fused chain of row stages over a batch; rejected rows leave the chain with their reason, and each
    stage's seconds and counters ride on the batch (see schema.STATS) to the writer's commit record."""

    def __init__(self, specs: list[StageSpec], reporter: Reporter, max_stage_errors: int = 100) -> None:
        self.ids = [s.id for s in specs]
        self.stages: list[Stage] = [s.build() for s in specs]
        self.reporter = reporter
        self.max_stage_errors = max_stage_errors
        self._tracebacks_logged = 0
        for sid, stage in zip(self.ids, self.stages):
            setup_stage(sid, stage)

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = with_reserved(batch)
        reasons = batch.column(REASON)
        if reasons.null_count == batch.num_rows:
            live, out = batch, []
        else:
            alive = pc.is_null(reasons)
            live, out = batch.filter(alive), [batch.filter(pc.invert(alive))]
        # Stages never see the engine's columns; they travel beside the rows, filtered in lockstep.
        meta = live.select(list(RESERVED))
        work = live.drop_columns(list(RESERVED))
        figures: dict[str, dict[str, Any]] = {}
        reports: list[tuple[str, int, dict[str, int], float, dict[str, int]]] = []
        sizes = doc_sizes(work)  # words and bytes per live row, recounted only after a stage that changed text
        for sid, stage in zip(self.ids, self.stages):
            if work.num_rows == 0:
                break
            t0 = time.perf_counter()
            result = self._apply(sid, stage, work)
            seconds = time.perf_counter() - t0
            counters = stage.take_counts()
            figures[sid] = {"seconds": seconds, "counters": counters}
            if result.reasons is None:
                reports.append((sid, work.num_rows, {}, seconds, counters))
                sizes = stage_sizes(figures[sid], sizes, work, result.table, None, result.table)
                work = result.table
                continue
            keep = pc.is_null(result.reasons)
            drop = pc.invert(keep)
            why = result.reasons.filter(drop)
            rejected = work.filter(drop)  # rejected documents as they entered the stage
            rmeta = meta.filter(drop)
            n = rejected.num_rows
            rejected = rejected.append_column(REASON, why).append_column(STAGE, pa.array([sid] * n, pa.string()))
            for name in (UNIT, STATS):
                rejected = rejected.append_column(name, rmeta.column(name))
            out.append(rejected)
            tally = pc.value_counts(why).to_pylist()
            reports.append((sid, work.num_rows, {d["values"]: d["counts"] for d in tally}, seconds, counters))
            kept = result.table.filter(keep)
            sizes = stage_sizes(figures[sid], sizes, work, result.table, keep, kept)
            work = kept
            meta = meta.filter(keep)
        if reports:
            self.reporter.stage_batches(reports)
        for name in RESERVED:
            work = work.append_column(name, meta.column(name))
        out.insert(0, work)
        table = pa.concat_tables(out, promote_options="permissive") if len(out) > 1 else out[0]
        return attach_figures(table, figures)

    def _apply(self, sid: str, stage: Stage, table: pa.Table) -> StageResult:
        try:
            result = stage.apply(table)
        except Exception as e:
            if isinstance(e, StageError):
                raise
            return self._apply_per_row(sid, stage, table)
        return _checked(sid, stage, table, result)

    def _apply_per_row(self, sid: str, stage: Stage, table: pa.Table) -> StageResult:
        """A stage raised on a batch: find the documents it raises on, reject them as stage_error:<stage>."""
        tables: list[pa.Table] = []
        reasons: list[str | None] = []
        failures = 0
        for i in range(table.num_rows):
            row = table.slice(i, 1)
            try:
                res = _checked(sid, stage, row, stage.apply(row))
            except StageError:
                raise
            except Exception:
                failures += 1
                self._log_failure(sid, row)
                tables.append(row)
                reasons.append(f"stage_error:{sid}")
                continue
            tables.append(res.table)
            reasons.append(None if res.reasons is None else res.reasons[0].as_py())
        total = self.reporter.add_errors(sid, failures)
        if 0 <= self.max_stage_errors < total:
            raise StageError(
                f"stage '{sid}' raised on {total} documents, more than engine.max_stage_errors="
                f"{self.max_stage_errors}; the run stops (tracebacks are in the log)",
                hint="fix the stage, or raise engine.max_stage_errors (-1 for no cap)",
            )
        ok = [t for t, r in zip(tables, reasons) if r != f"stage_error:{sid}"]
        schema = ok[0].schema if ok else table.schema
        from curate.schema import conform

        merged = pa.concat_tables([conform(t, schema) for t in tables]) if tables else table
        return StageResult(merged, pa.array(reasons, pa.string()))

    def _log_failure(self, sid: str, row: pa.Table) -> None:
        doc_id = row.column("id")[0].as_py() if "id" in row.column_names else "?"
        if self._tracebacks_logged < 5:
            self._tracebacks_logged += 1
            log.error("stage '%s' raised on document %s:\n%s", sid, doc_id, traceback.format_exc())
        else:
            log.error("stage '%s' raised on document %s (traceback above for earlier ones)", sid, doc_id)


def _checked(sid: str, stage: Stage, before: pa.Table, result: Any) -> StageResult:
    """Enforce the stage contract: same number of rows, only declared new columns, declared types."""
    if not isinstance(result, StageResult):
        if isinstance(result, tuple) and len(result) == 2:
            result = StageResult(*result)
        else:
            raise StageError(f"stage '{sid}' returned {type(result).__name__}, not a StageResult")
    table, reasons = result
    if table.num_rows != before.num_rows:
        raise StageError(
            f"stage '{sid}' returned {table.num_rows} rows for {before.num_rows}",
            hint="stages keep every row and reject documents with a reason; dropping rows would lose documents",
        )
    if reasons is not None and len(reasons) != before.num_rows:
        raise StageError(f"stage '{sid}' returned {len(reasons)} reasons for {before.num_rows} rows")
    allowed = set(before.column_names) | set(stage.output_columns)
    extra = [c for c in table.column_names if c not in allowed]
    if extra:
        raise StageError(
            f"stage '{sid}' added undeclared column(s) {', '.join(extra)}",
            hint="declare added columns in the stage's output_columns with their pyarrow types",
        )
    for name, dtype in stage.output_columns.items():
        if name in table.column_names and table.schema.field(name).type != dtype:
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, table.column(name).cast(dtype))
    if reasons is not None and not pa.types.is_string(reasons.type):
        reasons = reasons.cast(pa.string())
    return StageResult(table, reasons)


# -- stats and conservation --------------------------------------------------------------------------------------


def build_stats(
    pipeline: Pipeline,
    phases: list[Phase],
    state: Any,
    seconds: float,
    runner: str,
    attempt: int,
) -> dict[str, Any]:
    """stats.json from the committed bundles of every phase and attempt (documents, reasons, and the seconds and
    counters that rode with them), so every figure is exact under retries. Raises ConservationError when the
    documents read are not exactly the documents written (kept + rejected), in total or in any phase."""
    rejected, figures, phase_in, phase_kept, written = _phase_counts(phases, state)
    input_docs, output_docs = phase_in[0], phase_kept[-1]
    for sid, record in state.global_records().items():
        merge_figures(figures, {sid: record})
    input_counters: dict[str, int] = {}
    for counters in state.unit_counters(0):
        for k, v in counters.items():
            input_counters[k] = input_counters.get(k, 0) + v
    figures[INPUT_STAGE] = {**figures.get(INPUT_STAGE, {}), "seconds": 0.0, "counters": input_counters}
    rejected_total = sum(sum(v.values()) for v in rejected.values())
    stages_out = _stage_entries(pipeline, input_docs, rejected, figures)
    unknown = set(rejected) - {s["id"] for s in stages_out}
    if unknown or input_docs != output_docs + rejected_total:
        raise ConservationError(
            f"conservation broken: read {input_docs} documents but wrote {output_docs} kept + {rejected_total} "
            "rejected" + (f" (rejections from unknown stages {sorted(unknown)})" if unknown else ""),
            hint="this is a bug in curate or in a stage; please report it with the pipeline file",
        )
    layout = {sp.id: (seg.kind, ph.index) for ph in phases for seg in ph.segments for sp in seg.specs}
    sizes_conserved = add_sizes(stages_out, figures, layout, written)
    if not sizes_conserved:
        log.warning("word and byte figures in stats.json do not add up (stage in = kept + rejected)")
    errors = {
        sid: n
        for sid, reasons in rejected.items()
        if (n := sum(v for r, v in reasons.items() if r.startswith("stage_error:")))
    }
    return {
        "pipeline": pipeline.name,
        "runner": runner,
        "input_docs": input_docs,
        "output_docs": output_docs,
        # extra rows of kept documents written more than once (repeat, mix): OUT/data holds output_docs + copies
        "copies": sum(c["counts"].get("copies", 0) for c in state.commits(phases[-1].index)),
        "rejected_docs": rejected_total,
        "conserved": True,
        "input_units": len(state.units(0)),
        "attempts": attempt,
        "stage_errors": errors,
        "seconds": round(seconds, 3),
        "input_words": stages_out[0]["words_in"],
        "input_bytes": stages_out[0]["bytes_in"],
        "output_words": written[-1].get("words", 0),
        "output_bytes": written[-1].get("bytes", 0),
        "sizes_conserved": sizes_conserved,
        "stages": stages_out,
    }


def _phase_counts(
    phases: list[Phase], state: Any
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, Any]], list[int], list[int], list[dict[str, Any]]]:
    """Rejections by stage and reason, stage figures, documents in and kept per phase, and the sizes each phase
    wrote as kept, from the commits; checks conservation within each phase and between phases."""
    rejected: dict[str, dict[str, int]] = {}
    figures: dict[str, dict[str, Any]] = {}
    phase_in: list[int] = []
    phase_kept: list[int] = []
    written: list[dict[str, Any]] = []
    for phase in phases:
        commits = state.commits(phase.index)
        docs_in = sum(state.units(phase.index).values())
        kept = sum(c["counts"]["kept"] for c in commits)
        out = kept
        wrote: dict[str, dict[str, Any]] = {}
        for c in commits:
            figs = dict(c.get("stages", {}))
            merge_figures(wrote, {WRITTEN: figs.pop(WRITTEN, {})})
            merge_figures(figures, figs)
            for stage, reasons in c["counts"]["rejected"].items():
                bucket = rejected.setdefault(stage, {})
                for reason, n in reasons.items():
                    bucket[reason] = bucket.get(reason, 0) + n
                    out += n
        if docs_in != out:
            raise ConservationError(
                f"conservation broken in phase {phase.index}: read {docs_in} documents but wrote {out} "
                f"({kept} kept, {out - kept} rejected)",
                hint="this is a bug in curate or in a stage; please report it with the pipeline file",
            )
        if phase.index and docs_in != phase_kept[-1]:
            raise ConservationError(
                f"conservation broken between phases: phase {phase.index - 1} handed on {phase_kept[-1]} "
                f"documents, phase {phase.index} read {docs_in}"
            )
        phase_in.append(docs_in)
        phase_kept.append(kept)
        written.append(wrote.get(WRITTEN, {}))  # a phase with no commits (nothing reached it) wrote nothing
    return rejected, figures, phase_in, phase_kept, written


def _stage_entries(
    pipeline: Pipeline, input_docs: int, rejected: dict[str, dict[str, int]], figures: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One stats entry per stage (the input pseudo-stage first): documents in, kept, rejected by reason, figures."""
    entries = []
    docs = input_docs
    for sid, uses in [(INPUT_STAGE, pipeline.input.format)] + [(s.id, s.uses) for s in pipeline.stages]:
        rej = rejected.get(sid, {})
        n_rej = sum(rej.values())
        fig = figures.get(sid, {})
        entry: dict[str, Any] = {
            "id": sid,
            "uses": uses,
            "docs_in": docs,
            "kept": docs - n_rej,
            "rejected": n_rej,
            "reasons": dict(sorted(rej.items(), key=lambda kv: -kv[1])),
            "seconds": round(fig.get("seconds", 0.0), 3),
            "ms_per_doc": round(1000 * fig.get("seconds", 0.0) / docs, 4) if docs else 0.0,
        }
        if fig.get("counters"):
            entry["counters"] = dict(sorted(fig["counters"].items()))
        entries.append(entry)
        docs -= n_rej
    return entries


DUPLICATE_ID = "duplicate_id"


class UnitSkip(NamedTuple):
    """What a resumed read of a partly committed unit leaves out: the ids whose first copy is committed, and how
    many later copies of an id (rejected as duplicate_id) are."""

    first: frozenset[str]
    copies: dict[str, int]


def read_unit(
    reader: Any,
    unit: Any,
    on_done: Callable[[str, int, dict[str, int]], None],
    skip: UnitSkip | None = None,
) -> Iterator[pa.Table]:
    """A reader's batches for one unit, tagged with the unit, minus documents a previous attempt committed;
    reports the unit's full document count (and the reader's counters) once it has been read to the end.

    A later copy of an id already seen in the unit is rejected as duplicate_id (stage `input`): resume, dedup and
    joins name documents by id, so the first copy in reading order is the document."""
    reader.take_counts()
    n = 0
    seen: dict[str, int] = {}
    skipped_copies: dict[str, int] = {}
    for batch in reader.read(unit):
        n += batch.num_rows
        batch = with_reserved(batch)
        idx = batch.schema.get_field_index(UNIT)
        batch = batch.set_column(idx, UNIT, pa.array([unit.key] * batch.num_rows, pa.string()))
        copy, keep = [], []
        for doc_id in batch.column(ID).to_pylist():
            k = seen.get(doc_id, 0)
            seen[doc_id] = k + 1
            copy.append(k > 0)
            if skip is None:
                keep.append(True)
            elif k == 0:
                keep.append(doc_id not in skip.first)
            else:
                done = skipped_copies.get(doc_id, 0)
                drop = done < skip.copies.get(doc_id, 0)
                skipped_copies[doc_id] = done + drop
                keep.append(not drop)
        if any(copy):
            batch = _reject_where(batch, pa.array(copy, pa.bool_()), DUPLICATE_ID)
        if skip is not None and not all(keep):
            batch = batch.filter(pa.array(keep, pa.bool_()))
        if batch.num_rows:
            yield batch
    on_done(unit.key, n, reader.take_counts())


def _reject_where(batch: pa.Table, mask: pa.Array, reason: str) -> pa.Table:
    """Reject the rows of `mask` that are still live, at the input pseudo-stage."""
    new = pc.and_(mask, pc.is_null(batch.column(REASON)))
    for name, value in ((REASON, reason), (STAGE, INPUT_STAGE)):
        col = pc.if_else(new, pa.scalar(value, pa.string()), batch.column(name))
        batch = batch.set_column(batch.schema.get_field_index(name), name, col)
    return batch
