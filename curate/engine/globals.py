"""What both runners share to run global stages: only live documents reach a stage's functions, the `reason`
column a stage returns becomes the engine's rejection, a join by id that keeps the documents' order, and the writer
of side tables (files committed with the run)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import inflight
from curate.engine.isolate import Isolated, Limits, Sandbox, guarded
from curate.engine.segment import declared_columns, setup_stage
from curate.errors import StageError
from curate.output.figures import UNITS, Figures
from curate.output.measure import attach_figures, doc_sizes
from curate.output.sink import SideWriter
from curate.schema import FIGURES, ID, REASON, RESERVED, STAGE, UNIT, split_live
from curate.stage import Stage, check_reasons


def live_only(
    fn: Callable[[pa.Table], pa.Table], reporter: Any, sid: str, limits: Limits | None = None
) -> Callable[[pa.Table], pa.Table]:
    """Apply fn to the live rows of a batch; rows rejected earlier pass through untouched. With `limits`, fn runs
    in an isolated child (engine/isolate.py) and a row that crashes, hangs or exhausts it is rejected alone."""

    token = uuid.uuid4().hex

    def wrapped(batch: pa.Table) -> pa.Table:
        split = split_live(batch)
        if split.body.num_rows == 0:
            return _drop_temporary(batch)
        t0 = time.perf_counter()
        parts, isolated = guarded_call(fn, split.body, limits, sid, token)
        rows = [r for rs, _ in parts for r in rs]
        out = concat([t for _, t in parts]) if len(parts) != 1 else parts[0][1]
        if out.num_rows != len(rows):
            raise StageError(f"global stage '{sid}' returned {out.num_rows} rows for {len(rows)}")
        meta = split.meta
        if isolated or rows != list(range(split.body.num_rows)):
            order = np.argsort(np.asarray(rows, np.int64), kind="stable")
            out = out.take(pa.array(order))
            meta = meta.take(pa.array(np.asarray(rows, np.int64)[order]))
        figures = Figures()
        figures.stage(sid).seconds = time.perf_counter() - t0
        reporter.add(figures)
        dead = [] if split.dead is None else [_drop_temporary(split.dead)]
        if isolated:
            whole = split._replace(dead=None).join(split.body)  # the live rows with their engine columns
            failed = whole.take(pa.array([iso.row for iso in isolated]))
            records = {_id(failed, i): _record(failed, i, iso) for i, iso in enumerate(isolated)}
            dead.append(reject_isolated(failed, records, sid))
        return split._replace(dead=concat(dead) if dead else None).join(out, meta)

    return wrapped


def guarded_call(
    fn: Callable[[pa.Table], pa.Table], body: pa.Table, limits: Limits | None, sid: str, token: str = ""
) -> tuple[list[tuple[list[int], pa.Table]], list[Isolated]]:
    """fn over `body`, in an isolated child under `limits` (in this process when None): [(rows, fn(those rows))]
    for the parts that ran, and the rows isolated. `token` names fn's child in this process (one per function
    of a stage, forked on first use and kept warm)."""
    if limits is None or body.num_rows == 0:
        return [(list(range(body.num_rows)), fn(body))], []
    box = _sandbox(token, fn)

    def run(rows: list[int]) -> tuple[Any, Any]:
        return box.call((body if len(rows) == body.num_rows else body.take(rows), rows), limits, len(rows))

    return guarded(run, body.num_rows, f"global stage '{sid}'")


_BOXES: dict[str, Sandbox] = {}  # this process's children of global stages' functions, by token


def _sandbox(token: str, fn: Callable[[pa.Table], pa.Table]) -> Sandbox:
    box = _BOXES.get(token) if token else None
    if box is None:

        def target(sub: pa.Table, rows: list[int]) -> tuple[list[int], pa.Table]:
            inflight.stage(0, rows)
            return rows, fn(sub)

        box = Sandbox(target)
        if token:
            while len(_BOXES) >= 8:  # the oldest stage's functions are done by now: their children go
                _BOXES.pop(next(iter(_BOXES))).close()
            _BOXES[token] = box
    return box


def _id(table: pa.Table, i: int) -> str:
    return str(table.column(ID)[i].as_py()) if ID in table.column_names else "?"


def _record(table: pa.Table, i: int, iso: Isolated) -> dict[str, str]:
    """The isolated row i of `table` as the ledger and stats.json hold it: {"id", "reason", "detail"}."""
    return {"id": _id(table, i), "reason": iso.failure.reason, "detail": iso.failure.detail}


def reject_isolated(rows: pa.Table, failures: dict[str, dict[str, str]], sid: str) -> pa.Table:
    """`rows` (with the engine's columns) rejected by global stage `sid` as the poison records they are: reason
    and stage set, the failure in the figures each row carries (a line logged for each)."""
    from curate.engine.segment import isolation_log

    reasons, details = [], []
    for i in range(rows.num_rows):
        failure = failures[_id(rows, i)]
        reason, detail = failure["reason"], failure["detail"]
        reasons.append(reason)
        details.append(detail)
        isolation_log.warning("global stage '%s': document %s isolated as %s (%s)", sid, _id(rows, i), reason, detail)
    figures = []
    for i, (reason, detail) in enumerate(zip(reasons, details)):
        have = rows.column(FIGURES)[i].as_py()
        fig = Figures.from_json(have) if have else Figures()
        fig.stage(sid).failures.append({"id": _id(rows, i), "reason": reason, "detail": detail})
        figures.append(fig.to_json())
    for name, values in ((REASON, reasons), (STAGE, [sid] * rows.num_rows), (FIGURES, figures)):
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, pa.string()))
    return rows


def derived_isolated(fn: Callable[[pa.Table], pa.Table], ctx: GlobalContext) -> Callable[[pa.Table], pa.Table]:
    """A global stage's derive() function over live documents, isolated under the context's limits: the rows that
    crash, hang or exhaust it are left out of the derived table and reported to the ledger, and the stage's
    finishing step rejects them (run_global)."""
    if ctx.limits is None:
        return fn
    token = uuid.uuid4().hex

    def run(body: pa.Table) -> pa.Table:
        parts, isolated = guarded_call(fn, body, ctx.limits, ctx.sid, token)
        if isolated:
            records = [_record(body, iso.row, iso) for iso in isolated]
            ctx.reporter.isolate(ctx.sid, records)
        tables = [t for _, t in parts if t.num_columns]
        return concat(tables) if tables else pa.table({})

    return run


def _drop_temporary(batch: pa.Table) -> pa.Table:
    """Passed-through rows may carry a global stage's temporary columns (`__group_key__`...) as nulls from an
    earlier block merge; they never need them, and a stale one could clash in type with a new one."""
    temp = [c for c in batch.column_names if c.startswith("__") and c not in RESERVED]
    return batch.drop_columns(temp) if temp else batch


def finish_global(batch: pa.Table, stage: Stage, sid: str, input_names: frozenset[str]) -> pa.Table:
    """Turn a global stage's `reason` column into rejections; check that it added only declared columns (its
    output_columns and rejected_columns) and cast them to their declared types."""
    columns = stage.columns()
    declared = {**columns.output, **columns.rejected}
    # the stage's input, its `reason`, and the engine's own columns (`__reason__`, a stage's `__group_key__`)
    known = set(input_names) | {"reason"} | {c for c in batch.column_names if c.startswith("__")}
    hint = "declare them in the stage's output_columns (kept rows) or rejected_columns (rejected rows)"
    batch = declared_columns(f"global stage '{sid}'", batch, known, declared, hint)
    if "reason" in batch.column_names:
        why = batch.column("reason")
        if why.null_count != batch.num_rows:
            check_reasons(sid, why)
            new = pc.and_(pc.is_valid(why), pc.is_null(batch.column(REASON)))
            reason = pc.if_else(new, why, batch.column(REASON))
            stage_col = pc.if_else(new, pa.scalar(sid, pa.string()), batch.column(STAGE))
            batch = batch.set_column(batch.schema.get_field_index(REASON), REASON, reason)
            batch = batch.set_column(batch.schema.get_field_index(STAGE), STAGE, stage_col)
        batch = batch.drop_columns(["reason"])
    return _drop_temporary(batch)


def join_by(docs: pa.Table, right: pa.Table, on: str, sid: str) -> pa.Table:
    """Left join of `right`'s columns onto `docs` by `on`, keeping docs' rows and order (nulls where no match)."""
    cols = [c for c in right.column_names if c != on]
    clash = [c for c in cols if c in docs.column_names and not c.startswith("__")]
    if clash:
        raise StageError(f"global stage '{sid}': joined column(s) {', '.join(clash)} already exist on the documents")
    if right.num_rows and pc.count_distinct(right.column(on)).as_py() != right.num_rows:
        raise StageError(f"global stage '{sid}' joined a table with more than one row per '{on}'")
    key = docs.column(on)
    if right.column(on).type != key.type:
        right = right.set_column(right.schema.get_field_index(on), on, right.column(on).cast(key.type))
    idx = pc.index_in(key, value_set=right.column(on))
    for c in cols:
        docs = docs.append_column(right.schema.field(c), right.column(c).take(idx))
    return docs


def null_spread_key(batch: pa.Table, key: str) -> pa.Array:
    """The shuffle key for partition_by: the key itself, or for documents whose key is null (or that an earlier
    stage rejected) their own id, so that they spread evenly instead of piling onto one partition."""
    keys = pc.cast(batch.column(key), pa.string()) if key in batch.column_names else pa.nulls(batch.num_rows)
    own = pc.binary_join_element_wise("~", batch.column(ID), "")
    dead = pc.is_valid(batch.column(REASON)) if REASON in batch.column_names else pa.nulls(batch.num_rows, pa.bool_())
    use_own = pc.or_kleene(pc.is_null(keys), pc.fill_null(dead, False))
    return pc.if_else(use_own, own, keys)


def drop_null_keys(table: pa.Table, keys: list[str]) -> pa.Table:
    """Rows whose group key is null belong to no group (Table.group_by)."""
    mask = None
    for k in keys:
        valid = pc.is_valid(table.column(k))
        mask = valid if mask is None else pc.and_(mask, valid)
    return table if mask is None or pc.all(mask).as_py() else table.filter(mask)


def concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


class GlobalContext:
    """What a runner's Docs handle needs to know about the global stage it serves."""

    def __init__(
        self, spec: Any, reporter: Any, writer: Any, limits: Limits | None = None, batch_rows: int = 1000
    ) -> None:
        self.spec = spec
        # at most this many documents per call of a derive() function (engine.batch_rows): what a call holds while
        # it builds its rows (a document's n-grams, windows, words) is bounded by it, not by Ray's block size
        self.batch_rows = batch_rows
        self.limits = limits  # isolation of the stage's per-batch work (engine/isolate.py); None: in the worker
        self.sid: str = spec.id
        self.reporter = reporter
        self.writer = writer  # the phase's ShardWriter: output, run state, phase, stage schemas
        schema = writer.stage_schemas.get(self.sid)
        self.input_names = frozenset(schema.names if schema is not None else ())
        self._joins = 0

    @property
    def state(self) -> Any:
        return self.writer.state

    def side_writer(self, name: str, path: str | None) -> SideWriter:
        return SideWriter(self.state, self.writer.output, self.writer.phase, self.sid, name, path)

    def scratch(self) -> str:
        """A fresh folder under the phase's checkpoint for intermediate files (removed when the run finishes)."""
        self._joins += 1
        return f"{self.state.checkpoint_dir(self.writer.phase)}/{self.sid}-join-{self._joins}"


