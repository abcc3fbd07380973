"""`decontaminate`: n-gram overlap between documents and evaluation sets (GPT-3, Brown et al. 2020, appendix C;
datatrove's NGramsDecontFilter), rejecting the documents that overlap or cutting the overlapping spans out."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from curate.stage import Mapper, StageColumns
from curate_filters.decontam.evals import EvalSpec, items_of, read_sets
from curate_filters.decontam.index import (
    NORMALIZATIONS,
    IndexSettings,
    NgramIndex,
    cached_index,
    doc_ngrams,
    ngrams,
    word_list_hashes,
)

MODES = ("document", "span")
MATCH_COLUMNS = ("contaminated_set", "contaminated_item", "contaminated_ngram")
# span mode's columns on kept documents: what was cut (null where nothing was)
SPAN_COLUMNS: dict[str, pa.DataType] = {
    "contaminated_set": pa.string(),
    "contaminated_item": pa.string(),
    "contaminated_ngram": pa.string(),
    "contaminated_chars": pa.int32(),
}


class Decontaminate(Mapper):
    """Benchmark decontamination by n-gram overlap (GPT-3, Brown et al. 2020; datatrove's NGramsDecontFilter): reject
    documents that share an n-gram with an evaluation item, or cut the overlapping spans out with a margin.

    `evals:` lists local evaluation files (JSONL, JSON, Parquet, CSV/TSV, text), each a path or a mapping with
    path, name, preset (lighteval, lm_eval, mmlu, mmlu_csv, gsm8k, humaneval, text) or the fields question,
    context, choices, answer, answer_is, id, columns. datatrove's settings: n_grams 12, find_query_ngrams false.
    Counters: contaminated_docs, contaminated:<set> (documents by the set of their first match), and in span mode
    spans_cut, chars_cut, docs_cut. See docs/decontamination.md.
    """

    name = "decontaminate"
    reasons = ("contaminated", "too_little_left")
    # Evaluation sets: paths (globs) or mappings {path, name, preset, question, context, choices, answer, ...}.
    evals: list[Any]
    # document: reject a document that overlaps; span: cut each overlapping span with margin_chars around it.
    mode: str = "document"
    # Words per n-gram (GPT-3: 13; datatrove: 12).
    n_grams: int = 13
    # datatrove (simplify_text + the language's word tokenizer) or gpt3 (lm-eval-harness janitor's).
    normalization: str = "datatrove"
    # Language of the word tokenizer (datatrove normalization).
    language: str = "en"
    # Also match n-grams of the query (context and question) alone, not only those holding the answer (datatrove's
    # name; its default is false).
    find_query_ngrams: bool = True
    # Match n-grams that start in the query and end in the answer (datatrove's name and default).
    find_overlap_ngrams: bool = True
    # Ignore n-grams found in more than this many evaluation items (boilerplate such as "which of the following
    # is"); null keeps all (datatrove).
    max_items_per_ngram: int | None = 10
    # A text file of phrases (one per line) whose n-grams are never matched.
    stop_ngrams: str | None = None
    # document mode: reject when matched n-grams cover more than this share of the document's words (0: any).
    max_contaminated_share: float = 0.0
    # span mode: characters removed on each side of an overlapping span (GPT-3: 200).
    margin_chars: int = 200
    # span mode: pieces left shorter than this are dropped (GPT-3: 200); a document left with none is rejected
    # as too_little_left.
    min_piece_chars: int = 200
    # span mode: a document with more separate overlapping spans than this is rejected as contaminated (GPT-3: 10).
    max_spans: int = 10
    # Where the index is kept between workers and runs (default $CURATE_CACHE or the temporary folder).
    cache_dir: str | None = None

    index: ClassVar[NgramIndex | None] = None  # set per instance in setup()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"decontaminate: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"decontaminate: normalization must be one of {', '.join(NORMALIZATIONS)}")
        if self.n_grams < 1:
            raise ConfigError("decontaminate: n_grams must be at least 1")
        if not self.evals:
            raise ConfigError("decontaminate: evals lists no evaluation set", hint="give evals: [path, ...]")
        self._specs: list[EvalSpec] = read_sets(list(self.evals))

    @property
    def settings(self) -> IndexSettings:
        # the stage's parameters of the same names (IndexSettings is the cache key of the index they decide)
        return IndexSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(IndexSettings)})

    def columns(self) -> StageColumns:
        # the first match of a rejected document (both modes) rides on its row in OUT/rejected/<stage>/
        rejected = {name: SPAN_COLUMNS[name] for name in MATCH_COLUMNS}
        return super().columns()._replace(output=dict(SPAN_COLUMNS) if self.mode == "span" else {}, rejected=rejected)

    def preflight(self) -> None:
        # the files exist and each set yields an item (reading, not hashing: setup() builds the index)
        for spec in self._specs:
            if next(items_of(spec), None) is None:
                raise ConfigError(f"decontaminate: evaluation set '{spec.name}' ({spec.path}) holds no item")

    def setup(self) -> None:
        # Built from the local files once per machine (cached by content), memory-mapped by every worker.
        self.index = cached_index(self._specs, self.settings, self.cache_dir)

    # -- the batch ----------------------------------------------------------------------------------------------
    def map_batch(self, batch: pa.Table) -> tuple[pa.Table, list[str | None] | None]:
        if self.index is None:
            self.setup()
        index = self.index
        assert index is not None
        texts = [t or "" for t in batch.column("text").to_pylist()]
        docs, pos, rows, lengths = doc_ngrams(texts, index)
        if self.mode == "span":
            return self._cut(batch, texts, docs)
        if not len(docs):
            return batch, None
        reasons: list[str | None] = [None] * len(texts)
        match: dict[str, list[Any]] = {name: [None] * len(texts) for name in MATCH_COLUMNS}
        n = self.n_grams
        for d in np.unique(docs):
            mine = docs == d
            if self.max_contaminated_share > 0 and covered(pos[mine], n) <= self.max_contaminated_share * lengths[d]:
                continue
            reasons[d] = "contaminated"
            self.count("contaminated_docs")
            self.count(f"contaminated:{index.sets[int(index.item_set[index.items[rows[mine][0]]])]}")
            first = int(np.flatnonzero(mine)[np.argmin(pos[mine])])
            words = index.settings.normalizer.words(texts[d])
            s, key = index.item_label(int(index.items[rows[first]]))
            ngram = " ".join(words[pos[first] : pos[first] + n])
            for name, value in zip(MATCH_COLUMNS, (s, key, ngram)):
                match[name][d] = value
        for name in MATCH_COLUMNS:
            batch = batch.append_column(name, pa.array(match[name], SPAN_COLUMNS[name]))
        return batch, reasons

    def first_match(self, text: str) -> dict[str, Any] | None:
        """The first overlapping n-gram of one document: set, item, n-gram (its normalised words)."""
        assert self.index is not None
        docs, pos, rows, _ = doc_ngrams([text], self.index)
        if not len(docs):
            return None
        words = self.index.settings.normalizer.words(text)
        s, key = self.index.item_label(int(self.index.items[rows[0]]))
        return {"set": s, "item": key, "ngram": " ".join(words[pos[0] : pos[0] + self.n_grams])}

    def _cut(self, batch: pa.Table, texts: list[str], docs: np.ndarray) -> tuple[pa.Table, list[str | None] | None]:
        assert self.index is not None
        n_rows = len(texts)
        new_texts = list(texts)
        reasons: list[str | None] = [None] * n_rows
        info: dict[str, list[Any]] = {name: [None] * n_rows for name in SPAN_COLUMNS}
        for d in np.unique(docs):
            d = int(d)
            result = cut_spans(texts[d], self.index, self.margin_chars, self.min_piece_chars, self.max_spans)
            if result.spans == 0:  # cannot happen unless the chunk-wise words differ from the whole text's
                continue
            self.count("docs_cut")
            self.count("spans_cut", result.spans)
            self.count("chars_cut", len(texts[d]) - len(result.text))
            s, key = self.index.item_label(result.item)
            self.count(f"contaminated:{s}")
            if result.reason:  # the first match goes with the rejected row (rejected_columns)
                reasons[d] = result.reason
                for name, value in zip(MATCH_COLUMNS, (s, key, result.ngram)):
                    info[name][d] = value
                continue
            new_texts[d] = result.text
            for name, value in zip(SPAN_COLUMNS, (s, key, result.ngram, len(texts[d]) - len(result.text))):
                info[name][d] = value
        table = batch.set_column(batch.schema.get_field_index("text"), "text", pa.array(new_texts, pa.string()))
        for name, dtype in SPAN_COLUMNS.items():
            arr = pa.array(info[name], dtype)
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, arr) if i >= 0 else table.append_column(name, arr)
        return table, reasons if any(reasons) else None


def covered(starts: np.ndarray, n: int) -> int:
    """Words covered by n-grams starting at `starts` (overlaps counted once)."""
    if not len(starts):
        return 0
    starts = np.sort(starts)
    ends = starts + n
    # an n-gram adds the part of it past the previous n-gram's end
    prev_end = np.maximum.accumulate(np.concatenate([[starts[0]], ends[:-1]]))
    return int(np.clip(ends - np.maximum(starts, prev_end), 0, None).sum())


class Cut:
    """What span mode did to one document."""

    __slots__ = ("text", "spans", "reason", "item", "ngram")

    def __init__(self, text: str, spans: int, reason: str | None, item: int, ngram: str) -> None:
        self.text, self.spans, self.reason, self.item, self.ngram = text, spans, reason, item, ngram


def cut_spans(text: str, index: NgramIndex, margin: int, min_piece: int, max_spans: int) -> Cut:
    """GPT-3's cut (lm-eval-harness janitor): every overlapping n-gram's characters (whole whitespace-delimited
    words) and `margin` characters on each side are removed; the cuts split the text into pieces, pieces shorter
    than `min_piece` are dropped and the rest joined by a line break. More than `max_spans` separate cuts:
    contaminated; no piece left: too_little_left."""
    n = index.settings.n_grams
    words, w_start, w_end = index.settings.normalizer.located_words(text)
    hashes, _, pos = ngrams(word_list_hashes(words), np.array([len(words)]), n)
    rows = index.lookup(hashes)
    hit = np.flatnonzero(rows >= 0)
    if not len(hit):
        return Cut(text, 0, None, -1, "")
    first = int(hit[0])
    item, ngram = int(index.items[rows[first]]), " ".join(words[pos[first] : pos[first] + n])
    lo = np.maximum(w_start[pos[hit]] - margin, 0)
    hi = np.minimum(w_end[pos[hit] + n - 1] + margin, len(text))
    spans = merge(lo, hi)
    if len(spans) > max_spans:
        return Cut(text, len(spans), "contaminated", item, ngram)
    pieces = []
    at = 0
    for a, b in spans:
        pieces.append(text[at:a])
        at = b
    pieces.append(text[at:])
    kept = [p for p in pieces if len(p) >= min_piece and p.strip()]
    if not kept:
        return Cut("", len(spans), "too_little_left", item, ngram)
    return Cut("\n".join(kept), len(spans), None, item, ngram)


def merge(lo: np.ndarray, hi: np.ndarray) -> list[tuple[int, int]]:
    """Overlapping or touching [lo, hi) intervals merged, in order."""
    order = np.argsort(lo, kind="stable")
    out: list[tuple[int, int]] = []
    for a, b in zip(lo[order].tolist(), hi[order].tolist()):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out
