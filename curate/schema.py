"""Column names and types shared by the engine, readers and writers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Core columns every document has.
ID, TEXT, URL, SOURCE = "id", "text", "url", "source"
CORE_SCHEMA = pa.schema([(ID, pa.string()), (TEXT, pa.string()), (URL, pa.string()), (SOURCE, pa.string())])

# Engine-owned columns that travel with rejected rows between stages; never part of a stage's input.
REASON = "__reason__"
STAGE = "__stage__"
UNIT = "__unit__"  # the read unit a document came from: what resume and per-unit accounting key on
# Per-batch stage figures (seconds, counters) as JSON on one row of the batch: they travel with the rows to the
# writer and are counted from its commit record, so a retried task's figures count exactly once, like its rows.
STATS = "__stats__"
RESERVED = (REASON, STAGE, UNIT, STATS)

# The name of the pseudo-stage for records rejected while reading (a corrupt record, a bad JSON line).
INPUT_STAGE = "input"
# The key, in a commit record's figures, of the sizes of the rows the bundle wrote as kept (a reserved stage id).
WRITTEN = "output"
HTML = "html"


def with_reserved(table: pa.Table) -> pa.Table:
    """Add the null reason/stage columns a reader's batch lacks."""
    for name in RESERVED:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def reject_rows(table: pa.Table, reason: str | list[str], stage: str = INPUT_STAGE) -> pa.Table:
    """Mark every row of `table` rejected (readers use this for records they could not decode)."""
    n = table.num_rows
    reasons = pa.array([reason] * n if isinstance(reason, str) else reason, pa.string())
    table = table.drop_columns([c for c in (REASON, STAGE) if c in table.column_names])
    return table.append_column(REASON, reasons).append_column(STAGE, pa.array([stage] * n, pa.string()))


def merge_figures(into: dict[str, dict[str, Any]], figures: dict[str, dict[str, Any]]) -> None:
    """Add per-stage figures ({stage: {"seconds": s, "counters": {name: n}, "words_in": n, ...}}) into `into`:
    numbers add up, nested mappings (counters, per-reason sizes) add up key by key, anything else is ignored."""
    for sid, f in figures.items():
        _add_into(into.setdefault(sid, {"seconds": 0.0, "counters": {}}), f)


