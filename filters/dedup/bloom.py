"""Paragraph dedup inside documents by a Bloom filter of word n-grams: DCLM-Baseline's BFF (`--remove-type old-both`,
Li et al. 2024) and a mode that reproduces Dolma's `dedupe` by_ngram paragraphs (Soldaini et al. 2024).

Documents are processed in one fixed order, ascending id, whatever the runner and its worker count, so the output
is deterministic. Per batch, in parallel, each document's text becomes n-gram hashes (8 bytes a token, never the
text); one task sorts those rows by id and runs the ordered pass over a numpy Bloom filter, emitting decisions for
the documents it changes; the decisions are joined back by read unit (the text never moves) and the documents
rewritten in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.errors import ConfigError
from curate.stage import Docs, GlobalStage
from curate_filters.dedup.bloom_filter import (
    BloomFilter,
    ItemSet,
    bloom_size,
    hashes_for_bits,
    ngram_hashes,
    tokens,
    word_hashes,
)
from curate_filters.dedup.lines import CUT_TEXT, cut_column, with_cut_text

DUPLICATE, EMPTY = "duplicate_ngrams", "empty_after_dedup"
# temporary columns joined onto the documents (the engine drops `__` columns a stage leaves behind)
DROP, REASON, CHARS = "__bloom_drop", "__bloom_reason", "__bloom_chars"


@dataclass(frozen=True)
class Rules:
    """The pass's semantics (resolved from the stage's parameters)."""

    mode: str  # bff | dolma
    ngram: int
    min_ngram: int
    threshold: float
    document_threshold: float | None
    seed: int


def paragraph_items(text: str, rules: Rules) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Per newline-separated paragraph: the item hashes it looks up, its whole-paragraph key (Dolma mode, for
    paragraphs with fewer than two n-grams; 0 = none) and its length in characters (-1 - length when it is
    whitespace only)."""
    grams: list[np.ndarray] = []
    keys: list[int] = []
    lengths: list[int] = []
    if not text:
        return grams, keys, lengths
    paras = text.split("\n")
    words = [tokens(p) for p in paras]
    # one hash pass and one rolling pass over the whole document; a paragraph's n-grams are a slice of them
    flat = word_hashes((w for ws in words for w in ws), rules.seed)
    n = rules.ngram
    rolled = ngram_hashes(flat, n)
    at = 0
    for p, ws in zip(paras, words):
        count = len(ws)
        h = rolled[at : at + count - n + 1] if count >= n else np.zeros(0, np.uint64)
        key = 0
        if rules.mode == "bff":
            if count < n and count >= rules.min_ngram:
                # BFF: a paragraph shorter than the n-gram but at least min_ngram words is one shorter gram
                h = ngram_hashes(flat[at : at + count], count)
        elif len(h) < 2:
            # Dolma: too few n-grams to judge overlap; the paragraph's raw text is one key (never 0)
            key = (xxhash.xxh3_64_intdigest(p.encode(), rules.seed + 1) | 1) & 0xFFFFFFFFFFFFFFFF
        at += count
        grams.append(h)
        keys.append(key)
        # a paragraph of whitespace only counts as no text: length -1 (a document left with only those is empty)
        lengths.append(len(p) if p.strip() else -1 - len(p))
    return grams, keys, lengths


def decide_document(
    grams: list[np.ndarray], keys: list[int], rules: Rules, bloom: ItemSet
) -> tuple[list[int], bool, int, int]:
    """Run one document through the filter: (removed paragraph indices, whole document removed, seen n-grams,
    n-grams). BFF (old-both): a paragraph's n-grams are looked up together, and inserted only if the paragraph
    stays (seen share > threshold removes it); the document goes when its seen share > document_threshold.
    Dolma: each n-gram is looked up then inserted, a paragraph is marked when its seen share >= threshold, one with
    fewer than two n-grams when its whole text was seen."""
    removed: list[int] = []
    seen_total = total = 0
    if rules.mode == "dolma":
        # always inserted, so one sequential lookup-and-insert over the document's items in order is exact
        parts = [x for i, h in enumerate(grams) for x in ((h, np.array([keys[i]], np.uint64)) if keys[i] else (h,))]
        hits = bloom.check_and_add(np.concatenate(parts)) if parts else np.zeros(0, bool)
        at = 0
        for i, h in enumerate(grams):
            seen = int(hits[at : at + len(h)].sum())
            at += len(h)
            if keys[i]:
                if (1.0 if hits[at] else 0.0) >= rules.threshold:
                    removed.append(i)
                at += 1
            elif seen / len(h) >= rules.threshold:
                removed.append(i)
            seen_total += seen
            total += len(h)
    else:
        for i, h in enumerate(grams):
            if not len(h):
                continue  # no n-gram: 0/0 is never above a threshold, and nothing is inserted
            hits, token = bloom.lookup(h)
            seen = int(hits.sum())
            if seen / len(h) > rules.threshold:
                removed.append(i)
            else:
                bloom.insert(token)
            seen_total += seen
            total += len(h)
    doc = rules.document_threshold is not None and total > 0 and seen_total / total > rules.document_threshold
    return removed, doc, seen_total, total


