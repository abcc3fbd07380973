"""The n-gram index of evaluation sets and the matching of documents against it.

Normalisation (`normalization:`):
- `datatrove`: datatrove's simplify_text with its default TextNormConfig (lower case, numbers -> 0, punctuation ->
  space, diacritics dropped) and then its word tokenizer for the language (spaCy's rules for English): what
  NGramsDecontIndexer / NGramsDecontFilter compare.
- `gpt3`: lm-eval-harness's janitor (GPT-3's decontamination, Brown et al. 2020, appendix C): ASCII letters lower
  case, ASCII punctuation deleted, words split on whitespace.

Hashing: each word's XXH3-64, combined per n-gram position into one 64-bit value (filters/dedup/minhash_math's
shingle_hashes, the MinHash stage's n-grams). Equal word sequences hash equal; two different n-grams collide with
probability about 2^-64 per pair, so decisions are datatrove's (it hashes the joined n-gram string with xxhash64).

The index: one row per (n-gram, item) pair, sorted by hash: `hashes` (uint64, 8 bytes) and `items` (int32, 4 bytes)
-- 12 bytes per pair, exact (no false positives beyond 64-bit collisions). Lookup is a binary search
(np.searchsorted) of a batch's n-gram hashes, behind a bitmap of the hashes' top bits that turns most misses away
after one memory access.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from curate.errors import ConfigError
from curate.text import RegexTokenizer, WordTokenizer, simplify_text, tokenizer
from curate_filters.decontam.evals import EvalItem, EvalSpec, items_of
from curate_filters.dedup.minhash_math import _xxh3, batch_word_hashes, shingle_hashes

NORMALIZATIONS = ("datatrove", "gpt3")
INDEX_VERSION = "curate-decontam-v1:xxh3_64-words-shingle"
_SPACE_RUN = re.compile(r"\S+")
# lm-eval-harness janitor: ASCII upper -> lower, string.punctuation deleted
_GPT3_TRANS = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
_WHITESPACE_TOKENS = RegexTokenizer("xx", re.compile(r"\S+"))


@dataclass(frozen=True)
class Normalizer:
    """How text becomes the words n-grams are made of."""

    kind: str = "datatrove"
    language: str = "en"

    def __post_init__(self) -> None:
        if self.kind not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {self.kind!r}")

    @property
    def tok(self) -> WordTokenizer:
        return tokenizer(self.language) if self.kind == "datatrove" else _WHITESPACE_TOKENS

    def simplify(self, text: str) -> str:
        if self.kind == "datatrove":
            return simplify_text(text)
        return " ".join(text.translate(_GPT3_TRANS).split())

    def words(self, text: str) -> list[str]:
        return self.tok.words(self.simplify(text))

    def word_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """XXH3-64 of every word of every text, concatenated, and the number of words per text."""
        return batch_word_hashes([self.simplify(t) for t in texts], self.tok)

    def located_words(self, text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The words of `text` with where they came from: every word's whitespace-delimited chunk of the original
        text, as (words, start, end) character offsets. Normalisation acts within a chunk (case, numbers,
        punctuation, marks), so the chunks' words in order are the words of the whole text."""
        words: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for m in _SPACE_RUN.finditer(text):
            for w in self.words(m.group()):
                words.append(w)
                starts.append(m.start())
                ends.append(m.end())
        return words, np.array(starts, np.int64), np.array(ends, np.int64)


def word_list_hashes(words: list[str]) -> np.ndarray:
    return np.fromiter(map(_xxh3, words), np.uint64, len(words))


