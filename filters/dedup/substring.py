"""Exact substring dedup across the corpus (Lee et al. 2022, "Deduplicating Training Data Makes Language Models
Better"; RefinedWeb, Penedo et al. 2023, section 3.3: spans of 50 or more tokens that occur more than once go).

Lee et al. build a suffix array over the concatenated corpus; `self-similar` lists every position whose next L
tokens occur again (all copies), `collect` merges those L-windows into ranges. The union of the repeated L-windows
is exactly the union of the repeated spans of L or more tokens (each such span starts with a repeated L-window),
so this stage finds the same ranges without a suffix array: each batch of documents gives one row per L-window
(a 128-bit hash as two int64, the id, the token position, the window's character range), a shuffle by hash marks
the windows seen twice or more, a shuffle by id merges each document's marked windows into spans, and a join by
id brings the spans back to the documents, which are cut where they are. The text never moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.errors import ConfigError, MissingDependency
from curate.stage import Docs, GlobalStage
from curate_filters.dedup.lines import CUT_TEXT, TOO_LITTLE_LEFT, cut_column, rewrite_cut, with_cut_text

# Temporary columns joined onto the documents (the engine drops `__` columns a stage leaves behind).
STARTS, ENDS = "__sd_starts", "__sd_ends"
# One row per L-window: its hash (two independent 64-bit halves), document, token position, characters.
WINDOWS = pa.schema(
    [
        ("h1", pa.int64()),
        ("h2", pa.int64()),
        ("id", pa.string()),
        ("pos", pa.int32()),
        ("cstart", pa.int32()),
        ("cend", pa.int32()),
    ]
)
MARKED = pa.schema([("id", pa.string()), ("pos", pa.int32()), ("cstart", pa.int32()), ("cend", pa.int32())])
CUTS = pa.schema(
    [
        ("id", pa.string()),
        (STARTS, pa.list_(pa.int32())),
        (ENDS, pa.list_(pa.int32())),
        ("__sd_tokens", pa.int64()),
        ("__sd_chars", pa.int64()),
    ]
)
SUMMARY = pa.schema([("documents", pa.int64()), ("spans", pa.int64()), ("tokens", pa.int64()), ("chars", pa.int64())])

# A token: a maximal run of non-whitespace characters, whitespace being what str.split() splits on (re's \s is
# the same set for str patterns: checked over every code point in the tests).
_TOKEN = re.compile(r"\S+")
# Odd multipliers of the two polynomial window hashes (mod 2**64), each 3 mod 4 (see window_hashes).
_P1 = 0x9E3779B97F4A7C15 | 3
_P2 = 0xC2B2AE3D27D4EB4F | 3
_SEED1, _SEED2 = 0, 0x5BD1E995
_MASK = (1 << 64) - 1


# -- tokens and window hashes ---------------------------------------------------------------------------------------


def tokenize(text: str) -> tuple[list[str], list[int], list[int]]:
    """Whitespace tokens of a text and their character ranges: text[starts[i]:ends[i]] == tokens[i]."""
    tokens: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in _TOKEN.finditer(text):
        tokens.append(m.group())
        starts.append(m.start())
        ends.append(m.end())
    return tokens, starts, ends


def token_hashes(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes per token (XXH3-64 of its UTF-8 bytes under two seeds), each distinct token
    hashed once; uint64 arrays."""
    codes: dict[str, int] = {}
    idx = np.fromiter((codes.setdefault(t, len(codes)) for t in tokens), np.int64, len(tokens))
    uniq = [t.encode("utf-8") for t in codes]
    lo = np.fromiter((xxhash.xxh3_64_intdigest(u, seed=_SEED1) for u in uniq), np.uint64, len(uniq))
    hi = np.fromiter((xxhash.xxh3_64_intdigest(u, seed=_SEED2) for u in uniq), np.uint64, len(uniq))
    return lo[idx], hi[idx]


