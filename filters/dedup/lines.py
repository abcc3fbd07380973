"""Line / paragraph dedup across the corpus, CCNet style (Wenzek et al. 2020; LLaMA 3, Dubey et al. 2024, section
3.1.1: lines seen more than 6 times in a bucket of 30M documents are removed).

The text never moves: each batch of documents gives rows (bucket, unit hash, id, position, length) for its units,
a shuffle by (bucket, hash) decides which copies go, a shuffle by id gathers each document's cuts, and a join by id
brings them back to the documents, which are rewritten where they are.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.errors import ConfigError
from curate.stage import Docs, GlobalStage

TOO_LITTLE_LEFT = "too_little_left"
DEFAULT_MAX_COUNT = 6  # LLaMA 3
# Temporary columns joined onto the documents (the engine drops `__` columns a stage leaves behind).
CUT = "__ld_cut"
# The rows of the shuffle: one per counted unit. `chars` is the unit's raw length, for the counters.
UNITS = pa.schema(
    [("bucket", pa.int32()), ("hash", pa.int64()), ("id", pa.string()), ("pos", pa.int32()), ("chars", pa.int32())]
)
REMOVED = pa.schema([("id", pa.string()), ("pos", pa.int32()), ("chars", pa.int32())])
CUTS = pa.schema([("id", pa.string()), (CUT, pa.list_(pa.int32())), ("__ld_chars", pa.int64())])
SUMMARY = pa.schema([("documents", pa.int64()), ("units", pa.int64()), ("chars", pa.int64())])

# -- units and their normal form -------------------------------------------------------------------------------------

# A paragraph separator: a newline, then one or more lines holding only spaces or tabs (a blank line).
_PARAGRAPH_SEP = re.compile(r"(\n(?:[^\S\n]*\n)+)")
_DIGIT = re.compile(r"\d")
# The combining accents (diacritical marks of Latin, Greek, Cyrillic...): stripped after NFKD, as CCNet strips
# accents. Other combining marks belong to their script (Indic vowel signs, the kana voicing marks) and stay.
_ACCENTS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_ACCENT = re.compile(f"[{_ACCENTS}]")


def _script_marks() -> str:
    """A character class body of the combining marks of the Basic Multilingual Plane that are not accents."""
    out: list[str] = []
    start = prev = -2
    for cp in range(0x10000):
        if unicodedata.category(chr(cp))[0] != "M" or _ACCENT.match(chr(cp)):
            continue
        if cp != prev + 1:
            if start >= 0:
                out.append(f"\\u{start:04x}-\\u{prev:04x}")
            start = cp
        prev = cp
    out.append(f"\\u{start:04x}-\\u{prev:04x}")
    return "".join(out)


# Punctuation, symbols, control and format characters, the underscore: all that is neither a letter, a digit, a
# script's combining mark (BMP) nor whitespace. (Python's \w holds letters and digits but no marks.)
_NOT_WORD = re.compile(f"[^\\w\\s{_script_marks()}]|_")


def split_units(text: str, unit: str) -> tuple[list[str], list[str]]:
    """The units of a text (lines, or paragraphs: blocks between blank lines) and the separators between them:
    text == units[0] + seps[0] + units[1] + ... exactly."""
    if unit == "line":
        units = text.split("\n")
        return units, ["\n"] * (len(units) - 1)
    parts = _PARAGRAPH_SEP.split(text)
    return parts[0::2], parts[1::2]


def join_kept(units: list[str], seps: list[str], cut: set[int]) -> str:
    """The text without the units at positions `cut`: each kept unit keeps the separator before it (the first kept
    one none), so the remaining lines keep their structure."""
    out: list[str] = []
    for i, u in enumerate(units):
        if i in cut:
            continue
        if out:
            out.append(seps[i - 1])
        out.append(u)
    return "".join(out)


def _fold(text: str) -> str:
    """Lower case, compatibility forms folded and accents stripped (NFKD, then the combining accents dropped and
    the rest recomposed), digits to 0, punctuation and symbols dropped; whitespace, newlines included, stays."""
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFC", _ACCENT.sub("", unicodedata.normalize("NFKD", text)))
    return _NOT_WORD.sub("", _DIGIT.sub("0", text))


def normalize_unit(unit: str) -> str:
    """CCNet's normal form of a line for dedup, made stricter: lower case, digits to 0, punctuation, symbols and
    accents stripped, whitespace collapsed to single spaces."""
    return " ".join(_fold(unit).split())


def normalized_units(text: str, unit: str) -> list[str]:
    """normalize_unit of each of split_units(text, unit)[0], in one pass over the text for lines."""
    if unit == "line":
        # folding keeps every newline (they are whitespace, and nothing decomposes into one), so the folded text
        # splits into the same lines; the check keeps that an assumption we never rely on blindly
        folded = _fold(text).split("\n")
        if len(folded) == text.count("\n") + 1:
            return [" ".join(line.split()) for line in folded]
    return [normalize_unit(u) for u in split_units(text, unit)[0]]


def unit_hash(normalized: str) -> int:
    """The unit's 64-bit hash (XXH3-64 of its UTF-8 normal form) as a signed int64."""
    h = xxhash.xxh3_64_intdigest(normalized.encode("utf-8"))
    return h - (1 << 64) if h >= 1 << 63 else h