def _add_into(mine: dict[str, Any], f: dict[str, Any]) -> None:
    for k, v in f.items():
        if isinstance(v, dict):
            _add_into(mine.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            mine[k] = mine.get(k, 0) + v


def attach_figures(table: pa.Table, figures: dict[str, dict[str, Any]]) -> pa.Table:
    """Carry `figures` on the first row of `table` (merged with what that row already carries)."""
    if not figures or table.num_rows == 0:
        return table
    col = table.column(STATS).combine_chunks()
    first = col[0].as_py()
    if first:
        merged: dict[str, dict[str, Any]] = json.loads(first)
        merge_figures(merged, figures)
        figures = merged
    head = pa.array([json.dumps(figures, separators=(",", ":"))], pa.string())
    return table.set_column(table.schema.get_field_index(STATS), STATS, pa.concat_arrays([head, col.slice(1)]))


def collect_figures(table: pa.Table) -> dict[str, dict[str, Any]]:
    """The sum of the figures every row of `table` carries, plus the sizes of its rows as the writer sees them:
    words and bytes of each stage's rejected rows by reason (as they entered that stage) and of the kept rows
    (under WRITTEN). Counted here, from the rows themselves, so every stage's rejections count once."""
    out: dict[str, dict[str, Any]] = {}
    if STATS in table.column_names and table.column(STATS).null_count != table.num_rows:
        for value in table.column(STATS).drop_null().to_pylist():
            merge_figures(out, json.loads(value))
    if table.num_rows:
        merge_figures(out, written_sizes(table))
    return out


# -- sizes: words and UTF-8 bytes --------------------------------------------------------------------------------
# A document's size is its text (words and UTF-8 bytes), or, before extraction (no text yet), its HTML payload
# (bytes, no words). Words are a cheap proxy: the whitespace-delimited runs of the text (Unicode whitespace, as
# Python's str.split()), counted by pyarrow in one vectorised pass; the word filters' own spaCy-style tokens differ.


def doc_sizes(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(words, bytes) of every row of `table` as int64 arrays (see above)."""
    n = table.num_rows
    words = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    text = table.column(TEXT) if TEXT in table.column_names else None
    if text is not None and n and text.null_count < n:
        trimmed = pc.utf8_trim_whitespace(text)
        lengths = pc.binary_length(trimmed)
        count = pc.list_value_length(pc.utf8_split_whitespace(trimmed))
        # "" splits into [""]: a text that is empty or all whitespace has no words
        count = pc.if_else(pc.equal(lengths, 0), 0, count)
        words = np.asarray(pc.fill_null(count, 0).to_numpy(zero_copy_only=False), np.int64)
        nbytes = np.asarray(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False), np.int64)
    if HTML in table.column_names and n:
        html = np.asarray(pc.fill_null(pc.binary_length(table.column(HTML)), 0).to_numpy(zero_copy_only=False))
        no_text = np.ones(n, bool) if text is None else np.asarray(text.is_null().to_numpy(zero_copy_only=False))
        nbytes = np.where(no_text, html.astype(np.int64), nbytes)
    return words, nbytes


def same_content(before: pa.Table, after: pa.Table) -> bool:
    """Whether `after` holds the very text and HTML buffers of `before` (a stage that only decided), so that sizes
    need not be counted again."""
    for name in (TEXT, HTML):
        a = before.column(name) if name in before.column_names else None
        b = after.column(name) if name in after.column_names else None
        if a is None and b is None:
            continue
        if a is None or b is None or a.num_chunks != b.num_chunks:
            return False
        for x, y in zip(a.chunks, b.chunks):
            if x.offset != y.offset or len(x) != len(y):
                return False
            bx, by = x.buffers(), y.buffers()
            if [v.address if v is not None else 0 for v in bx] != [v.address if v is not None else 0 for v in by]:
                return False
    return True


def stage_sizes(
    fig: dict[str, Any],
    sizes: tuple[np.ndarray, np.ndarray],
    before: pa.Table,
    after: pa.Table,
    keep: pa.Array | None,
    kept: pa.Table,
) -> tuple[np.ndarray, np.ndarray]:
    """Add one stage's sizes to its figures: in (the rows it got), kept (its kept rows as they entered) and out
    (its kept rows as it left them); returns the sizes of `kept`, the next stage's input."""
    words, nbytes = sizes
    mask = np.ones(len(words), bool) if keep is None else np.asarray(keep.to_numpy(zero_copy_only=False), bool)
    fig.update(
        words_in=int(words.sum()),
        bytes_in=int(nbytes.sum()),
        words_kept=int(words[mask].sum()),
        bytes_kept=int(nbytes[mask].sum()),
    )
    out = (words[mask], nbytes[mask]) if same_content(before, after) else doc_sizes(kept)
    fig.update(words_out=int(out[0].sum()), bytes_out=int(out[1].sum()))
    return out


def input_sizes(batch: pa.Table) -> dict[str, Any]:
    """The input pseudo-stage's sizes of a batch read: every document read, and those the reader did not reject."""
    words, nbytes = doc_sizes(batch)
    live = np.asarray(batch.column(REASON).is_null().to_numpy(zero_copy_only=False), bool)
    kept_w, kept_b = int(words[live].sum()), int(nbytes[live].sum())
    return {
        "words_in": int(words.sum()),
        "bytes_in": int(nbytes.sum()),
        "words_kept": kept_w,
        "bytes_kept": kept_b,
        "words_out": kept_w,
        "bytes_out": kept_b,
    }


def written_sizes(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Sizes of a bundle's rows: {stage: {"words_rejected": {reason: n}, "bytes_rejected": {reason: n}}} for its
    rejected rows and {WRITTEN: {"words": n, "bytes": n}} for its kept rows."""
    words, nbytes = doc_sizes(table)
    if REASON not in table.column_names or table.column(REASON).null_count == table.num_rows:
        return {WRITTEN: {"words": int(words.sum()), "bytes": int(nbytes.sum())}}
    rejected = np.asarray(table.column(REASON).is_valid().to_numpy(zero_copy_only=False), bool)
    out: dict[str, dict[str, Any]] = {
        WRITTEN: {"words": int(words[~rejected].sum()), "bytes": int(nbytes[~rejected].sum())}
    }
    rows = table.filter(pa.array(rejected))
    stages = pc.fill_null(rows.column(STAGE), "unknown") if STAGE in rows.column_names else None
    keys = rows.column(REASON) if stages is None else pc.binary_join_element_wise(stages, rows.column(REASON), "\x00")
    enc = pc.dictionary_encode(keys).combine_chunks()
    idx = np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)
    groups = enc.dictionary.to_pylist()
    by_words = np.zeros(len(groups), np.int64)
    by_bytes = np.zeros(len(groups), np.int64)
    np.add.at(by_words, idx, words[rejected])  # integer sums (bincount's weights would go through float64)
    np.add.at(by_bytes, idx, nbytes[rejected])
    for g, w, b in zip(groups, by_words, by_bytes):
        stage, reason = g.split("\x00", 1) if stages is not None else ("unknown", g)
        mine = out.setdefault(stage, {"words_rejected": {}, "bytes_rejected": {}})
        mine["words_rejected"][reason] = mine["words_rejected"].get(reason, 0) + int(w)
        mine["bytes_rejected"][reason] = mine["bytes_rejected"].get(reason, 0) + int(b)
    return out


def add_sizes(
    entries: list[dict[str, Any]],
    figures: dict[str, dict[str, Any]],
    layout: dict[str, tuple[str, int]],
    written: list[dict[str, Any]],
) -> bool:
    """Add words and bytes in, kept, out and rejected by reason to stats.json's stage entries (the input first).
    `layout` is {stage: (kind, phase)}; `written` the sizes each phase wrote as kept. Row stages measure their own
    figures; the input's kept ones are what the first stage got; a global stage's input is what the phase before it
    wrote, its kept ones are its input less its rejections, and its output is what the next stage of its phase got
    (or what the phase wrote).
    Returns whether sizes are conserved: in = kept + rejected for every measuring stage, each stage's output is
    the next one's input, and the last stage's output is what the run wrote."""
    ok = True
    for unit in ("words", "bytes"):
        prev_out: int | None = None
        for i, e in enumerate(entries):
            fig = figures.get(e["id"], {})
            rej: dict[str, int] = fig.get(f"{unit}_rejected", {})
            kind, phase = layout.get(e["id"], ("row", 0))
            if e["id"] == INPUT_STAGE and (len(entries) == 1 or layout.get(entries[1]["id"]) == ("row", 0)):
                # what the input handed on is what the first stage got (or what the run wrote): counted per
                # segment batch, which a resumed run never counts twice, unlike a read batch split between bundles
                first = entries[1]["id"] if len(entries) > 1 else None
                n_kept = figures.get(first, {}).get(f"{unit}_in", 0) if first else written[0].get(unit, 0)
                n_in, n_out = n_kept + sum(rej.values()), n_kept
            elif kind == "row":  # row stages (and an input followed by a global stage) measure their own figures
                n_in, n_kept, n_out = (fig.get(f"{unit}_{k}", 0) for k in ("in", "kept", "out"))
                ok &= n_in == n_kept + sum(rej.values())
                ok &= prev_out is None or prev_out == n_in
            else:
                n_in = written[phase - 1].get(unit, 0) if phase > 0 else (prev_out or 0)
                ok &= prev_out is None or prev_out == n_in
                n_kept = n_in - sum(rej.values())
                nxt = entries[i + 1]["id"] if i + 1 < len(entries) else None
                same_phase = nxt is not None and layout.get(nxt, ("", -1)) == ("row", phase)
                n_out = figures.get(nxt, {}).get(f"{unit}_in", 0) if same_phase else written[phase].get(unit, 0)
            order = list(e.get("reasons", {}))
            e[f"{unit}_in"], e[f"{unit}_kept"], e[f"{unit}_out"] = n_in, n_kept, n_out
            e[f"{unit}_rejected"] = {r: rej.get(r, 0) for r in order + sorted(set(rej) - set(order))}
            prev_out = n_out
        ok &= prev_out is None or prev_out == written[-1].get(unit, 0)
    return bool(ok)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns in its order: missing ones null, extra ones dropped, cast."""
    cols = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            cols.append(col)
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=schema)