_POWERS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _powers(p: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """p**k and p**-k mod 2**64 for k < n (uint64; numpy's uint64 products wrap mod 2**64, which is the point)."""
    have = _POWERS.get(p)
    if have is None or len(have[0]) < n:
        size = max(n, 1 << 16, 2 * len(have[0]) if have else 0)
        with np.errstate(over="ignore"):
            fwd = np.cumprod(np.full(size, p, np.uint64))
            inv = np.cumprod(np.full(size, pow(p, -1, 1 << 64), np.uint64))
        fwd = np.concatenate([np.ones(1, np.uint64), fwd[:-1]])
        inv = np.concatenate([np.ones(1, np.uint64), inv[:-1]])
        _POWERS[p] = have = (fwd, inv)
    return have[0][:n], have[1][:n]


def window_hashes(values: np.ndarray, starts: np.ndarray, length: int, p: int) -> np.ndarray:
    """The polynomial hash sum_k values[s+k] * p**(length-1-k) mod 2**64 of the `length` values from each start
    (uint64), for all starts at once: prefix sums of values[g] * p**-g, differenced and shifted back by p**(s+L-1).
    The same window gives the same hash wherever it stands."""
    fwd, inv = _powers(p, len(values) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(values) + 1, np.uint64)
        np.cumsum(values * inv[: len(values)], out=prefix[1:])
        return fwd[starts + length - 1] * (prefix[starts + length] - prefix[starts])


def cut_ranges(text: str, starts: list[int], ends: list[int]) -> str:
    """The text without the character ranges [starts[i], ends[i]) (sorted, disjoint)."""
    pieces: list[str] = []
    at = 0
    for s, e in sorted(zip(starts, ends)):
        pieces.append(text[at:s])
        at = max(at, e)
    pieces.append(text[at:])
    return "".join(pieces)


# -- the steps of the global pass (module level: they pickle by reference) -------------------------------------------


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64's finaliser of x + seed (uint64): a bijection, so distinct token ids get distinct values."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class WindowRows:
    """A batch of documents -> one row per window of `length` tokens (schema WINDOWS). Tokens are whitespace
    tokens, or with `tokenizer` (a tokenizer.json path) the ids of that Hugging Face tokenizer, loaded once per
    process and never pickled."""

    def __init__(self, length: int, tokenizer: str | None = None) -> None:
        self.length = length
        self.tokenizer = tokenizer
        self._tok: object | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tok": None}

    def _encode(self, texts: list[str]) -> tuple[list[int], list[int], list[int], np.ndarray, np.ndarray]:
        """Per document its token count; for all tokens their character starts and ends and two 64-bit values."""
        counts: list[int] = []
        cstart: list[int] = []
        cend: list[int] = []
        if self.tokenizer is None:
            tokens: list[str] = []
            for text in texts:
                toks, s, e = tokenize(text)
                counts.append(len(toks))
                tokens += toks
                cstart += s
                cend += e
            lo, hi = token_hashes(tokens)
            return counts, cstart, cend, lo, hi
        if self._tok is None:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(self.tokenizer)
        ids: list[int] = []
        for enc in self._tok.encode_batch(texts, add_special_tokens=False):  # type: ignore[attr-defined]
            counts.append(len(enc.ids))
            ids += enc.ids
            cstart += [a for a, _ in enc.offsets]
            cend += [b for _, b in enc.offsets]
        arr = np.asarray(ids, np.uint64)
        return counts, cstart, cend, _mix(arr, _SEED1), _mix(arr, _SEED2)

    def __call__(self, batch: pa.Table) -> pa.Table:
        L = self.length
        ids = batch.column("id").to_pylist()
        counts_all, cstart, cend, lo, hi = self._encode([t or "" for t in batch.column("text").to_pylist()])
        counts = np.asarray(counts_all, np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        n_windows = np.maximum(counts - L + 1, 0)
        if not n_windows.sum():
            return WINDOWS.empty_table()
        # global start of every window, and its position inside its document
        local = np.arange(int(n_windows.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
        start = np.repeat(offsets, n_windows) + local
        h1 = window_hashes(lo, start, L, _P1).view(np.int64)
        h2 = window_hashes(hi, start, L, _P2).view(np.int64)
        cs = np.asarray(cstart, np.int32)[start]
        ce = np.asarray(cend, np.int32)[start + L - 1]
        doc = pa.array(ids, pa.string()).take(pa.array(np.repeat(np.arange(len(ids)), n_windows)))
        cols = [pa.array(h1), pa.array(h2), doc, pa.array(local.astype(np.int32)), pa.array(cs), pa.array(ce)]
        return pa.Table.from_arrays(cols, schema=WINDOWS)


class Decide:
    """Whole hash groups -> the windows to remove (schema MARKED). `all`: every copy of a window seen twice or more
    (Lee et al.); `later`: every copy but the first by (id, position). Each group is decided on its own, so the
    result does not depend on how groups share calls."""

    def __init__(self, remove: str) -> None:
        self.remove = remove

    def __call__(self, t: pa.Table) -> pa.Table:
        if t.num_rows == 0:
            return MARKED.empty_table()
        if self.remove == "later":
            keys = [("h1", "ascending"), ("h2", "ascending"), ("id", "ascending"), ("pos", "ascending")]
            order = pc.sort_indices(t, sort_keys=keys)
        else:
            order = pa.array(np.lexsort((t.column("h2").to_numpy(), t.column("h1").to_numpy())))
        t = t.take(order)
        h1 = t.column("h1").to_numpy()
        h2 = t.column("h2").to_numpy()
        n = t.num_rows
        first = np.ones(n, bool)
        first[1:] = (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])
        if self.remove == "later":
            remove = ~first
        else:
            starts = np.flatnonzero(first)
            sizes = np.diff(np.append(starts, n))
            remove = np.repeat(sizes, sizes) >= 2
        return t.filter(pa.array(remove)).select(MARKED.names)


class Spans:
    """Whole id groups of marked windows -> one row per document: the character ranges of its merged spans, the
    tokens and characters they hold (schema CUTS)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, t: pa.Table) -> pa.Table:
        if t.num_rows == 0:
            return CUTS.empty_table()
        t = t.take(pc.sort_indices(t, sort_keys=[("id", "ascending"), ("pos", "ascending")]))
        ids = t.column("id")
        pos = t.column("pos").to_numpy().astype(np.int64)
        n = t.num_rows
        new_doc = np.ones(n, bool)
        if n > 1:
            new_doc[1:] = pc.not_equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        # positions are sorted within a document, so a window joins the run before it unless it starts after the
        # previous window's end (touching windows merge, as `collect` merges them)
        new_run = new_doc.copy()
        new_run[1:] |= pos[1:] > pos[:-1] + self.length
        first = np.flatnonzero(new_run)
        last = np.append(first[1:], n) - 1
        cs = t.column("cstart").to_numpy()[first]
        ce = t.column("cend").to_numpy()[last]
        runs = pa.table(
            {
                "id": ids.take(pa.array(first)),
                "s": pa.array(cs),
                "e": pa.array(ce),
                "tokens": pa.array(pos[last] - pos[first] + self.length),
                "chars": pa.array((ce - cs).astype(np.int64)),
            }
        )
        g = runs.group_by("id", use_threads=False).aggregate(
            [("s", "list"), ("e", "list"), ("tokens", "sum"), ("chars", "sum")]
        )
        cols = [g.column("id"), g.column("s_list"), g.column("e_list"), g.column("tokens_sum"), g.column("chars_sum")]
        return pa.Table.from_arrays(cols, schema=CUTS)


def summarize(t: pa.Table) -> pa.Table:
    """Cut rows -> one row of totals (documents cut, spans, tokens and characters removed)."""
    spans = pc.sum(pc.list_value_length(t.column(STARTS))).as_py() or 0
    tokens = pc.sum(t.column("__sd_tokens")).as_py() or 0
    chars = pc.sum(t.column("__sd_chars")).as_py() or 0
    values = [t.num_rows, spans, tokens, chars]
    return pa.Table.from_arrays([pa.array([v], pa.int64()) for v in values], schema=SUMMARY)


class Rewrite:
    """The documents with their spans joined on -> the text without them; a document left with fewer than
    min_chars non-space characters is rejected as too_little_left (and keeps its text as it came). The spans cut go
    to `column` (None: not kept)."""

    def __init__(self, min_chars: int, column: str | None = None) -> None:
        self.min_chars = min_chars
        self.column = column

    def __call__(self, body: pa.Table) -> pa.Table:
        if STARTS not in body.column_names or body.column(STARTS).null_count == body.num_rows:
            temp = [c for c in body.column_names if c.startswith("__sd_")]
            body = body.drop_columns(temp).append_column("reason", pa.nulls(body.num_rows, pa.string()))
            return with_cut_text(body, self.column, [None] * body.num_rows) if self.column else body
        starts, ends = body.column(STARTS).to_pylist(), body.column(ENDS).to_pylist()

        def cut(i: int, text: str) -> tuple[str, list[str]] | None:
            if not starts[i]:
                return None
            return cut_ranges(text, starts[i], ends[i]), [text[s:e] for s, e in sorted(zip(starts[i], ends[i]))]

        return rewrite_cut(body, "__sd_", cut, self.min_chars, self.column)


def _only_cuts(t: pa.Table) -> pa.Table:
    return t.select(["id", STARTS, ENDS])


# -- the stage -------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class SubstringDedup(GlobalStage):
    """Remove every span of min_tokens or more tokens that occurs more than once in the corpus (Lee et al. 2022,
    ExactSubstr; RefinedWeb: 50 tokens).

    Tokens are whitespace tokens (or those of a local Hugging Face `tokenizer`); a span is cut as the exact
    character range from its first token's first character to its last token's last character (the whitespace
    around it stays). `remove: all` (Lee et al.'s default) cuts every copy, the first included; `remove: later`
    keeps the first copy of each repeated window by (id, token position). A document left with fewer than
    `min_chars` non-space characters is rejected as `too_little_left`.
    """

    name = "substring_dedup"
    input_columns = ("id", "text")
    reasons = (TOO_LITTLE_LEFT,)
    output_columns = {cut_column("substring_dedup"): CUT_TEXT}

    # A span this many tokens long or longer that occurs twice or more is removed (RefinedWeb: 50).
    min_tokens: int = 50
    # `all`: every copy of a repeated span goes (Lee et al.); `later`: the first copy (smallest id, then position)
    # of each repeated window stays.
    remove: Literal["all", "later"] = "all"
    # A document that lost spans and is left with fewer non-space characters than this is rejected.
    min_chars: int = 50
    # Keep the spans cut from each document in the column `substring_dedup_cut` (what `curate explain` shows);
    # false: the column stays null (a smaller output).
    record_cuts: bool = True
    # A local Hugging Face tokenizer.json: spans are counted in its tokens instead of whitespace tokens (needs
    # the `tokenizers` package: curate[train]).
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_tokens, bool) or self.min_tokens < 1:
            raise ConfigError(f"min_tokens must be at least 1, got {self.min_tokens}", hint="RefinedWeb uses 50")
        if self.remove not in ("all", "later"):
            raise ConfigError(
                f"remove must be all or later, got {self.remove!r}",
                hint="all: every copy of a repeated span goes (Lee et al.); later: the first copy stays",
            )
        if self.min_chars < 0:
            raise ConfigError(f"min_chars must be at least 0, got {self.min_chars}")

    def preflight(self) -> None:
        if self.tokenizer is None:
            return
        try:
            import tokenizers  # noqa: F401
        except ImportError as e:
            raise MissingDependency("tokenizers", "train", what="substring_dedup's tokenizer") from e
        if not Path(self.tokenizer).is_file():
            raise ConfigError(f"tokenizer file not found: {self.tokenizer}", hint="give a local tokenizer.json path")

    def apply_global(self, docs: Docs) -> Docs:
        windows = docs.derive(WindowRows(self.min_tokens, self.tokenizer)).materialize()
        self.count("windows_counted", windows.count())
        marked = windows.group_by(["h1", "h2"], Decide(self.remove))
        cuts = marked.group_by("id", Spans(self.min_tokens)).materialize()
        summary = cuts.map_batches(summarize).collect()
        counters = (("documents_cut", "documents"), ("spans_removed", "spans"), ("tokens_removed", "tokens"))
        for counter, column in (*counters, ("chars_removed", "chars")):
            self.count(counter, int(pc.sum(summary.column(column)).as_py() or 0) if summary.num_rows else 0)
        return docs.join(cuts.map_batches(_only_cuts), on="id").map_batches(
            Rewrite(self.min_chars, cut_column(self.name) if self.record_cuts else None)
        )