def bucket_of(doc_id: str, buckets: int) -> int:
    """Which bucket of documents a document counts its units in (a hash of its id; seed 1, not the units')."""
    return 0 if buckets <= 1 else xxhash.xxh3_64_intdigest(doc_id.encode("utf-8"), seed=1) % buckets


def non_space_chars(text: str) -> int:
    """Characters that are not whitespace (Unicode whitespace included: str.split() splits on it)."""
    return sum(len(w) for w in text.split())


# -- the steps of the global pass (module level: they pickle by reference) -------------------------------------------


class UnitRows:
    """A batch of documents -> one row per unit long enough to count (schema UNITS)."""

    def __init__(self, unit: str, min_length: int, buckets: int) -> None:
        self.unit = unit
        self.min_length = min_length
        self.buckets = buckets

    def __call__(self, batch: pa.Table) -> pa.Table:
        hashes: list[int] = []
        ids: list[str] = []
        pos: list[int] = []
        chars: list[int] = []
        buckets: list[int] = []
        texts = batch.column("text").to_pylist()
        for doc_id, text in zip(batch.column("id").to_pylist(), texts):
            if not text:
                continue
            raw = split_units(text, self.unit)[0]
            n0 = len(hashes)
            for i, norm in enumerate(normalized_units(text, self.unit)):
                if len(norm) >= self.min_length:
                    hashes.append(unit_hash(norm))
                    pos.append(i)
                    chars.append(len(raw[i]))
            k = len(hashes) - n0
            ids.extend([doc_id] * k)
            buckets.extend([bucket_of(doc_id, self.buckets)] * k)
        return pa.Table.from_arrays(
            [
                pa.array(buckets, pa.int32()),
                pa.array(hashes, pa.int64()),
                pa.array(ids, pa.string()),
                pa.array(pos, pa.int32()),
                pa.array(chars, pa.int32()),
            ],
            schema=UNITS,
        )


class Decide:
    """Whole (bucket, hash) groups -> the copies to remove (schema REMOVED). With max_count: every copy of a unit
    seen more than max_count times in its bucket; with keep first: every copy but the first (smallest id, then
    position). Each group is decided on its own, so the result does not depend on how groups share calls."""

    def __init__(self, max_count: int | None) -> None:
        self.max_count = max_count  # None: keep first

    def __call__(self, t: pa.Table) -> pa.Table:
        if t.num_rows == 0:
            return REMOVED.empty_table()
        keys = [("bucket", "ascending"), ("hash", "ascending")]
        if self.max_count is None:
            keys += [("id", "ascending"), ("pos", "ascending")]
        t = t.take(pc.sort_indices(t, sort_keys=keys))
        b = t.column("bucket").to_numpy()
        h = t.column("hash").to_numpy()
        n = t.num_rows
        first = np.ones(n, bool)
        first[1:] = (b[1:] != b[:-1]) | (h[1:] != h[:-1])
        if self.max_count is None:
            remove = ~first
        else:
            starts = np.flatnonzero(first)
            sizes = np.diff(np.append(starts, n))
            remove = np.repeat(sizes, sizes) > self.max_count
        return t.filter(pa.array(remove)).select(REMOVED.names).cast(REMOVED)


