"""stats.json: every figure of a run, built from its commit records, and the conservation checks.

Documents come from the rows each commit wrote (kept, and rejected by stage and reason); seconds, counters, words,
bytes and tokens from the figures that rode with those rows (curate.output.figures), so every figure is exact under
retries. Tokens are counted only when the pipeline names a tokenizer (output.tokenizer).
"""

from __future__ import annotations

import logging
from typing import Any

from curate.config import Pipeline
from curate.errors import ConservationError
from curate.output.figures import UNITS, Figures, Sizes, StageFigures
from curate.output.state import RunState
from curate.schema import INPUT_STAGE

log = logging.getLogger("curate.engine")

BUG_HINT = "this is a bug in curate or in a stage; please report it with the pipeline file"


def build_stats(
    pipeline: Pipeline,
    layout: dict[str, tuple[str, int]],
    phases: list[int],
    state: RunState,
    seconds: float,
    runner: str,
    attempt: int,
) -> dict[str, Any]:
    """stats.json from the committed bundles of every phase and attempt. `layout` is {stage: (kind, phase)} with
    kind "row" or "global"; `phases` the run's phase indexes. Raises ConservationError when the documents read are
    not exactly the documents written (kept + rejected), in total or in any phase."""
    counts = _phase_counts(phases, state)
    figures = counts.figures
    for sid, record in state.global_records().items():
        figures.stage(sid).add(record)
    figures.stage(INPUT_STAGE).counters = _input_counters(state)
    figures.stage(INPUT_STAGE).seconds = 0.0
    input_docs, output_docs = counts.docs_in[0], counts.kept[-1]
    rejected_total = sum(sum(v.values()) for v in counts.rejected.values())
    entries = _stage_entries(pipeline, input_docs, counts.rejected, figures)
    unknown = set(counts.rejected) - {e["id"] for e in entries}
    if unknown or input_docs != output_docs + rejected_total:
        raise ConservationError(
            f"conservation broken: read {input_docs} documents but wrote {output_docs} kept + {rejected_total} "
            "rejected" + (f" (rejections from unknown stages {sorted(unknown)})" if unknown else ""),
            hint=BUG_HINT,
        )
    units = UNITS if pipeline.output.tokenizer else tuple(u for u in UNITS if u != "tokens")
    sizes_conserved = add_sizes(entries, figures, layout, counts.written, units)
    if not sizes_conserved:
        log.warning("size figures in stats.json do not add up (stage in = kept + rejected)")
    errors = {
        sid: n
        for sid, reasons in counts.rejected.items()
        if (n := sum(v for r, v in reasons.items() if r.startswith("stage_error:")))
    }
    return {
        "pipeline": pipeline.name,
        "runner": runner,
        "input_docs": input_docs,
        "output_docs": output_docs,
        # extra rows of kept documents written more than once (repeat, mix): OUT/data holds output_docs + copies
        "copies": sum(c["counts"].get("copies", 0) for c in state.commits(phases[-1])),
        "rejected_docs": rejected_total,
        "conserved": True,
        "input_units": len(state.units(0)),
        "attempts": attempt,
        "stage_errors": errors,
        "seconds": round(seconds, 3),
        "input_words": entries[0]["words_in"],
        "input_bytes": entries[0]["bytes_in"],
        "output_words": counts.written[-1].words,
        "output_bytes": counts.written[-1].bytes,
        **(_token_totals(pipeline.output.tokenizer, entries, counts) if "tokens" in units else {}),
        "sizes_conserved": sizes_conserved,
        "stages": entries,
    }


def _token_totals(tokenizer: str, entries: list[dict[str, Any]], counts: _Counts) -> dict[str, Any]:
    """The run's token figures: in, kept (each kept document once), and written: what OUT/data holds, the extra
    copies of documents kept more than once (repeat, mix) included, which is what `curate tokenize` packs (its
    special tokens aside)."""
    written = counts.written[-1].tokens
    return {
        "tokenizer": tokenizer,
        "input_tokens": entries[0]["tokens_in"],
        "output_tokens": written,
        "written_tokens": written + counts.copies.tokens,
    }


def _input_counters(state: RunState) -> dict[str, int]:
    """The reader's counters of every finished unit of the input."""
    out: dict[str, int] = {}
    for counters in state.unit_counters(0):
        for k, v in counters.items():
            out[k] = out.get(k, 0) + v
    return out


class _Counts:
    """What the commits of every phase add up to."""

    def __init__(self) -> None:
        self.rejected: dict[str, dict[str, int]] = {}  # documents by stage and reason
        self.figures = Figures()
        self.docs_in: list[int] = []  # per phase
        self.kept: list[int] = []  # per phase
        self.written: list[Sizes] = []  # per phase: the sizes it wrote as kept
        self.copies = Sizes()  # the sizes of the extra copies the last phase wrote (repeat, mix)