# -- the global pass's functions (module level, so that they pickle by reference) -------------------------------------

ITEMS = pa.schema(
    [
        ("id", pa.string()),
        ("grams", pa.list_(pa.uint64())),
        ("counts", pa.list_(pa.int32())),
        ("keys", pa.list_(pa.uint64())),
        ("lengths", pa.list_(pa.int64())),
    ]
)


class DeriveItems:
    """Batch of documents -> one row per document: its n-gram hashes (flat), n-grams per paragraph, paragraph
    keys and paragraph lengths."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def __call__(self, batch: pa.Table) -> pa.Table:
        cols: dict[str, list[Any]] = {name: [] for name in ITEMS.names}
        for text in batch.column("text").to_pylist():
            grams, keys, lengths = paragraph_items(text or "", self.rules)
            cols["grams"].extend(grams)
            cols["counts"].append([len(g) for g in grams])
            cols["keys"].append(keys)
            cols["lengths"].append(lengths)
        values = np.concatenate(cols["grams"]) if cols["grams"] else np.zeros(0, np.uint64)
        per_doc = np.array([sum(c) for c in cols["counts"]], np.int64)
        offsets = pa.array(np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int32), pa.int32())
        return pa.table(
            {
                "id": batch.column("id").cast(pa.string()),
                "grams": pa.ListArray.from_arrays(offsets, pa.array(values, pa.uint64())),
                "counts": pa.array(cols["counts"], pa.list_(pa.int32())),
                "keys": pa.array(cols["keys"], pa.list_(pa.uint64())),
                "lengths": pa.array(cols["lengths"], pa.list_(pa.int64())),
            }
        )


def with_constant_key(t: pa.Table) -> pa.Table:
    return t.append_column("__all__", pa.array(np.zeros(t.num_rows, np.int8)))


DECISIONS = pa.schema(
    [
        ("id", pa.string()),
        (DROP, pa.list_(pa.int32())),
        (REASON, pa.string()),
        (CHARS, pa.int64()),
        ("__bloom_seen", pa.int64()),
        ("__bloom_total", pa.int64()),
    ]
)


class OrderedPass:
    """All documents' item rows (one call) -> decisions for the documents it changes, in ascending id order, and
    one summary row (id null) with the filter's size and the totals."""

    def __init__(self, rules: Rules, bits: int | None, fp_rate: float, expected: int | None) -> None:
        self.rules = rules
        self.bits = bits
        self.fp_rate = fp_rate
        self.expected = expected

    def make_filter(self, items: int) -> BloomFilter:
        expected = self.expected or items
        if self.bits is not None:
            return BloomFilter(self.bits, hashes_for_bits(self.bits, expected))
        return BloomFilter(*bloom_size(expected, self.fp_rate))

    def __call__(self, t: pa.Table) -> pa.Table:
        t = t.take(pc.sort_indices(t, sort_keys=[("id", "ascending")]))
        items = int(pc.sum(pc.list_value_length(t.column("grams"))).as_py() or 0)
        items += int(pc.sum(pc.greater(pc.list_flatten(t.column("keys")), pa.scalar(0, pa.uint64()))).as_py() or 0)
        bloom = self.make_filter(items)
        out = run_pass(t, self.rules, bloom)
        summary = pa.table(
            {
                "id": pa.nulls(1, pa.string()),
                "__bloom_seen": [bloom.bits],
                "__bloom_total": [bloom.k],
                CHARS: [items],
            }
        )
        return pa.concat_tables([_conform(out), _conform(summary)])


def run_pass(t: pa.Table, rules: Rules, bloom: ItemSet) -> pa.Table:
    """The ordered pass over item rows already in processing order -> decision rows for changed documents."""
    ids = t.column("id").to_pylist()
    flat = t.column("grams").combine_chunks()
    offsets = flat.offsets.to_numpy()
    values = flat.values.to_numpy(zero_copy_only=False) if len(flat.values) else np.zeros(0, np.uint64)
    counts = t.column("counts").to_pylist()
    keys = t.column("keys").to_pylist()
    lengths = t.column("lengths").to_pylist()
    rows: dict[str, list[Any]] = {name: [] for name in DECISIONS.names}
    for d, doc_id in enumerate(ids):
        grams = np.split(values[offsets[d] : offsets[d + 1]], np.cumsum(counts[d])[:-1]) if counts[d] else []
        removed, whole, seen, total = decide_document(grams, keys[d], rules, bloom)
        if not removed and not whole:
            continue
        gone = set(removed)
        size = [x if x >= 0 else -1 - x for x in lengths[d]]
        left = [i for i in range(len(size)) if i not in gone]
        reason = DUPLICATE if whole else (None if any(lengths[d][i] >= 0 for i in left) else EMPTY)
        chars = sum(size) + len(size) - 1  # the text's length: paragraphs and their newlines
        if reason is None:
            chars -= sum(size[i] for i in left) + len(left) - 1
        rows["id"].append(doc_id)
        rows[DROP].append(removed)
        rows[REASON].append(reason)
        rows[CHARS].append(chars)
        rows["__bloom_seen"].append(seen)
        rows["__bloom_total"].append(total)
    return pa.table({name: pa.array(rows[name], DECISIONS.field(name).type) for name in DECISIONS.names})


