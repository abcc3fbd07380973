"""The segment runner, which both executors run: a chain of row stages fused into one pass over each batch.

Global stages sit between segments (engine/globals.py). Rejected rows travel with the batch (in the reserved
__reason__/__stage__ columns) to the one writer, so that a document is written exactly once, kept or rejected,
whatever retries happen upstream; each stage's figures travel with them (curate.output.measure).
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from curate.config import StageSpec
from curate.errors import CurateError, StageError
from curate.output.figures import Figures
from curate.output.measure import attach_figures, doc_sizes, stage_sizes
from curate.schema import FIGURES, REASON, STAGE, UNIT, conform, split_live, with_reserved
from curate.stage import Stage, StageResult, check_reasons

log = logging.getLogger("curate.engine")


class Reporter(Protocol):
    """Where a runner reports live figures (the ledger, or on Ray its actor)."""

    def add(self, figures: Figures) -> None: ...

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
    """Each stage's preflight() on the driver before any worker starts, so that a missing package or model file is
    one clear error in seconds, not an actor dying on every node; no model is loaded here. A stage with setup()
    that has no preflight() (a plugin written before it) is set up on a throwaway instance instead, unless it needs
    a GPU (the driver may have none)."""
    for spec in specs:
        stage = spec.stage
        if type(stage).preflight is not Stage.preflight or not stage.needs_setup():
            preflight_stage(spec.id, stage)
        elif not spec.resources.get("num_gpus"):
            setup_stage(spec.id, spec.build())


def preflight_stage(sid: str, stage: Stage) -> None:
    """stage.preflight(), with a failure turned into one StageError naming the stage (its hint kept)."""
    try:
        stage.preflight()
    except StageError:
        raise
    except CurateError as e:
        raise StageError(f"stage '{sid}': {e.message}", hint=e.hint) from e
    except Exception as e:
        raise StageError(f"stage '{sid}' failed in preflight(): {type(e).__name__}: {e}") from e


class SegmentRunner:
    """Runs a fused chain of row stages over a batch; rejected rows leave the chain with their reason, and each
    stage's figures ride on the batch (schema.FIGURES, output.measure) to the writer's commit record."""

    def __init__(self, specs: list[StageSpec], reporter: Reporter, max_stage_errors: int = 100) -> None:
        self.ids = [s.id for s in specs]
        self.stages: list[Stage] = [s.build() for s in specs]
        self.reporter = reporter
        self.max_stage_errors = max_stage_errors
        self._tracebacks_logged = 0
        for sid, stage in zip(self.ids, self.stages):
            setup_stage(sid, stage)

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Stages never see the engine's columns; they travel beside the rows (`meta`), filtered in lockstep.
        split = split_live(with_reserved(batch))
        work, meta = split.body, split.meta
        out: list[pa.Table] = []
        figures = Figures()
        sizes = doc_sizes(work)  # words and bytes per live row, recounted only after a stage that changed text
        for sid, stage in zip(self.ids, self.stages):
            if work.num_rows == 0:
                break
            t0 = time.perf_counter()
            result = self._apply(sid, stage, work)
            fig = figures.stage(sid)
            fig.seconds = time.perf_counter() - t0
            fig.counters = stage.take_counts()
            fig.docs_in = work.num_rows
            if result.reasons is None:
                sizes = stage_sizes(fig, sizes, work, result.table, None, result.table)
                work = result.table
                continue
            keep = pc.is_null(result.reasons)
            drop = pc.invert(keep)
            why = result.reasons.filter(drop)
            fig.rejected = {d["values"]: d["counts"] for d in pc.value_counts(why).to_pylist()}
            out.append(_rejected_rows(work.filter(drop), why, sid, meta.filter(drop)))  # as they entered
            kept = result.table.filter(keep)
            sizes = stage_sizes(fig, sizes, work, result.table, keep, kept)
            work = kept
            meta = meta.filter(keep)
        if figures.stages:
            self.reporter.add(figures)
        table = split.join(work, meta)
        if out:
            table = pa.concat_tables([table, *out], promote_options="permissive")
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
        merged = pa.concat_tables([conform(t, schema) for t in tables]) if tables else table
        return StageResult(merged, pa.array(reasons, pa.string()))

    def _log_failure(self, sid: str, row: pa.Table) -> None:
        doc_id = row.column("id")[0].as_py() if "id" in row.column_names else "?"
        if self._tracebacks_logged < 5:
            self._tracebacks_logged += 1
            log.error("stage '%s' raised on document %s:\n%s", sid, doc_id, traceback.format_exc())
        else:
            log.error("stage '%s' raised on document %s (traceback above for earlier ones)", sid, doc_id)


def _rejected_rows(rows: pa.Table, why: pa.Array, sid: str, meta: pa.Table) -> pa.Table:
    """A stage's rejected rows with the engine's columns: the reason, the stage, and the unit and figures they had."""
    n = rows.num_rows
    rows = rows.append_column(REASON, why).append_column(STAGE, pa.array([sid] * n, pa.string()))
    for name in (UNIT, FIGURES):
        rows = rows.append_column(name, meta.column(name))
    return rows


def declared_columns(
    who: str, table: pa.Table, known: set[str], declared: dict[str, pa.DataType], hint: str
) -> pa.Table:
    """`table` with its declared columns cast to their types; a StageError when it holds a column that is neither
    `known` (the stage's input) nor declared."""
    extra = [c for c in table.column_names if c not in known and c not in declared]
    if extra:
        raise StageError(f"{who} added undeclared column(s) {', '.join(extra)}", hint=hint)
    for name, dtype in declared.items():
        if name in table.column_names and table.schema.field(name).type != dtype:
            table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(dtype))
    return table


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
    hint = "declare added columns in the stage's output_columns with their pyarrow types"
    table = declared_columns(f"stage '{sid}'", table, set(before.column_names), stage.columns().output, hint)
    if reasons is not None:
        if not pa.types.is_string(reasons.type):
            reasons = reasons.cast(pa.string())
        check_reasons(sid, reasons)
    return StageResult(table, reasons)