def ngrams(flat: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-gram hashes of each text (word hashes concatenated, words per text): (hashes, text of each n-gram,
    position of its first word in its text). A text of fewer than n words has none (datatrove's ngrams())."""
    lengths = np.asarray(lengths, np.int64)
    hashes, counts = shingle_hashes((flat, lengths), n)
    text_of = np.repeat(np.arange(len(lengths)), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(hashes), dtype=np.int64) - starts[text_of]
    if n > 1:  # shingle_hashes makes one shingle of a short text's words: not an n-gram
        real = lengths[text_of] >= n
        if not real.all():
            hashes, text_of, pos = hashes[real], text_of[real], pos[real]
    return hashes, text_of, pos


@dataclass(frozen=True)
class IndexSettings:
    """What decides an index's contents; its key names the cached copy."""

    n_grams: int = 13
    normalization: str = "datatrove"
    language: str = "en"
    find_query_ngrams: bool = True
    find_overlap_ngrams: bool = True
    max_items_per_ngram: int | None = 10
    stop_ngrams: str | None = None

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.normalization, self.language)

    def key(self, specs: list[EvalSpec]) -> str:
        h = hashlib.sha256(json.dumps([INDEX_VERSION, self.__dict__], sort_keys=True, default=str).encode())
        for spec in specs:
            h.update(json.dumps([spec.name, spec.format, spec.fields], sort_keys=True, default=str).encode())
            for path in spec.files():
                h.update(path.encode())
                h.update(_file_digest(path))
        if self.stop_ngrams:
            h.update(_file_digest(self.stop_ngrams))
        return h.hexdigest()[:24]


def _file_digest(path: str) -> bytes:
    from curate.io.base import open_input

    h = hashlib.sha256()
    with open_input(path, "rb", compression=None) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.digest()


@dataclass
class NgramIndex:
    """Evaluation n-grams: `hashes` sorted (uint64, one row per n-gram and item holding it), `items` the item of
    each row (int32), and the items' sets and keys."""

    hashes: np.ndarray
    items: np.ndarray
    item_set: np.ndarray  # (items,) int32: index into `sets`
    item_keys: list[str]
    sets: list[str]
    settings: IndexSettings
    stats: dict[str, int]

    # -- lookup -------------------------------------------------------------------------------------------------
    @cached_property
    def _bitmap(self) -> tuple[np.ndarray, int]:
        """One bit per value of the hashes' top `bits` bits (about 32 bits per distinct n-gram, 2^16..2^30 bits):
        a query whose bit is clear is not in the index, decided with one memory access."""
        distinct = max(1, len(self.hashes))
        bits = int(min(30, max(16, np.ceil(np.log2(distinct * 32)))))
        words = np.zeros(1 << (bits - 3), np.uint8)
        if len(self.hashes):
            top = (self.hashes >> np.uint64(64 - bits)).astype(np.int64)
            np.bitwise_or.at(words, top >> 3, (1 << (top & 7)).astype(np.uint8))
        return words, bits

    def lookup(self, query: np.ndarray) -> np.ndarray:
        """For each query hash, the row of its first (n-gram, item) pair in the index, or -1."""
        out = np.full(len(query), -1, np.int64)
        if not len(query) or not len(self.hashes):
            return out
        words, bits = self._bitmap
        top = (query >> np.uint64(64 - bits)).astype(np.int64)
        maybe = np.flatnonzero((words[top >> 3] >> (top & 7).astype(np.uint8)) & 1)
        if len(maybe):
            q = query[maybe]
            rows = np.searchsorted(self.hashes, q)
            rows[rows == len(self.hashes)] = 0
            found = self.hashes[rows] == q
            out[maybe[found]] = rows[found]
        return out

    def rows_of(self, h: int) -> range:
        """The index rows (one per item) of one n-gram hash."""
        lo = int(np.searchsorted(self.hashes, np.uint64(h), "left"))
        hi = int(np.searchsorted(self.hashes, np.uint64(h), "right"))
        return range(lo, hi)

    def item_label(self, item: int) -> tuple[str, str]:
        return self.sets[int(self.item_set[item])], self.item_keys[item]

    # -- size ---------------------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes of the arrays a worker holds (hashes, items, the lookup bitmap; item keys are small)."""
        bitmap = self.__dict__.get("_bitmap")
        extra = bitmap[0].nbytes if bitmap else 0
        return self.hashes.nbytes + self.items.nbytes + self.item_set.nbytes + extra

    def describe(self) -> str:
        s = self.stats
        return (
            f"{s['ngrams']:,} distinct {self.settings.n_grams}-grams from {s['items']:,} items of "
            f"{len(self.sets)} set(s) ({len(self.hashes):,} n-gram/item rows, {self.nbytes / 2**20:.1f} MiB; "
            f"{s['dropped_common']:,} too common, {s['dropped_stop']:,} stop-listed)"
        )

    # -- cache --------------------------------------------------------------------------------------------------
    def save(self, folder: str) -> None:
        """Write into `folder` atomically (a temporary sibling renamed), so that concurrent builders never clash."""
        tmp = f"{folder}.tmp-{uuid.uuid4().hex}"
        os.makedirs(tmp)
        np.save(os.path.join(tmp, "hashes.npy"), self.hashes)
        np.save(os.path.join(tmp, "items.npy"), self.items)
        np.save(os.path.join(tmp, "item_set.npy"), self.item_set)
        meta = {"version": INDEX_VERSION, "sets": self.sets, "item_keys": self.item_keys, "stats": self.stats}
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker got there first: theirs is the same index
            _remove(tmp)

    @classmethod
    def load(cls, folder: str, settings: IndexSettings) -> NgramIndex:
        """Memory-mapped: the workers of one machine share one copy of the arrays (the page cache)."""
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        arrays = [np.load(os.path.join(folder, f"{n}.npy"), mmap_mode="r") for n in ("hashes", "items", "item_set")]
        return cls(*arrays, meta["item_keys"], meta["sets"], settings, meta["stats"])


def _remove(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- building ----------------------------------------------------------------------------------------------------


def item_ngrams(items: list[EvalItem], settings: IndexSettings) -> tuple[np.ndarray, np.ndarray]:
    """(n-gram hash, item number) of every n-gram of the items, as datatrove's NGramsDecontIndexer makes them per
    gold answer: the answer's n-grams; with find_query_ngrams the query's; with find_overlap_ngrams those that
    start in the query's last n-1 words and end in the answer's first n-1."""
    n = settings.n_grams
    norm = settings.normalizer
    texts: list[str] = []
    owner: list[int] = []
    for k, item in enumerate(items):
        texts.extend(item.golds)
        owner.extend([k] * len(item.golds))
        if item.query is not None:
            texts.append(item.query)
            owner.append(k)
    flat, lengths = norm.word_hashes(texts)
    starts = np.cumsum(lengths) - lengths
    sequences: list[np.ndarray] = []
    seq_owner: list[int] = []
    t = 0
    for k, item in enumerate(items):
        gold_words = []
        for _ in item.golds:
            words = flat[starts[t] : starts[t] + lengths[t]]
            gold_words.append(words)
            sequences.append(words)
            seq_owner.append(k)
            t += 1
        if item.query is None:
            continue
        query = flat[starts[t] : starts[t] + lengths[t]]
        t += 1
        if settings.find_query_ngrams:
            sequences.append(query)
            seq_owner.append(k)
        if settings.find_overlap_ngrams and n > 1:
            for words in gold_words:
                if len(query) and len(words):
                    sequences.append(np.concatenate([query[-(n - 1) :], words[: n - 1]]))
                    seq_owner.append(k)
    if not sequences:
        return np.zeros(0, np.uint64), np.zeros(0, np.int32)
    seq_lengths = np.fromiter(map(len, sequences), np.int64, len(sequences))
    hashes, seq_of, _ = ngrams(np.concatenate(sequences), seq_lengths, n)
    return hashes, np.asarray(seq_owner, np.int32)[seq_of]


def stop_hashes(path: str, settings: IndexSettings) -> np.ndarray:
    """The n-grams of a stop-list file (one phrase per line), normalised as the documents are."""
    from curate.io.base import open_input

    with open_input(path, "rt") as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
    flat, lengths = settings.normalizer.word_hashes(lines)
    return np.unique(ngrams(flat, lengths, settings.n_grams)[0])


def build_index(specs: list[EvalSpec], settings: IndexSettings, items: list[EvalItem] | None = None) -> NgramIndex:
    """The index of every n-gram of every item of the sets: one (hash, item) row per distinct pair, sorted by
    hash; n-grams of more than max_items_per_ngram items, and those of the stop list, left out."""
    if items is None:
        items = [item for spec in specs for item in items_of(spec)]
    sets = [s.name for s in specs] or sorted({i.set for i in items})
    set_no = {name: k for k, name in enumerate(sets)}
    hashes, owner = item_ngrams(items, settings)
    pairs = np.unique(np.stack([hashes, owner.astype(np.uint64)], axis=1), axis=0) if len(hashes) else None
    if pairs is None:
        hashes, owner = np.zeros(0, np.uint64), np.zeros(0, np.int32)
    else:
        hashes, owner = pairs[:, 0].copy(), pairs[:, 1].astype(np.int32)
    distinct, per_hash = np.unique(hashes, return_counts=True)
    common = per_hash > settings.max_items_per_ngram if settings.max_items_per_ngram else np.zeros(len(distinct), bool)
    stop = np.zeros(len(distinct), bool)
    if settings.stop_ngrams:
        stop = np.isin(distinct, stop_hashes(settings.stop_ngrams, settings)) & ~common
    keep = ~np.repeat(common | stop, per_hash)
    dropped_common, dropped_stop = int(common.sum()), int(stop.sum())
    hashes, owner = hashes[keep], owner[keep]
    stats = {
        "items": len(items),
        "ngrams": int(len(np.unique(hashes))) if len(hashes) else 0,
        "dropped_common": dropped_common,
        "dropped_stop": dropped_stop,
    }
    item_set = np.fromiter((set_no[i.set] for i in items), np.int32, len(items))
    return NgramIndex(hashes, owner, item_set, [i.key for i in items], sets, settings, stats)


def cached_index(specs: list[EvalSpec], settings: IndexSettings, cache_dir: str | None = None) -> NgramIndex:
    """The index, built once per machine: kept under cache_dir (default: $CURATE_CACHE or the temporary folder,
    curate-decontam/) by a key of the settings and the evaluation files' contents, and memory-mapped from there."""
    root = cache_dir or os.environ.get("CURATE_CACHE") or os.path.join(tempfile.gettempdir(), "curate-cache")
    folder = os.path.join(root, "decontam", settings.key(specs))
    if os.path.isfile(os.path.join(folder, "meta.json")):
        return NgramIndex.load(folder, settings)
    index = build_index(specs, settings)
    try:
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        index.save(folder)
    except OSError:  # a read-only cache: the index built here is as good
        return index
    return NgramIndex.load(folder, settings)


def doc_ngrams(texts: Iterable[str], index: NgramIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The n-grams of documents that are in the index: (document, word position, index row) of every hit, and the
    number of words of each document."""
    texts = list(texts)
    flat, lengths = index.settings.normalizer.word_hashes(texts)
    hashes, doc_of, pos = ngrams(flat, lengths, index.settings.n_grams)
    rows = index.lookup(hashes)
    hit = rows >= 0
    return doc_of[hit], pos[hit], rows[hit], lengths


def index_summary(index: NgramIndex) -> dict[str, Any]:
    return {**index.stats, "sets": index.sets, "rows": len(index.hashes), "bytes": index.nbytes}
