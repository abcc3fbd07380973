"""Measuring a batch: the words, bytes and tokens of its documents, and the figures it carries to the writer.

A document's size is its text (words, UTF-8 bytes and, when the pipeline names a tokenizer (`output.tokenizer`),
tokens), or, before extraction (no text yet), its HTML payload (bytes; no words, no tokens). Tokens are the length
of the tokenizer's encoding of the text without special tokens, as `curate tokenize` writes it before each
document's EOS, so that stats.json's tokens are the tokenized output's, document for document. Words are a cheap
proxy: the runs of non-whitespace in the text, whitespace as Python's str.split() has it (ASCII and Unicode),
counted with numpy on the UTF-8 bytes in one pass per batch (1.8x faster than pyarrow's utf8_split_whitespace,
which builds every word); the word filters' own spaCy-style tokens differ.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.output.figures import UNITS, Figures, Sizes, StageFigures
from curate.schema import COPIES, FIGURES, HTML, REASON, STAGE, TEXT

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


Sized = tuple[np.ndarray, np.ndarray, np.ndarray]  # words, bytes, tokens per row


def doc_sizes(table: pa.Table, tokenizer: str | None = None) -> Sized:
    """(words, bytes, tokens) of every row of `table` as int64 arrays (see above); tokens are 0 without
    `tokenizer` (a local tokenizer.json)."""
    n = table.num_rows
    words = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    tokens = np.zeros(n, np.int64)
    text = table.column(TEXT) if TEXT in table.column_names else None
    if text is not None and n and text.null_count < n:
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            text = pc.cast(text, pa.string())
        words = word_counts(text)
        nbytes = np.asarray(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False), np.int64)
        if tokenizer is not None:
            from curate.train.tokenizer import count_tokens

            tokens = count_tokens([t or "" for t in text.to_pylist()], tokenizer)
    if HTML in table.column_names and n:
        html = np.asarray(pc.fill_null(pc.binary_length(table.column(HTML)), 0).to_numpy(zero_copy_only=False))
        no_text = np.ones(n, bool) if text is None else np.asarray(text.is_null().to_numpy(zero_copy_only=False))
        nbytes = np.where(no_text, html.astype(np.int64), nbytes)
    return words, nbytes, tokens


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
    fig: StageFigures,
    sizes: Sized,
    before: pa.Table,
    after: pa.Table,
    keep: pa.Array | None,
    kept: pa.Table,
    tokenizer: str | None = None,
) -> Sized:
    """Set one stage's sizes in its figures: in (the rows it got), kept (its kept rows as they entered) and out
    (its kept rows as it left them); returns the sizes of `kept`, the next stage's input."""
    n = len(sizes[0])
    mask = np.ones(n, bool) if keep is None else np.asarray(keep.to_numpy(zero_copy_only=False), bool)
    if same_content(before, after):
        out: Sized = (sizes[0][mask], sizes[1][mask], sizes[2][mask])
    else:
        out = doc_sizes(kept, tokenizer)
    for unit, per_doc, left in zip(UNITS, sizes, out):
        flow = fig.flow(unit)
        flow.into = int(per_doc.sum())
        flow.kept = int(per_doc[mask].sum())
        flow.out = int(left.sum())
    return out


def _sums(sizes: Sized, mask: np.ndarray | None = None, times: np.ndarray | None = None) -> Sizes:
    def total(a: np.ndarray) -> int:
        a = a if mask is None else a[mask]
        return int(a.sum() if times is None else (a * times).sum())

    return Sizes(*(total(a) for a in sizes))


def written_figures(table: pa.Table, tokenizer: str | None = None) -> Figures:
    """Sizes of a bundle's rows: each stage's rejected rows by reason (as they entered that stage), the kept rows
    (`written`) and the extra copies the writer adds for kept rows with COPIES k > 1 (k - 1 each). Counted here, from
    the rows themselves, so every stage's rejections count once."""
    sizes = doc_sizes(table, tokenizer)
    live = (
        np.ones(table.num_rows, bool)
        if REASON not in table.column_names
        else ~np.asarray(table.column(REASON).is_valid().to_numpy(zero_copy_only=False), bool)
    )
    out = Figures(written=_sums(sizes, live))
    if COPIES in table.column_names:
        extra = np.maximum(pc.fill_null(table.column(COPIES), 1).to_numpy(zero_copy_only=False).astype(np.int64) - 1, 0)
        out.copies = _sums(sizes, live, extra[live])
    if live.all():
        return out
    rejected = ~live
    rows = table.filter(pa.array(rejected))
    stages = pc.fill_null(rows.column(STAGE), "unknown") if STAGE in rows.column_names else None
    keys = rows.column(REASON) if stages is None else pc.binary_join_element_wise(stages, rows.column(REASON), "\x00")
    enc = pc.dictionary_encode(keys).combine_chunks()
    idx = np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)
    groups = enc.dictionary.to_pylist()
    by_unit = []
    for per_doc in sizes:
        sums = np.zeros(len(groups), np.int64)
        np.add.at(sums, idx, per_doc[rejected])  # integer sums (bincount's weights would go through float64)
        by_unit.append(sums)
    for j, g in enumerate(groups):
        stage, reason = g.split("\x00", 1) if stages is not None else ("unknown", g)
        fig = out.stage(stage)
        for unit, sums in zip(UNITS, by_unit):
            if sums[j] or unit != "tokens":
                rej = fig.flow(unit).rejected
                rej[reason] = rej.get(reason, 0) + int(sums[j])
    return out


# -- the figures a batch carries -----------------------------------------------------------------------------------
# They ride on the first row of the batch, in the reserved column FIGURES (JSON of a Figures record), because Ray
# Data may merge, slice and retry blocks between a stage and the writer: only data travels with the rows through
# all of that, so the figures are counted when, and as often as, the rows they describe are committed.


def attach_figures(table: pa.Table, figures: Figures) -> pa.Table:
    """Carry `figures` on the first row of `table` (added to what that row already carries)."""
    if not figures.stages or table.num_rows == 0:
        return table
    col = table.column(FIGURES).combine_chunks()
    first = col[0].as_py()
    if first:
        merged = Figures.from_json(first)
        merged.add(figures)
        figures = merged
    head = pa.array([figures.to_json()], pa.string())
    return table.set_column(table.schema.get_field_index(FIGURES), FIGURES, pa.concat_arrays([head, col.slice(1)]))


def collect_figures(table: pa.Table, tokenizer: str | None = None) -> Figures:
    """The sum of the figures the rows of `table` carry, plus the sizes of its rows as the writer sees them
    (tokens with `tokenizer`, the pipeline's)."""
    out = Figures()
    if FIGURES in table.column_names and table.column(FIGURES).null_count != table.num_rows:
        for value in table.column(FIGURES).drop_null().to_pylist():
            out.add(Figures.from_json(value))
    if table.num_rows:
        out.add(written_figures(table, tokenizer))
    return out