def _conform(t: pa.Table) -> pa.Table:
    cols = [
        t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in DECISIONS
    ]
    return pa.Table.from_arrays(cols, schema=DECISIONS)


def only_decisions(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_valid(t.column("id"))).select(["id", DROP, REASON, CHARS])


def decision_counts(t: pa.Table) -> pa.Table:
    """Per piece of the decisions: paragraphs removed, characters removed, documents rejected by reason, and the
    summary row's filter size."""
    dec = t.filter(pc.is_valid(t.column("id")))
    summary = t.filter(pc.is_null(t.column("id")))
    reason = dec.column(REASON)
    rewritten = pc.is_null(reason)
    return pa.table(
        {
            "paragraphs_removed": [int(pc.sum(pc.list_value_length(dec.column(DROP))).as_py() or 0)],
            "chars_removed": [int(pc.sum(dec.column(CHARS).filter(rewritten)).as_py() or 0)],
            "docs_rewritten": [int(pc.sum(rewritten).as_py() or 0)],
            "bits": [int(pc.sum(summary.column("__bloom_seen")).as_py() or 0)],
            "hashes": [int(pc.sum(summary.column("__bloom_total")).as_py() or 0)],
            "items": [int(pc.sum(summary.column(CHARS)).as_py() or 0)],
        }
    )


class Rewrite:
    """Remove the decided paragraphs from each document; set the reasons. The paragraphs cut from documents that
    stay go to `column` (None: not kept)."""

    def __init__(self, column: str | None = None) -> None:
        self.column = column

    def __call__(self, body: pa.Table) -> pa.Table:
        n = body.num_rows
        if DROP not in body.column_names:
            body = body.append_column("reason", pa.nulls(n, pa.string()))
            return with_cut_text(body, self.column, [None] * n) if self.column else body
        drops = body.column(DROP).to_pylist()
        reasons = body.column(REASON).to_pylist()
        texts = body.column("text").to_pylist()
        out_text: list[str | None] = []
        out_reason: list[str | None] = []
        pieces: list[list[str] | None] = []
        for text, drop, reason in zip(texts, drops, reasons):
            cut = None
            if drop and reason is None:
                gone = set(drop)
                paragraphs = (text or "").split("\n")
                text = "\n".join(p for i, p in enumerate(paragraphs) if i not in gone)
                cut = [paragraphs[i] for i in sorted(gone)]
                if not text.strip():
                    reason = EMPTY
            out_text.append(text)
            out_reason.append(reason)
            pieces.append(cut)
        body = body.drop_columns([c for c in body.column_names if c.startswith("__bloom_")])
        body = body.set_column(body.schema.get_field_index("text"), "text", pa.array(out_text, pa.string()))
        body = body.append_column("reason", pa.array(out_reason, pa.string()))
        return with_cut_text(body, self.column, pieces) if self.column else body