def cuts_per_document(t: pa.Table) -> pa.Table:
    """Whole id groups of removed units -> one row per document: its cut positions and characters removed."""
    if t.num_rows == 0:
        return CUTS.empty_table()
    g = t.group_by("id", use_threads=False).aggregate([("pos", "list"), ("chars", "sum")])
    return pa.Table.from_arrays(
        [g.column("id"), g.column("pos_list"), g.column("chars_sum").cast(pa.int64())], schema=CUTS
    )


def summarize(t: pa.Table) -> pa.Table:
    """Cut rows -> one row of totals (documents cut, units removed, characters removed)."""
    units = pc.sum(pc.list_value_length(t.column(CUT))).as_py() or 0
    chars = pc.sum(t.column("__ld_chars")).as_py() or 0
    return pa.Table.from_arrays(
        [pa.array([t.num_rows], pa.int64()), pa.array([units], pa.int64()), pa.array([chars], pa.int64())],
        schema=SUMMARY,
    )


def count_rows(batch: pa.Table) -> pa.Table:
    return pa.table({"n": pa.array([batch.num_rows], pa.int64())})


# What a stage cut from each document, kept beside it for `curate explain` (column `<stage>_cut`, null: nothing cut).
CUT_TEXT = pa.list_(pa.string())


def cut_column(stage: str) -> str:
    return f"{stage}_cut"


def with_cut_text(body: pa.Table, column: str, pieces: list[list[str] | None]) -> pa.Table:
    """`column` set to what was cut from each row (a second stage of the same kind adds to the first's list)."""
    if column in body.column_names:
        before = body.column(column).to_pylist()
        pieces = [(b or []) + p if p else b for b, p in zip(before, pieces)]
        return body.set_column(body.schema.get_field_index(column), column, pa.array(pieces, CUT_TEXT))
    return body.append_column(pa.field(column, CUT_TEXT), pa.array(pieces, CUT_TEXT))


def rewrite_cut(
    body: pa.Table,
    prefix: str,
    cut: Callable[[int, str], tuple[str, list[str]] | None],
    min_chars: int,
    column: str | None = None,
) -> pa.Table:
    """The documents with `cut(row, text)` applied (None: nothing cut in that row; else the text left and the
    pieces cut) and the stage's `prefix` columns dropped; a document left with fewer than min_chars non-space
    characters is rejected as too_little_left and keeps its text as it came. The pieces go to `column` (None: not
    kept). Shared by line_dedup and substring_dedup."""
    texts = body.column("text").to_pylist()
    reasons: list[str | None] = [None] * body.num_rows
    pieces: list[list[str] | None] = [None] * body.num_rows
    for i, text in enumerate(texts):
        done = cut(i, text or "")
        if done is None:
            continue
        left, pieces[i] = done
        if non_space_chars(left) < min_chars:
            reasons[i] = TOO_LITTLE_LEFT
        else:
            texts[i] = left
    idx = body.schema.get_field_index("text")
    body = body.set_column(idx, body.schema.field(idx), pa.array(texts, body.schema.field(idx).type))
    temp = [c for c in body.column_names if c.startswith(prefix)]
    body = body.drop_columns(temp).append_column("reason", pa.array(reasons, pa.string()))
    return with_cut_text(body, column, pieces) if column else body


class Rewrite:
    """The documents with their cut positions joined on -> the text without those units; a document left with
    fewer than min_chars non-space characters is rejected as too_little_left (and keeps its text as it came). The
    units cut go to `column` (None: not kept)."""

    def __init__(self, unit: str, min_chars: int, column: str | None = None) -> None:
        self.unit = unit
        self.min_chars = min_chars
        self.column = column

    def __call__(self, body: pa.Table) -> pa.Table:
        if CUT not in body.column_names or body.column(CUT).null_count == body.num_rows:
            temp = [c for c in body.column_names if c.startswith("__ld_")]
            body = body.drop_columns(temp).append_column("reason", pa.nulls(body.num_rows, pa.string()))
            return with_cut_text(body, self.column, [None] * body.num_rows) if self.column else body
        cuts = body.column(CUT).to_pylist()

        def cut(i: int, text: str) -> tuple[str, list[str]] | None:
            if not cuts[i]:
                return None
            units, seps = split_units(text, self.unit)
            gone = set(cuts[i])
            return join_kept(units, seps, gone), [units[j] for j in sorted(gone)]

        return rewrite_cut(body, "__ld_", cut, self.min_chars, self.column)


