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
# (bytes, no words). Words are a cheap proxy: the runs of non-whitespace in the text, whitespace as Python's
# str.split() has it (ASCII and Unicode), counted with numpy on the UTF-8 bytes in one pass per batch (1.8x faster
# than pyarrow's utf8_split_whitespace, which builds every word); the word filters' own spaCy-style tokens differ.

_ASCII_SPACE = np.zeros(256, bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# The UTF-8 bytes of the other characters str.split() splits on (U+0085, U+00A0, U+1680, U+2000-U+200A, ...).
_UNICODE_SPACES = [c.encode() for c in map(chr, range(0x80, 0x3001)) if c.isspace()]


def word_counts(text: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Whitespace-delimited words of each string (0 for null), as len(s.split()) counts them."""
    out = []
    for chunk in text.chunks if isinstance(text, pa.ChunkedArray) else [text]:
        n = len(chunk)
        if n == 0:
            continue
        width = 8 if pa.types.is_large_string(chunk.type) else 4
        bufs = chunk.buffers()
        offsets = np.frombuffer(bufs[1], np.int64 if width == 8 else np.int32, n + 1, offset=chunk.offset * width)
        lo, hi = int(offsets[0]), int(offsets[-1])
        words = np.zeros(n, np.int64)
        if hi > lo:
            data = np.frombuffer(bufs[2], np.uint8, hi - lo, offset=lo)
            space = _ASCII_SPACE[data]
            lead = np.flatnonzero(data >= 0xC2)  # first bytes of multi-byte characters, few in most text
            if len(lead):
                for seq in _UNICODE_SPACES:
                    at = lead[(data[lead] == seq[0]) & (lead + len(seq) <= len(data))]
                    for j in range(1, len(seq)):
                        at = at[data[at + j] == seq[j]]
                    for j in range(len(seq)):
                        space[at + j] = True
            starts = ~space  # a word starts at a non-space byte after a space, or at the start of a string
            starts[1:] &= space[:-1]
            rel = offsets.astype(np.int64) - lo
            first = rel[:-1][rel[:-1] < rel[1:]]
            starts[first] = ~space[first]
            pos = np.flatnonzero(starts)
            words = np.searchsorted(pos, rel[1:]) - np.searchsorted(pos, rel[:-1])
        if chunk.null_count:
            words[np.asarray(chunk.is_null().to_numpy(zero_copy_only=False))] = 0
        out.append(words.astype(np.int64))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def doc_sizes(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(words, bytes) of every row of `table` as int64 arrays (see above)."""
    n = table.num_rows
    words = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    text = table.column(TEXT) if TEXT in table.column_names else None
    if text is not None and n and text.null_count < n:
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            text = pc.cast(text, pa.string())
        words = word_counts(text)
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
    `layout` is {stage: (kind, phase)}; `written` the sizes each phase wrote as kept; rejections come from the
    writer. Row stages measure their own in, kept and out. A global stage's input is what the phase before it wrote
    (for one that opens the run: what it rejected and handed on, global stages keep text as it is), its kept ones are
    its input less its rejections, its output what the next stage of its phase got (or what the phase wrote). The
    input's kept ones are what the first stage got (or what the run wrote). Returns whether sizes are conserved:
    in = kept + rejected for every row stage, each stage's output is the next one's input, and the last stage's
    output is what the run wrote."""
    ok = True
    ids = [e["id"] for e in entries]
    for unit in ("words", "bytes"):

        def rejected(sid: str, unit: str = unit) -> int:
            return sum(figures.get(sid, {}).get(f"{unit}_rejected", {}).values())

        def measured(sid: str, key: str, unit: str = unit) -> int:
            return int(figures.get(sid, {}).get(f"{unit}_{key}", 0))

        sizes: dict[str, tuple[int, int, int]] = {}  # stage -> (in, kept, out)
        for i, sid in enumerate(ids):
            if sid == INPUT_STAGE:
                continue
            kind, phase = layout.get(sid, ("row", 0))
            if kind == "row":
                sizes[sid] = (measured(sid, "in"), measured(sid, "kept"), measured(sid, "out"))
                ok &= sizes[sid][0] == sizes[sid][1] + rejected(sid)
                continue
            nxt = ids[i + 1] if i + 1 < len(ids) else None
            same_phase = nxt is not None and layout.get(nxt) == ("row", phase)
            n_out = measured(nxt, "in") if nxt is not None and same_phase else int(written[phase].get(unit, 0))
            if phase > 0:
                n_in = int(written[phase - 1].get(unit, 0))
                sizes[sid] = (n_in, n_in - rejected(sid), n_out)
            else:
                sizes[sid] = (n_out + rejected(sid), n_out, n_out)
        first = ids[1] if len(ids) > 1 else None
        kept = sizes[first][0] if first is not None else int(written[0].get(unit, 0))
        sizes[INPUT_STAGE] = (kept + rejected(INPUT_STAGE), kept, kept)
        prev: int | None = None
        for e in entries:
            n_in, n_kept, n_out = sizes[e["id"]]
            ok &= prev is None or prev == n_in
            prev = n_out
            rej = figures.get(e["id"], {}).get(f"{unit}_rejected", {})
            order = list(e.get("reasons", {}))
            e[f"{unit}_in"], e[f"{unit}_kept"], e[f"{unit}_out"] = n_in, n_kept, n_out
            e[f"{unit}_rejected"] = {r: rej.get(r, 0) for r in order + sorted(set(rej) - set(order))}
        ok &= prev is None or prev == written[-1].get(unit, 0)
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
