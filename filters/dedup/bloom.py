"""Paragraph dedup inside documents by a Bloom filter of word n-grams: DCLM-Baseline's BFF (`--remove-type old-both`,
Li et al. 2024) and a mode that reproduces Dolma's `dedupe` by_ngram paragraphs (Soldaini et al. 2024).

Documents are processed in one fixed order, ascending id, whatever the runner and its worker count, so the output
is deterministic. Per batch, in parallel, each document's text becomes n-gram hashes (8 bytes a token, never the
text), split into hash partitions; each partition runs in its own task, in id order, over its own Bloom filter
(dolma: the seen counts, summed per paragraph over partitions; bff: the repeated n-grams, which one small
sequential task then judges in id order); the decisions are joined back by read unit (the text never moves) and the
documents rewritten in parallel. See "the partitioned pass" below.
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
    check_and_add_all,
    hashes_for_bits,
    ngram_hashes,
    partition_of,
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


# -- the reference: one ordered pass over one filter (the tests' and the bench's exact reference, with ExactSet) ------

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
    keys and paragraph lengths (the input of run_pass)."""

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


def run_pass(t: pa.Table, rules: Rules, bloom: ItemSet) -> pa.Table:
    """The ordered pass over item rows already in processing order, one filter for everything -> decision rows for
    changed documents. The definition the partitioned pass reproduces (with an ExactSet: exactly)."""
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
        if removed or whole:
            add_decision(rows, doc_id, removed, whole, lengths[d], seen, total)
    return decision_table(rows)


def add_decision(
    rows: dict[str, list[Any]], doc_id: str, removed: list[int], whole: bool, lengths: list[int], seen: int, total: int
) -> None:
    """One decision row: the paragraphs removed, the reason (whole document, left empty, or none: rewritten) and the
    characters removed."""
    gone = set(removed)
    size = [x if x >= 0 else -1 - x for x in lengths]
    left = [i for i in range(len(size)) if i not in gone]
    reason = DUPLICATE if whole else (None if any(lengths[i] >= 0 for i in left) else EMPTY)
    chars = sum(size) + len(size) - 1  # the text's length: paragraphs and their newlines
    if reason is None:
        chars -= sum(size[i] for i in left) + len(left) - 1
    rows["id"].append(doc_id)
    rows[DROP].append(removed)
    rows[REASON].append(reason)
    rows[CHARS].append(chars)
    rows["__bloom_seen"].append(seen)
    rows["__bloom_total"].append(total)


def decision_table(rows: dict[str, list[Any]]) -> pa.Table:
    return pa.table({name: pa.array(rows[name], DECISIONS.field(name).type) for name in DECISIONS.names})


# -- the partitioned pass (module level, so that its functions pickle by reference) ------------------------------------
#
# 1. DeriveRows, per batch: per document and hash partition p, a row (part p, id, the hashes of p's items in document
#    order, each item's paragraph: i for an n-gram of paragraph i, -1 - i for paragraph i's whole-text key), and one
#    info row per document (its n-grams per paragraph, which paragraphs have a key, paragraph lengths), whose part
#    is a hash of the id (info rows only pass through step 2).
# 2. group_by part -> PartitionPass: per partition, its rows in id order through its own Bloom filter
#    (check_and_add: every item looked up, then inserted). dolma: per (document, paragraph), the items that hit.
#    bff: the set H_p of hashes that hit (repeated, or a false positive), sorted; then every occurrence of a hash
#    in H_p, first ones included, as its rank in H_p. Plus a summary row per partition (its filter's bits, k,
#    items, |H_p|), collected on the driver: partition p's ranks are numbered from |H_0| + ... + |H_p-1| on.
# 3. group_by id -> MergeDocs: a document's rows of all partitions with its info row. dolma: its decision (the seen
#    counts summed over partitions, the rules of decide_document). bff: one row of its repeated occurrences (their
#    numbers, 4 bytes each below 2^32, and paragraphs) in paragraph order and its info, for the documents that
#    have any.
# 4. bff only, one task -> SequentialBff: those documents in id order through an exact set of inserted hashes (a
#    bit per number): BFF's old-both on the repeated n-grams only (an n-gram that occurs once is never seen, so
#    whether it was inserted does not matter); the document rule over the document's whole n-gram count.