def run_global(ctx: GlobalContext, docs: Any) -> tuple[Any, Stage]:
    """Build and set up the stage, let it transform the documents, and finish its rows (reasons, columns)."""
    stage = ctx.spec.build()
    setup_stage(ctx.sid, stage)
    docs = docs.all_batches(InputSizes(ctx.sid, ctx.writer.output.tokenizer))
    out = stage.apply_global(reject_later_copies(docs, ctx.sid))  # type: ignore[attr-defined]
    # Documents its derive() functions isolated as poison (they ran by now: a stage collects, materializes or
    # joins what it derives before it decides) are rejected with its own decisions.
    poison = ctx.reporter.isolated(ctx.sid) if ctx.limits is not None else {}

    def finish(t: pa.Table) -> pa.Table:
        if poison:
            t = _reject_poison(t, poison, ctx.sid)
        return finish_global(t, stage, ctx.sid, ctx.input_names)

    return out.all_batches(finish), stage


class InputSizes:
    """Sizes (words, bytes, tokens) of the live documents as they reach a global stage: its `into` figures, riding on
    the batch like a row stage's. A stage that rewrites text (line, substring and paragraph dedup) hands on less than
    it got, so its input cannot be inferred from its output."""

    def __init__(self, sid: str, tokenizer: str | None) -> None:
        self.sid = sid
        self.tokenizer = tokenizer

    def __call__(self, batch: pa.Table) -> pa.Table:
        split = split_live(batch)
        if split.body.num_rows == 0:
            return batch
        figures = Figures()
        fig = figures.stage(self.sid)
        for unit, per_doc in zip(UNITS, doc_sizes(split.body, self.tokenizer)):
            fig.flow(unit).into = int(per_doc.sum())
        return attach_figures(batch, figures)