# -- the stage -------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class LineDedup(GlobalStage):
    """Remove lines (or paragraphs) that repeat across the corpus, CCNet / LLaMA 3 style.

    Units are normalised as CCNet does, a little more strictly (lower case, digits to 0, punctuation, symbols and
    accents stripped, whitespace collapsed) and hashed (XXH3-64); copies are counted across the corpus or within
    buckets of about `bucket_docs` documents. `max_count: k` removes every copy of a unit seen more than k times
    (LLaMA 3: 6); `keep: first` removes every copy after the first (smallest id, then position). A document left
    with fewer than `min_chars` non-space characters is rejected as `too_little_left`.
    """

    name = "line_dedup"
    input_columns = ("id", "text")
    reasons = (TOO_LITTLE_LEFT,)
    output_columns = {cut_column("line_dedup"): CUT_TEXT}

    # What is deduplicated: lines, or paragraphs (blocks of lines between blank lines).
    unit: Literal["line", "paragraph"] = "line"
    # Remove every copy of a unit seen more than this many times (in its bucket); LLaMA 3 and the default: 6.
    max_count: int | None = None
    # `first`: remove every copy of a unit after the first instead (exact dedup of units); excludes max_count.
    keep: Literal["first"] | None = None
    # Units whose normal form is shorter than this many characters are never counted nor removed.
    min_length: int = 10
    # Count within buckets of about this many documents (chosen by a hash of the id); LLaMA 3: 30_000_000.
    # null: the whole corpus is one bucket.
    bucket_docs: int | None = None
    # A document that lost units and is left with fewer non-space characters than this is rejected.
    min_chars: int = 50
    # Keep the units cut from each document in the column `line_dedup_cut` (what `curate explain` shows); false:
    # the column stays null (a smaller output).
    record_cuts: bool = True

    def __post_init__(self) -> None:
        if self.unit not in ("line", "paragraph"):
            raise ConfigError(f"unit must be line or paragraph, got {self.unit!r}")
        if self.max_count is not None and self.keep is not None:
            raise ConfigError(
                f"give max_count or keep, not both (max_count: {self.max_count}, keep: {self.keep})",
                hint="max_count: k removes every copy of a unit seen more than k times; keep: first removes all "
                "copies after the first",
            )
        if self.keep is not None and self.keep != "first":
            raise ConfigError(f"keep must be first, got {self.keep!r}", hint="or give max_count: k instead")
        if self.max_count is not None and (isinstance(self.max_count, bool) or self.max_count < 1):
            raise ConfigError(
                f"max_count must be at least 1, got {self.max_count}",
                hint="max_count: 1 keeps only units seen once; keep: first keeps one copy of each",
            )
        for key in ("min_length", "min_chars"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be at least 0, got {getattr(self, key)}")
        if self.bucket_docs is not None and self.bucket_docs < 1:
            raise ConfigError(f"bucket_docs must be at least 1, got {self.bucket_docs}", hint="or null: one bucket")

    @property
    def threshold(self) -> int | None:
        """The max_count in force (None: keep first)."""
        if self.keep == "first":
            return None
        return DEFAULT_MAX_COUNT if self.max_count is None else self.max_count

    def apply_global(self, docs: Docs) -> Docs:
        buckets = 1
        if self.bucket_docs is not None:
            counts = docs.derive(count_rows).collect()
            total = int(pc.sum(counts.column("n")).as_py() or 0) if counts.num_rows else 0
            buckets = max(1, math.ceil(total / self.bucket_docs))
            self.count("buckets", buckets)
        units = docs.derive(UnitRows(self.unit, self.min_length, buckets)).materialize()
        self.count("units_counted", units.count())
        removed = units.group_by(["bucket", "hash"], Decide(self.threshold))
        cuts = removed.group_by("id", cuts_per_document).materialize()
        summary = cuts.map_batches(summarize).collect()
        for counter, column in (("documents_cut", "documents"), ("units_removed", "units"), ("chars_removed", "chars")):
            self.count(counter, int(pc.sum(summary.column(column)).as_py() or 0) if summary.num_rows else 0)
        return docs.join(cuts.map_batches(_only_cuts), on="id").map_batches(
            Rewrite(self.unit, self.min_chars, cut_column(self.name) if self.record_cuts else None)
        )


def _only_cuts(t: pa.Table) -> pa.Table:
    return t.select(["id", CUT])