PART_ROWS = pa.schema(
    [
        ("part", pa.int32()),
        ("id", pa.string()),
        ("hashes", pa.list_(pa.uint64())),
        ("paras", pa.list_(pa.int32())),
        ("counts", pa.list_(pa.int32())),
        ("keyed", pa.list_(pa.bool_())),
        ("lengths", pa.list_(pa.int64())),
    ]
)
# what PartitionPass emits: the item rows' results (dolma: `seen` per paragraph in `paras`; bff: the `ranks` of the
# repeated hashes in their partition's sorted set, and their `paras`), the info rows unchanged, and one summary row
# per partition (id null; its bits, k, items, and how many distinct hashes repeat)
PASSED = pa.schema(
    [
        ("id", pa.string()),
        ("part", pa.int32()),
        ("paras", pa.list_(pa.int32())),
        ("seen", pa.list_(pa.int32())),
        ("ranks", pa.list_(pa.uint32())),
        ("counts", pa.list_(pa.int32())),
        ("keyed", pa.list_(pa.bool_())),
        ("lengths", pa.list_(pa.int64())),
        ("bits", pa.int64()),
        ("k", pa.int64()),
        ("items", pa.int64()),
        ("repeated", pa.int64()),
    ]
)


def conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """t with exactly the schema's columns (missing ones null)."""
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _lists(offsets: np.ndarray, values: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int64), pa.int64()), pa.array(values, type_.value_type))


def _flat(column: pa.ChunkedArray | pa.Array, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a list column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not isinstance(arr, pa.LargeListArray):
        arr = arr.cast(pa.large_list(arr.type.value_type))
    offsets = arr.offsets.to_numpy()
    values = arr.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(zero_copy_only=False)
    return values.astype(dtype, copy=False), offsets - offsets[0]


class DeriveRows:
    """Batch of documents -> the item rows of every (document, partition) with items, and one info row a
    document (schema PART_ROWS)."""

    def __init__(self, rules: Rules, partitions: int) -> None:
        self.rules = rules
        self.partitions = partitions

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids = batch.column("id").cast(pa.string())
        values: list[np.ndarray] = []
        paras: list[np.ndarray] = []
        per_doc: list[int] = []
        counts: list[list[int]] = []
        keyed: list[list[bool]] = []
        lengths: list[list[int]] = []
        for text in batch.column("text").to_pylist():
            grams, keys, lens = paragraph_items(text or "", self.rules)
            n = 0
            for i, (h, key) in enumerate(zip(grams, keys)):
                # a paragraph's n-grams, then its key: the order decide_document looks them up in
                values.append(h)
                paras.append(np.full(len(h), i, np.int32))
                n += len(h)
                if key:
                    values.append(np.array([key], np.uint64))
                    paras.append(np.array([-1 - i], np.int32))
                    n += 1
            per_doc.append(n)
            counts.append([len(h) for h in grams])
            keyed.append([bool(k) for k in keys])
            lengths.append(lens)
        flat = np.concatenate(values) if values else np.zeros(0, np.uint64)
        flat_paras = np.concatenate(paras) if paras else np.zeros(0, np.int32)
        doc = np.repeat(np.arange(len(per_doc), dtype=np.int64), per_doc)
        part = partition_of(flat, self.partitions)
        order = np.lexsort((doc, part))  # by partition, then document; stable, so document order within
        doc, part = doc[order], part[order]
        starts = np.flatnonzero(np.r_[True, (doc[1:] != doc[:-1]) | (part[1:] != part[:-1])]) if len(doc) else doc
        offsets = np.r_[starts, len(doc)]
        doc_ids = xxhash_ids(ids)
        items = pa.table(
            {
                "part": pa.array(part[starts], pa.int32()),
                "id": ids.take(pa.array(doc[starts])),
                "hashes": _lists(offsets, flat[order], PART_ROWS.field("hashes").type),
                "paras": _lists(offsets, flat_paras[order], PART_ROWS.field("paras").type),
            }
        )
        info = pa.table(
            {
                "part": pa.array((doc_ids % np.uint64(self.partitions)).astype(np.int32), pa.int32()),
                "id": ids,
                "counts": pa.array(counts, pa.list_(pa.int32())),
                "keyed": pa.array(keyed, pa.list_(pa.bool_())),
                "lengths": pa.array(lengths, pa.list_(pa.int64())),
            }
        )
        return pa.concat_tables([conform(items, PART_ROWS), conform(info, PART_ROWS)])


def xxhash_ids(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest((i or "").encode()) for i in ids.to_pylist()), np.uint64, len(ids))