class BloomDedup(GlobalStage):
    """Paragraph dedup by a Bloom filter of word n-grams in id order: DCLM-Baseline's BFF (old-both) by default, or
    Dolma's `dedupe` (by_ngram paragraphs) with `mode: dolma`.

    Each newline-separated paragraph's word n-grams (`ngram` words; Unicode word tokens as BFF and Dolma cut them)
    are looked up in the filter, then inserted. bff: a paragraph whose seen share is above `threshold` is removed
    (and not inserted); a paragraph with fewer than `min_ngram` words has no n-gram and is kept; a document whose
    seen share over all its n-grams is above `document_threshold` is rejected whole as `duplicate_ngrams`. dolma:
    n-grams are looked up one by one and always inserted, a paragraph is removed at a seen share of at least
    `threshold`, and one with fewer than two n-grams when its exact text was seen before. A document left with no
    text is rejected as `empty_after_dedup`. Counters: paragraphs_removed, chars_removed, docs_rewritten,
    bloom_bits, bloom_hashes, bloom_items.

    Memory: the filter holds m = -n ln(fp_rate) / (ln 2)^2 bits (9.6 bits an n-gram at 0.01) with k = (m/n) ln 2
    hashes, n = `expected_ngrams` or, when not given, the n-gram count of the input; `size_in_bytes` sets m
    directly (k then follows from n). The one ordered task also holds the input's n-gram hashes (8 bytes a word).
    """

    name = "bloom_dedup"
    input_columns = ("id", "text")
    reasons = (DUPLICATE, EMPTY)
    output_columns = {cut_column("bloom_dedup"): CUT_TEXT}
    modes: ClassVar[tuple[str, ...]] = ("bff", "dolma")

    # Words per n-gram (BFF --max-ngram-size; Dolma ngram_length). DCLM: 13.
    ngram: int = 13
    # bff: a paragraph of at least this many words but fewer than `ngram` is one shorter gram (BFF
    # --min-ngram-size; DCLM: 13, so shorter paragraphs are never judged); null: ngram.
    min_ngram: int | None = None
    # Seen share of a paragraph's n-grams that removes it: above it (bff), at least it (dolma overlap_threshold).
    threshold: float = 0.8
    # Seen share of a document's n-grams above which it is rejected whole (BFF's filtering threshold applied to
    # the document; DCLM: 0.8); null: never.
    document_threshold: float | None = 0.8
    # bff (DCLM-Baseline's BFF, old-both) or dolma (Dolma's dedupe, by_ngram paragraphs, stride 0).
    mode: Literal["bff", "dolma"] = "bff"
    # Target false-positive rate of the filter at its capacity (BFF --fp-rate; Dolma desired_false_positive_rate).
    fp_rate: float = 0.01
    # Capacity in n-grams the filter is sized for (Dolma estimated_doc_count); null: the input's n-gram count.
    expected_ngrams: int | None = None
    # The filter's size in bytes, instead of sizing it from expected_ngrams and fp_rate (Dolma size_in_bytes).
    size_in_bytes: int | None = None
    # Seed of the word hashes.
    seed: int = 0
    # Keep the paragraphs cut from each document in the column `bloom_dedup_cut` (what `curate explain` shows);
    # false: the column stays null (a smaller output).
    record_cuts: bool = True

    def __post_init__(self) -> None:
        if self.mode not in self.modes:
            raise ConfigError(f"bloom_dedup: mode must be one of {', '.join(self.modes)}, got {self.mode!r}")
        if isinstance(self.ngram, bool) or self.ngram < 1:
            raise ConfigError(f"bloom_dedup: ngram must be at least 1, got {self.ngram}")
        if self.min_ngram is not None and not 1 <= self.min_ngram <= self.ngram:
            raise ConfigError(
                f"bloom_dedup: min_ngram must be between 1 and ngram ({self.ngram}), got {self.min_ngram}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"bloom_dedup: threshold must be between 0 and 1, got {self.threshold}")
        if self.document_threshold is not None and not 0.0 <= self.document_threshold <= 1.0:
            raise ConfigError(f"bloom_dedup: document_threshold must be between 0 and 1, got {self.document_threshold}")
        if not 0.0 < self.fp_rate < 1.0:
            raise ConfigError(f"bloom_dedup: fp_rate must be between 0 and 1, got {self.fp_rate}")
        if self.expected_ngrams is not None and self.expected_ngrams < 1:
            raise ConfigError("bloom_dedup: expected_ngrams must be at least 1")
        if self.size_in_bytes is not None and self.size_in_bytes < 1:
            raise ConfigError("bloom_dedup: size_in_bytes must be at least 1")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"bloom_dedup: seed must be between 0 and 2^63 - 1, got {self.seed}")

    @property
    def rules(self) -> Rules:
        return Rules(
            self.mode, self.ngram, self.min_ngram or self.ngram, self.threshold, self.document_threshold, self.seed
        )

    def ordered_pass(self) -> OrderedPass:
        bits = None if self.size_in_bytes is None else self.size_in_bytes * 8
        return OrderedPass(self.rules, bits, self.fp_rate, self.expected_ngrams)

    def apply_global(self, docs: Docs) -> Docs:
        items = docs.derive(DeriveItems(self.rules)).map_batches(with_constant_key)
        decisions = items.group_by("__all__", self.ordered_pass()).materialize()
        counts = decisions.map_batches(decision_counts).collect()
        for name, counter in (
            ("paragraphs_removed", "paragraphs_removed"),
            ("chars_removed", "chars_removed"),
            ("docs_rewritten", "docs_rewritten"),
            ("bits", "bloom_bits"),
            ("hashes", "bloom_hashes"),
            ("items", "bloom_items"),
        ):
            total = int(pc.sum(counts.column(name)).as_py() or 0) if counts.num_rows else 0
            self.count(counter, total)
        return docs.join(decisions.map_batches(only_decisions), on="id").map_batches(
            Rewrite(cut_column(self.name) if self.record_cuts else None)
        )