def _phase_counts(phases: list[int], state: RunState) -> _Counts:
    """Rejections by stage and reason, stage figures, documents in and kept per phase, and the sizes each phase
    wrote as kept, from the commits; checks conservation within each phase and between phases."""
    counts = _Counts()
    for phase in phases:
        commits = state.commits(phase)
        docs_in = sum(state.units(phase).values())
        kept = sum(c["counts"]["kept"] for c in commits)
        out = kept
        wrote = Figures()  # a phase with no commits (nothing reached it) wrote nothing
        for c in commits:
            wrote.add(Figures.from_dict(c.get("figures", {})))
            for stage, reasons in c["counts"]["rejected"].items():
                bucket = counts.rejected.setdefault(stage, {})
                for reason, n in reasons.items():
                    bucket[reason] = bucket.get(reason, 0) + n
                    out += n
        if docs_in != out:
            raise ConservationError(
                f"conservation broken in phase {phase}: read {docs_in} documents but wrote {out} "
                f"({kept} kept, {out - kept} rejected)",
                hint=BUG_HINT,
            )
        if counts.kept and docs_in != counts.kept[-1]:
            raise ConservationError(
                f"conservation broken between phases: phase {phase - 1} handed on {counts.kept[-1]} "
                f"documents, phase {phase} read {docs_in}"
            )
        counts.figures.add(Figures(wrote.stages))
        counts.docs_in.append(docs_in)
        counts.kept.append(kept)
        counts.written.append(wrote.written)
        counts.copies = wrote.copies  # only the last phase writes OUT/data, and copies
    return counts


def _stage_entries(
    pipeline: Pipeline, input_docs: int, rejected: dict[str, dict[str, int]], figures: Figures
) -> list[dict[str, Any]]:
    """One stats entry per stage (the input pseudo-stage first): documents in, kept, rejected by reason, figures."""
    entries = []
    docs = input_docs
    for sid, uses in [(INPUT_STAGE, pipeline.input.format)] + [(s.id, s.uses) for s in pipeline.stages]:
        rej = rejected.get(sid, {})
        n_rej = sum(rej.values())
        fig = figures.stages.get(sid) or StageFigures()
        entry: dict[str, Any] = {
            "id": sid,
            "uses": uses,
            "docs_in": docs,
            "kept": docs - n_rej,
            "rejected": n_rej,
            "reasons": dict(sorted(rej.items(), key=lambda kv: -kv[1])),
            "seconds": round(fig.seconds, 3),
            "ms_per_doc": round(1000 * fig.seconds / docs, 4) if docs else 0.0,
        }
        if fig.counters:
            entry["counters"] = dict(sorted(fig.counters.items()))
        if fig.failures:  # poison records (engine/isolate.py), each with what happened
            entry["isolated"] = sorted(fig.failures, key=lambda f: str(f.get("id")))
        entries.append(entry)
        docs -= n_rej
    return entries


def add_sizes(
    entries: list[dict[str, Any]],
    figures: Figures,
    layout: dict[str, tuple[str, int]],
    written: list[Sizes],
    units: tuple[str, ...] = ("words", "bytes"),
) -> bool:
    """Add sizes (`units`: words, bytes and, with a pipeline tokenizer, tokens) in, kept, out and rejected by reason
    to stats.json's stage entries (the input first).
    `written` holds the sizes each phase wrote as kept; rejections come from the writer. Row stages measure their
    own in, kept and out. A global stage's input is measured as the documents reach it, its kept ones are its
    input less its rejections, its output what the next stage of its phase got (or what the phase wrote). The
    input's kept ones are what the first stage got (or what the run wrote). Returns whether sizes are conserved:
    in = kept + rejected for every row stage, each stage's output is the next one's input, and the last stage's
    output is what the run wrote."""
    ok = True
    for unit in units:
        flows = _flows(entries, figures, layout, written, unit)
        prev: int | None = None
        for e in entries:
            sid = e["id"]
            n_in, n_kept, n_out = flows[sid]
            kind = layout.get(sid, ("row", 0))[0]
            rej = figures.stages[sid].flow(unit).rejected if sid in figures.stages else {}
            ok &= sid == INPUT_STAGE or kind != "row" or n_in == n_kept + sum(rej.values())
            ok &= prev is None or prev == n_in
            prev = n_out
            order = list(e.get("reasons", {}))
            e[f"{unit}_in"], e[f"{unit}_kept"], e[f"{unit}_out"] = n_in, n_kept, n_out
            e[f"{unit}_rejected"] = {r: rej.get(r, 0) for r in order + sorted(set(rej) - set(order))}
        ok &= prev is None or prev == written[-1].get(unit)
    return bool(ok)


def _flows(
    entries: list[dict[str, Any]], figures: Figures, layout: dict[str, tuple[str, int]], written: list[Sizes], unit: str
) -> dict[str, tuple[int, int, int]]:
    """(in, kept, out) of every stage in one size unit (see add_sizes)."""

    def flow(sid: str) -> Any:
        return (figures.stages.get(sid) or StageFigures()).flow(unit)

    ids = [e["id"] for e in entries]
    sizes: dict[str, tuple[int, int, int]] = {}
    for i, sid in enumerate(ids):
        if sid == INPUT_STAGE:
            continue
        kind, phase = layout.get(sid, ("row", 0))
        if kind == "row":
            f = flow(sid)
            sizes[sid] = (f.into, f.kept, f.out)
            continue
        nxt = ids[i + 1] if i + 1 < len(ids) else None
        same_phase = nxt is not None and layout.get(nxt) == ("row", phase)
        n_out = flow(nxt).into if nxt is not None and same_phase else written[phase].get(unit)
        n_in = flow(sid).into  # measured as the documents reached it (engine.globals.InputSizes)
        sizes[sid] = (n_in, n_in - flow(sid).rejected_total, n_out)
    first = ids[1] if len(ids) > 1 else None
    kept = sizes[first][0] if first is not None else written[0].get(unit)
    sizes[INPUT_STAGE] = (kept + flow(INPUT_STAGE).rejected_total, kept, kept)
    return sizes