def _reject_poison(batch: pa.Table, poison: dict[str, dict[str, str]], sid: str) -> pa.Table:
    hit = pc.and_(
        pc.fill_null(pc.is_in(batch.column(ID), value_set=pa.array(list(poison))), False),
        pc.is_null(batch.column(REASON)),
    )
    if not pc.any(hit).as_py():
        return batch
    rows = reject_isolated(batch.filter(hit), poison, sid)
    rest = batch.filter(pc.invert(hit))
    return concat([rest, rows])


def reject_later_copies(docs: Any, sid: str) -> Any:
    """Global stages name documents by id, so an id must be unique: a copy of an id from a later read unit (in
    unit-key order, the same on every runner) is rejected as duplicate_id before the stage sees the documents.
    Copies within one unit were already rejected while reading. Costs one shuffle of (id, unit) pairs; the pairs
    of duplicated ids, normally none, come to the driver."""

    def later(t: pa.Table) -> pa.Table:
        g = t.group_by(ID).aggregate([(UNIT, "min"), (UNIT, "count")])
        g = g.filter(pc.greater(g.column(f"{UNIT}_count"), 1))
        if g.num_rows == 0:
            return pa.table({})
        rows = join_by(t.filter(pc.is_in(t.column(ID), value_set=g.column(ID))), g.select([ID, f"{UNIT}_min"]), ID, sid)
        return rows.filter(pc.not_equal(rows.column(UNIT), rows.column(f"{UNIT}_min"))).select([ID, UNIT])

    bad = docs.derive_units(lambda b: b.select([ID, UNIT])).group_by(ID, later).collect()
    if bad.num_rows == 0:
        return docs
    keys = pa.array(pc.binary_join_element_wise(bad.column(UNIT), bad.column(ID), "\x00"), pa.string())

    def mark(batch: pa.Table) -> pa.Table:
        mine = pc.binary_join_element_wise(batch.column(UNIT), batch.column(ID), "\x00")
        hit = pc.and_(pc.fill_null(pc.is_in(mine, value_set=keys), False), pc.is_null(batch.column(REASON)))
        if not pc.any(hit).as_py():
            return batch
        for name, value in ((REASON, "duplicate_id"), (STAGE, sid)):
            col = pc.if_else(hit, pa.scalar(value, pa.string()), batch.column(name))
            batch = batch.set_column(batch.schema.get_field_index(name), name, col)
        return batch

    return docs.all_batches(mark)