class PartitionPass:
    """Whole partitions of item rows (and info rows, passed on) -> schema PASSED. Each partition on its own, its
    rows in id order, through its own Bloom filter sized for its share."""

    def __init__(self, rules: Rules, partitions: int, bits: int | None, fp_rate: float, expected: int | None) -> None:
        self.rules = rules
        self.partitions = partitions
        self.bits = bits  # of all partitions together
        self.fp_rate = fp_rate
        self.expected = expected  # of all partitions together

    def make_filter(self, items: int) -> BloomFilter:
        """The filter of one partition holding `items`: the whole filter's share (size_in_bytes / partitions bytes,
        or sized for expected_ngrams / partitions), or sized for the partition's own items at fp_rate."""
        expected = -(-self.expected // self.partitions) if self.expected else items
        if self.bits is not None:
            bits = max(64, self.bits // self.partitions)
            return BloomFilter(bits, hashes_for_bits(bits, expected))
        return BloomFilter(*bloom_size(expected, self.fp_rate))

    def __call__(self, t: pa.Table) -> pa.Table:
        info = pc.is_valid(t.column("counts"))
        out = [conform(t.filter(info), PASSED)]
        # the item rows by partition, then id: one partition's rows are copied out of the call's at a time
        order = pc.sort_indices(t, sort_keys=[("part", "ascending"), ("id", "ascending")]).to_numpy()
        order = order[~info.combine_chunks().to_numpy(zero_copy_only=False)[order]]
        parts = t.column("part").combine_chunks().to_numpy(zero_copy_only=False)[order]
        bounds = np.flatnonzero(np.r_[True, parts[1:] != parts[:-1], True]) if len(order) else []
        for a, b in zip(bounds[:-1], bounds[1:]):
            out.append(self.one_partition(t.take(pa.array(order[a:b]))))
        return pa.concat_tables(out)

    def one_partition(self, t: pa.Table) -> pa.Table:
        values, offsets = _flat(t.column("hashes"), np.uint64)
        paras, _ = _flat(t.column("paras"), np.int32)
        bloom = self.make_filter(len(values))
        hits = check_and_add_all(bloom, values)
        row = np.repeat(np.arange(t.num_rows, dtype=np.int32), np.diff(offsets))
        if self.rules.mode == "dolma":
            # per (row, paragraph): the items that hit; a row is one document's items of this partition
            key = (row[hits].astype(np.int64) << 32) | (paras[hits].astype(np.int64) + (1 << 31))
            key, seen = np.unique(key, return_counts=True)
            rows, p = key >> 32, (key & 0xFFFFFFFF) - (1 << 31)
            extra = {"seen": seen.astype(np.int32)}
            repeated = np.zeros(0, np.uint64)
        else:
            repeated = np.unique(values[hits])  # H_p: hashes seen before (or false positives)
            if len(repeated) >= 1 << 32:
                raise ValueError(f"bloom_dedup: {len(repeated):,} repeated n-grams in one partition: raise partitions")
            keep, ranks = _ranks(values, repeated)  # pass B: every occurrence of them, the first ones too
            rows, p = row[keep], paras[keep]
            extra = {"ranks": ranks}
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, np.int64)
        offs = np.r_[starts, len(rows)]
        part = t.column("part")[0].as_py()
        cols = {
            "id": t.column("id").take(pa.array(rows[starts])),
            "part": pa.array(np.full(len(starts), part, np.int32)),
            "paras": _lists(offs, p.astype(np.int32), PASSED.field("paras").type),
        }
        for name, v in extra.items():
            cols[name] = _lists(offs, v, PASSED.field(name).type)
        summary = pa.table(
            {"part": [part], "bits": [bloom.bits], "k": [bloom.k], "items": [len(values)], "repeated": [len(repeated)]}
        )
        return pa.concat_tables([conform(pa.table(cols), PASSED), conform(summary, PASSED)])


def _ranks(values: np.ndarray, sorted_set: np.ndarray, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Which values are in sorted_set (unique, sorted), and the rank there of those that are; in chunks
    (searchsorted's int64 positions for one chunk at a time)."""
    keep = np.zeros(len(values), bool)
    ranks: list[np.ndarray] = []
    if not len(sorted_set):
        return keep, np.zeros(0, np.uint32)
    for s in range(0, len(values), chunk):
        v = values[s : s + chunk]
        at = np.minimum(np.searchsorted(sorted_set, v), len(sorted_set) - 1)
        hit = sorted_set[at] == v
        keep[s : s + chunk] = hit
        ranks.append(at[hit].astype(np.uint32))
    return keep, np.concatenate(ranks)


class MergeDocs:
    """Whole id groups of PASSED rows (info rows and partition results) -> dolma: decision rows (DECISIONS);
    bff: one row for each document with repeated n-grams (merge_bff)."""

    def __init__(self, rules: Rules, first_index: np.ndarray | None = None) -> None:
        self.rules = rules
        # bff: partition p's repeated hashes are numbered from first_index[p] on (the sum of the earlier ones)
        self.first_index = first_index

    def __call__(self, t: pa.Table) -> pa.Table:
        results = pc.is_valid(t.column("paras"))
        # a document without any partition result is unchanged (nothing seen), unless Dolma's threshold is 0
        if not (self.rules.mode == "dolma" and self.rules.threshold <= 0):
            t = t.filter(pc.is_in(t.column("id"), value_set=pc.unique(t.column("id").filter(results))))
        t = t.take(pc.sort_indices(t, sort_keys=[("id", "ascending")]))
        if self.rules.mode == "bff":
            return self.merge_bff(t, self.first_index)
        rows: dict[str, list[Any]] = {name: [] for name in DECISIONS.names}
        ids = t.column("id").to_pylist()
        has = pc.is_valid(t.column("paras")).combine_chunks().to_numpy(zero_copy_only=False)
        paras = t.column("paras").to_pylist()
        seens = t.column("seen").to_pylist()
        counts = t.column("counts").to_pylist()
        keyed = t.column("keyed").to_pylist()
        lengths = t.column("lengths").to_pylist()
        at = 0
        while at < len(ids):
            end = at + 1
            while end < len(ids) and ids[end] == ids[at]:
                end += 1
            me = next(j for j in range(at, end) if counts[j] is not None)
            results_of = [(paras[j], seens[j]) for j in range(at, end) if has[j]]
            self.decide_dolma(rows, ids[at], results_of, counts[me], keyed[me], lengths[me])
            at = end
        return decision_table(rows)

    @staticmethod
    def merge_bff(t: pa.Table, first_index: np.ndarray) -> pa.Table:
        """Rows sorted by id (each document: its info row and its partitions' occurrence rows) -> one row a
        document: its occurrences in paragraph order, each as the number of its hash among all repeated ones
        (numpy over all documents at once)."""
        info = pc.is_valid(t.column("counts"))
        docs = t.filter(info)  # one a document, in id order
        items = t.filter(pc.invert(info))
        ranks, offsets = _flat(items.column("ranks"), np.uint32)
        paras, _ = _flat(items.column("paras"), np.int32)
        wide = np.uint64 if first_index[-1] >= 1 << 32 else np.uint32
        base = first_index[items.column("part").to_numpy()].astype(wide)
        index = np.repeat(base, np.diff(offsets)) + ranks.astype(wide)
        # each item's document: the rank of its row's id among the documents' ids
        doc_of_row = pc.index_in(items.column("id"), value_set=docs.column("id").combine_chunks())
        doc = np.repeat(doc_of_row.to_numpy().astype(np.int32), np.diff(offsets))
        order = np.lexsort((paras, doc))  # by document, then paragraph
        sizes = np.bincount(doc, minlength=docs.num_rows)
        bounds = np.r_[0, np.cumsum(sizes)]
        return pa.table(
            {
                "id": docs.column("id"),
                "paras": _lists(bounds, paras[order], pa.list_(pa.int32())),
                "index": _lists(bounds, index[order], pa.list_(pa.from_numpy_dtype(wide))),
                "counts": docs.column("counts"),
                "lengths": docs.column("lengths"),
            }
        )

    def decide_dolma(
        self,
        rows: dict[str, list[Any]],
        doc_id: str,
        results: list[tuple[list[int], list[int]]],
        counts: list[int],
        keyed: list[bool],
        lengths: list[int],
    ) -> None:
        """decide_document's dolma rules on the seen counts summed over partitions."""
        seen = [0] * len(counts)
        key_hit = [0] * len(counts)
        for ps, ss in results:
            for p, s in zip(ps, ss):
                if p >= 0:
                    seen[p] += s
                else:
                    key_hit[-1 - p] += s
        threshold = self.rules.threshold
        removed: list[int] = []
        for i, n in enumerate(counts):
            if keyed[i]:
                if (1.0 if key_hit[i] else 0.0) >= threshold:
                    removed.append(i)
            elif seen[i] / n >= threshold:
                removed.append(i)
        seen_total, total = sum(seen), sum(counts)
        dt = self.rules.document_threshold
        whole = dt is not None and total > 0 and seen_total / total > dt
        if removed or whole:
            add_decision(rows, doc_id, removed, whole, lengths, seen_total, total)


def with_constant_key(t: pa.Table) -> pa.Table:
    return t.append_column("__all__", pa.array(np.zeros(t.num_rows, np.int8)))


class SequentialBff:
    """All merge_bff rows (one call) -> decision rows: BFF's old-both in id order over the repeated n-grams, with an
    exact set of the inserted ones (a bool a repeated hash, by its number)."""

    def __init__(self, rules: Rules, repeated: int) -> None:
        self.rules = rules
        self.repeated = repeated  # distinct repeated hashes, over all partitions

    def __call__(self, t: pa.Table) -> pa.Table:
        # the rows stay where they are (no sorted copy): visited in id order through their offsets
        order = pc.sort_indices(t, sort_keys=[("id", "ascending")]).to_numpy()
        index, offsets = _flat(t.column("index"), t.schema.field("index").type.value_type.to_pandas_dtype())
        paras, _ = _flat(t.column("paras"), np.int32)
        inserted = np.zeros(self.repeated, bool)
        ids = t.column("id").to_pylist()
        flat_counts, count_at = _flat(t.column("counts"), np.int64)
        flat_lengths, length_at = _flat(t.column("lengths"), np.int64)
        threshold, dt = self.rules.threshold, self.rules.document_threshold
        # the runs of one paragraph (each row's occurrences are in paragraph order): start, end, paragraph; and
        # each row's first run
        change = np.ones(len(paras), bool)
        change[1:] = paras[1:] != paras[:-1]
        change[offsets[:-1][offsets[:-1] < len(paras)]] = True
        starts = np.flatnonzero(change)
        run_para = paras[starts].tolist()
        run_bounds = np.r_[starts, len(paras)].tolist()
        first_run = np.searchsorted(starts, offsets).tolist()
        rows: dict[str, list[Any]] = {name: [] for name in DECISIONS.names}
        for d in order.tolist():
            removed: list[int] = []
            seen_total = 0
            doc_counts = flat_counts[count_at[d] : count_at[d + 1]].tolist()
            for r in range(first_run[d], first_run[d + 1]):
                para = run_para[r]
                grams = index[run_bounds[r] : run_bounds[r + 1]]
                seen = int(np.count_nonzero(inserted[grams]))
                if seen / doc_counts[para] > threshold:
                    removed.append(para)
                else:
                    inserted[grams] = True
                seen_total += seen
            total = sum(doc_counts)
            whole = dt is not None and total > 0 and seen_total / total > dt
            if removed or whole:
                lengths = flat_lengths[length_at[d] : length_at[d + 1]].tolist()
                add_decision(rows, ids[d], removed, whole, lengths, seen_total, total)
        return decision_table(rows)


def summary_rows(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_null(t.column("id"))).select(["part", "bits", "k", "items", "repeated"])


def first_index(summary: pa.Table, partitions: int) -> np.ndarray:
    """Where each partition's numbers of repeated hashes start (and, last, how many there are in all)."""
    sizes = np.zeros(partitions, np.int64)
    if summary.num_rows:
        np.add.at(sizes, summary.column("part").to_numpy(), summary.column("repeated").to_numpy())
    return np.r_[0, np.cumsum(sizes)]


def only_results(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_valid(t.column("id")))


def partitioned_pass_in_process(stage: BloomDedup, batches: list[pa.Table]) -> tuple[pa.Table, pa.Table]:
    """The global pass's steps in this process, each step's function called once on everything (as the local
    runner calls them): (decision rows, summary rows). For the tests and the bench."""
    derive = DeriveRows(stage.rules, stage.partitions)
    rows = pa.concat_tables([derive(b) for b in batches if b.num_rows])
    passed = stage.partition_pass()(rows)
    summary = summary_rows(passed)
    first = first_index(summary, stage.partitions)
    decisions = MergeDocs(stage.rules, first)(only_results(passed))
    if stage.mode == "bff":
        merged = decisions
        decisions = decision_table({name: [] for name in DECISIONS.names})
        if merged.num_rows:
            decisions = SequentialBff(stage.rules, int(first[-1]))(merged)
    return decisions, summary


def only_decisions(t: pa.Table) -> pa.Table:
    return t.select(["id", DROP, REASON, CHARS])


def decision_counts(t: pa.Table) -> pa.Table:
    """Per piece of the decisions: paragraphs removed, characters removed, documents rewritten."""
    rewritten = pc.is_null(t.column(REASON))
    return pa.table(
        {
            "paragraphs_removed": [int(pc.sum(pc.list_value_length(t.column(DROP))).as_py() or 0)],
            "chars_removed": [int(pc.sum(t.column(CHARS).filter(rewritten)).as_py() or 0)],
            "docs_rewritten": [int(pc.sum(rewritten).as_py() or 0)],
        }
    )


def _total(t: pa.Table, column: str, how: str = "sum") -> int:
    if not t.num_rows:
        return 0
    return int((pc.sum if how == "sum" else pc.max)(t.column(column)).as_py() or 0)


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

    Memory: a filter holds m = -n ln(fp_rate) / (ln 2)^2 bits (9.6 bits an n-gram at 0.01) with k = (m/n) ln 2
    hashes, n = `expected_ngrams` or, when not given, the n-gram count of the input; `size_in_bytes` sets m
    directly (k then follows from n). The n-gram space is cut into `partitions` by hash, each with its own filter of
    m/partitions bits, run in its own task: per worker about (8 bytes × n-grams + filter bits / 8) / partitions,
    plus 4 bytes an n-gram for its paragraph index (when the engine's `shuffle_partitions` is at least `partitions`;
    a shuffle call holds 1/shuffle_partitions of the rows, so with fewer several partitions share a call, run one
    after the other). Mode dolma is exact apart from false positives. Mode bff finds, per partition, the n-grams
    that occur more than once, then runs BFF's sequential rule in one task over those occurrences only, with an exact
    set: it decides as BFF with an exact filter (no false positives); that task holds about 8 bytes a repeated
    n-gram occurrence (its number among the repeated n-grams and its paragraph) and a byte a distinct one. At 10^9
    documents of ~1,000 words (~10^12 n-grams): 8 TB of hashes, 4 TB of paragraph indices and a 1.2 TB filter at
    0.01, so about 3.2 GB a task at 4,096 partitions (13 GB at 1,024; 825 GB at the default 16, which suits ~10^7
    documents); bff's sequential task needs ~0.8 TB per 10% of n-gram occurrences that repeat (a third repeat in
    the bench's generated documents), which bounds bff at that scale, not the partitions.
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
    # Hash partitions of the n-gram space: each runs in its own task with its own filter (1/partitions of the
    # filter's bits), so a task holds about 1/partitions of the input's n-gram hashes.
    partitions: int = 16
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
        if isinstance(self.partitions, bool) or not 1 <= self.partitions <= 1 << 16:
            raise ConfigError(f"bloom_dedup: partitions must be between 1 and 65536, got {self.partitions}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"bloom_dedup: seed must be between 0 and 2^63 - 1, got {self.seed}")

    @property
    def rules(self) -> Rules:
        return Rules(
            self.mode, self.ngram, self.min_ngram or self.ngram, self.threshold, self.document_threshold, self.seed
        )

    def partition_pass(self) -> PartitionPass:
        bits = None if self.size_in_bytes is None else self.size_in_bytes * 8
        return PartitionPass(self.rules, self.partitions, bits, self.fp_rate, self.expected_ngrams)

    def apply_global(self, docs: Docs) -> Docs:
        rows = docs.derive(DeriveRows(self.rules, self.partitions))
        passed = rows.group_by("part", self.partition_pass()).materialize()
        summary = passed.map_batches(summary_rows).collect()
        first = first_index(summary, self.partitions)
        merged = passed.map_batches(only_results).group_by("id", MergeDocs(self.rules, first))
        if self.mode == "bff":
            sequential = SequentialBff(self.rules, int(first[-1]))
            merged = merged.map_batches(with_constant_key).group_by("__all__", sequential)
        decisions = merged.materialize()
        counts = decisions.map_batches(decision_counts).collect()
        for name in ("paragraphs_removed", "chars_removed", "docs_rewritten"):
            self.count(name, _total(counts, name))
        self.count("bloom_bits", _total(summary, "bits"))
        self.count("bloom_hashes", _total(summary, "k", "max"))
        self.count("bloom_items", _total(summary, "items"))
        return docs.join(decisions.map_batches(only_decisions), on="id").map_batches(
            Rewrite(cut_column(self.name) if self.record_cuts else None)
        )
