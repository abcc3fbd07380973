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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import inflight
from curate.config import StageSpec
from curate.engine.isolate import Failure, Isolated, Limits, Sandbox, guarded
from curate.errors import CurateError, StageError
from curate.output.figures import UNITS, Figures
from curate.output.measure import attach_figures, doc_sizes, stage_sizes
from curate.schema import FIGURES, REASON, STAGE, UNIT, conform, split_live, with_reserved
from curate.stage import Stage, StageResult, check_reasons

log = logging.getLogger("curate.engine")
# One line per record isolated as a poison record (engine/isolate.py); workers keep it at WARNING (engine/ray.py).
isolation_log = logging.getLogger("curate.isolation")
_OOM = "out_of_memory"


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
    stage's figures ride on the batch (schema.FIGURES, output.measure) to the writer's commit record. With
    `limits` (engine.isolation: process, the default) each batch runs in a forked child (engine/isolate.py) and a
    record that crashes, hangs or exhausts it is rejected alone; without, in this process (for a debugger)."""

    def __init__(
        self,
        specs: list[StageSpec],
        reporter: Reporter,
        max_stage_errors: int = 100,
        limits: Limits | None = None,
        tokenizer: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer  # the pipeline's (output.tokenizer): sizes in tokens too
        self.ids = [s.id for s in specs]
        self.stages: list[Stage] = [s.build() for s in specs]
        self.reporter = reporter
        self.max_stage_errors = max_stage_errors
        self.limits = limits
        self._sandbox = Sandbox(self._run)  # the child the batches run in (forked on first use, kept warm)
        self._tracebacks_logged = 0
        for sid, stage in zip(self.ids, self.stages):
            setup_stage(sid, stage)

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = with_reserved(batch)
        if self.limits is None:
            results, isolated = [self._run(batch, None)], []
        else:
            limits = self.limits

            def run(rows: list[int]) -> tuple[Any, Failure | None]:
                sub = batch if len(rows) == batch.num_rows else batch.take(rows)
                return self._sandbox.call((sub, rows), limits, len(rows))

            results, isolated = guarded(run, batch.num_rows, "+".join(self.ids))
        figures = Figures()
        tables = []
        for table, fig, errors in results:
            figures.add(fig)
            tables.append(table)
            for sid, sf in fig.stages.items():
                for f in sf.failures:
                    what = f"{f['reason']} ({f['detail']})"
                    isolation_log.warning("stage '%s': document %s rejected as %s", sid, f["id"], what)
            for sid, failed in errors.items():
                self._stage_errors(sid, failed)
        for iso in isolated:
            tables.append(self._isolated_row(batch, iso, figures))
        if figures.stages:
            self.reporter.add(figures)
        tables = [t for t in tables if t.num_rows] or tables[:1]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")

    def _run(self, batch: pa.Table, rows: list[int] | None) -> tuple[pa.Table, Figures, dict[str, list]]:
        """The stages over `batch`, whose rows are rows `rows` of the batch the runner got (None: all of them):
        the batch out, its figures and, per stage, the documents it raised on (id, traceback)."""
        # Stages never see the engine's columns; they travel beside the rows (`meta`), filtered in lockstep.
        split = split_live(batch)
        work, meta = split.body, split.meta
        live = np.flatnonzero(pc.is_null(batch.column(REASON)).to_numpy(zero_copy_only=False))
        origin = np.asarray(rows if rows is not None else range(batch.num_rows), np.int64)[live]
        out: list[pa.Table] = []
        figures = Figures()
        errors: dict[str, list] = {}
        # words, bytes and tokens per live row, recounted only after a stage that changed text
        sizes = doc_sizes(work, self.tokenizer)
        for k, (sid, stage) in enumerate(zip(self.ids, self.stages)):
            if work.num_rows == 0:
                break
            t0 = time.perf_counter()
            result = self._apply(k, stage, work, origin.tolist(), errors)
            fig = figures.stage(sid)
            fig.seconds = time.perf_counter() - t0
            fig.counters = stage.take_counts()
            fig.docs_in = work.num_rows
            for doc_id, _ in errors.pop(_OOM, []):
                fig.failures.append({"id": doc_id, "reason": _OOM, "detail": "MemoryError at the memory limit"})
            if result.reasons is None:
                sizes = stage_sizes(fig, sizes, work, result.table, None, result.table, self.tokenizer)
                work = result.table
                continue
            keep = pc.is_null(result.reasons)
            drop = pc.invert(keep)
            why = result.reasons.filter(drop)
            fig.rejected = {d["values"]: d["counts"] for d in pc.value_counts(why).to_pylist()}
            rows = _with_rejected_columns(work.filter(drop), result.table.filter(drop), stage)  # as they entered
            out.append(_rejected_rows(rows, why, sid, meta.filter(drop)))
            kept = _without_rejected_columns(result.table.filter(keep), stage, work)
            sizes = stage_sizes(fig, sizes, work, result.table, keep, kept, self.tokenizer)
            work = kept
            meta = meta.filter(keep)
            origin = origin[keep.to_numpy(zero_copy_only=False)]
        inflight.stage(-1, ())
        table = split.join(work, meta)
        if out:
            table = pa.concat_tables([table, *out], promote_options="permissive")
        return attach_figures(table, figures), figures, errors

    def _apply(self, k: int, stage: Stage, table: pa.Table, origin: list[int], errors: dict[str, list]) -> StageResult:
        sid = self.ids[k]
        inflight.stage(k, origin)
        try:
            result = stage.apply(table)
        except StageError:
            raise
        except Exception:
            result = None
        if result is None:
            # Outside the except clause: its exception (and the frames it holds: a MemoryError's runaway data)
            # is gone before the documents are tried one by one.
            return self._apply_per_row(k, stage, table, origin, errors)
        return _checked(sid, stage, table, result)

    def _apply_per_row(
        self, k: int, stage: Stage, table: pa.Table, origin: list[int], errors: dict[str, list]
    ) -> StageResult:
        """A stage raised on a batch: find the documents it raises on, reject them as stage_error:<stage> (or
        out_of_memory: a MemoryError, the isolated child's memory limit reached)."""
        sid = self.ids[k]
        tables: list[pa.Table] = []
        reasons: list[str | None] = []
        for i in range(table.num_rows):
            row = table.slice(i, 1)
            inflight.stage(k, origin, i)
            try:
                res = _checked(sid, stage, row, stage.apply(row))
            except StageError:
                raise
            except Exception as e:
                tables.append(row)
                if isinstance(e, MemoryError):  # the isolated child's memory limit: no kill needed
                    reasons.append(_OOM)
                    doc_id = row.column("id")[0].as_py() if "id" in row.column_names else "?"
                    errors.setdefault(_OOM, []).append((doc_id, sid))
                    continue
                doc_id = row.column("id")[0].as_py() if "id" in row.column_names else "?"
                errors.setdefault(sid, []).append((doc_id, traceback.format_exc()))
                reasons.append(f"stage_error:{sid}")
                continue
            tables.append(res.table)
            reasons.append(None if res.reasons is None else res.reasons[0].as_py())
        ok = [t for t, r in zip(tables, reasons) if r is None or not (r.startswith("stage_error:") or r == _OOM)]
        schema = ok[0].schema if ok else table.schema
        merged = pa.concat_tables([conform(t, schema) for t in tables]) if tables else table
        return StageResult(merged, pa.array(reasons, pa.string()))

    def _stage_errors(self, sid: str, failed: list[tuple[str, str]]) -> None:
        """Log the documents a stage raised on (tracebacks of the first five) and stop the run past the cap."""
        for doc_id, text in failed:
            if self._tracebacks_logged < 5:
                self._tracebacks_logged += 1
                log.error("stage '%s' raised on document %s:\n%s", sid, doc_id, text)
            else:
                log.error("stage '%s' raised on document %s (traceback above for earlier ones)", sid, doc_id)
        total = self.reporter.add_errors(sid, len(failed))
        if 0 <= self.max_stage_errors < total:
            raise StageError(
                f"stage '{sid}' raised on {total} documents, more than engine.max_stage_errors="
                f"{self.max_stage_errors}; the run stops (tracebacks are in the log)",
                hint="fix the stage, or raise engine.max_stage_errors (-1 for no cap)",
            )

    def _isolated_row(self, batch: pa.Table, iso: Isolated, figures: Figures) -> pa.Table:
        """The row the guard isolated, rejected by the stage that was running, as it entered the segment; its
        figures count it in every stage before that one (it passed them) and rejected there."""
        k = min(max(iso.failure.stage, 0), len(self.ids) - 1)
        sid = self.ids[k]
        row = batch.slice(iso.row, 1)
        doc_id = row.column("id")[0].as_py() if "id" in row.column_names else "?"
        sizes = [int(a[0]) for a in doc_sizes(split_live(row).body, self.tokenizer)]
        fig = Figures()
        for j, other in enumerate(self.ids[: k + 1]):
            f = fig.stage(other)
            f.docs_in = 1
            for unit, n in zip(UNITS, sizes):
                flow = f.flow(unit)
                flow.into = n  # (its size rejected is counted by the writer, from the row itself)
                if j < k:
                    flow.kept = flow.out = n
        last = fig.stage(sid)
        last.rejected = {iso.failure.reason: 1}
        last.failures = [{"id": doc_id, "reason": iso.failure.reason, "detail": iso.failure.detail}]
        figures.add(fig)
        isolation_log.warning(
            "stage '%s': document %s isolated as %s (%s; found in %d run%s of the batch)",
            sid,
            doc_id,
            iso.failure.reason,
            iso.failure.detail,
            iso.runs,
            "s" if iso.runs > 1 else "",
        )
        row = row.set_column(row.schema.get_field_index(REASON), REASON, pa.array([iso.failure.reason], pa.string()))
        row = row.set_column(row.schema.get_field_index(STAGE), STAGE, pa.array([sid], pa.string()))
        return attach_figures(row, fig)


def _with_rejected_columns(rows: pa.Table, result: pa.Table, stage: Stage) -> pa.Table:
    """A row stage's rejected rows as they entered it, plus the rejected_columns it set on them (why it rejected
    them: a matched n-gram, a score)."""
    for name in stage.columns().rejected:
        if name in result.column_names:
            col = result.column(name)
            idx = rows.schema.get_field_index(name)
            rows = rows.set_column(idx, name, col) if idx >= 0 else rows.append_column(name, col)
    return rows


def _without_rejected_columns(kept: pa.Table, stage: Stage, before: pa.Table) -> pa.Table:
    """Kept rows without the columns the stage added for rejected rows only."""
    columns = stage.columns()
    only = [n for n in columns.rejected if n not in columns.output and n in kept.column_names]
    only = [n for n in only if n not in before.column_names]
    return kept.drop_columns(only) if only else kept


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
    hint = "declare added columns in the stage's output_columns (rejected_columns) with their pyarrow types"
    columns = stage.columns()
    declared = {**columns.rejected, **columns.output}
    table = declared_columns(f"stage '{sid}'", table, set(before.column_names), declared, hint)
    if reasons is not None:
        if not pa.types.is_string(reasons.type):
            reasons = reasons.cast(pa.string())
        check_reasons(sid, reasons)
    return StageResult(table, reasons)
