"""The tokenizer base: whitespace chunks cached, tokens with stable integer ids, a bounded memo of recent texts;
plus tokenizers by regular expression (CJK, Korean) and by a user's function."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import numpy as np

from curate.text.cjk import CJK_SENTENCE
from curate.text.languages import CJK_LANGUAGES

# The base sentence rule: terminal punctuation (of several scripts) followed by whitespace, or line breaks.
GENERIC_SENTENCE_END = re.compile(r"(?<=[.!?։؟۔।॥။።᙮‼‽⁇⁈⁉！．？｡。])\s+|\n+")


class WordTokenizer:
    """Splits text on whitespace, then each chunk into tokens (cached); tokens also get stable integer ids.

    Ids index `strings`. When the vocabulary outgrows `max_vocab` it is reset between calls and `generation`
    increases, so a filter that keeps per-id arrays knows to rebuild them.
    """

    def __init__(self, language: str, max_vocab: int = 2_000_000, memo_chars: int = 64 << 20) -> None:
        self.language = language
        self.strings: list[str] = []
        self.generation = 0
        self._vocab: dict[str, int] = {}
        self._chunks: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
        self._chunk_ids: dict[str, tuple[int, ...]] = {}  # the ids half of _chunks, for lookups done in C
        self._lengths = np.zeros(0, np.int64)
        self._max_vocab = max_vocab
        # Recently tokenized texts -> ids, bounded by characters held (texts + ids, ~one batch or two).
        self._memo: dict[str, np.ndarray] = {}
        self._memo_chars = 0
        self._memo_limit = memo_chars

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """Tokens of one whitespace-free chunk (uncached)."""
        raise NotImplementedError

    def _entry(self, chunk: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        entry = self._chunks.get(chunk)
        if entry is None:
            toks = self.chunk_tokens(chunk)
            vocab = self._vocab
            ids = []
            for t in toks:
                i = vocab.get(t)
                if i is None:
                    i = vocab[t] = len(self.strings)
                    self.strings.append(t)
                ids.append(i)
            entry = self._chunks[chunk] = (toks, tuple(ids))
            self._chunk_ids[chunk] = entry[1]
        return entry

    def _maybe_reset(self) -> None:
        # Only between calls, so ids handed out within one call stay consistent.
        if len(self.strings) > self._max_vocab or len(self._chunks) > 4 * self._max_vocab:
            self._vocab.clear()
            self._chunks.clear()
            self._chunk_ids.clear()
            self.__dict__.get("_sentence_chunks", {}).clear()
            self._memo.clear()
            self._memo_chars = 0
            self.strings = []
            self._lengths = np.zeros(0, np.int64)
            self.generation += 1

    def words(self, text: str) -> list[str]:
        """All tokens of `text` (punctuation included), as datatrove's word_tokenize returns them."""
        self._maybe_reset()
        chunks = self._chunks
        out: list[str] = []
        extend = out.extend
        for chunk in text.split():
            entry = chunks.get(chunk)
            if entry is None:
                entry = self._entry(chunk)
            extend(entry[0])
        return out

    def token_ids(self, text: str) -> np.ndarray:
        """Token ids of `text` (int64, read-only). Recent texts are remembered (up to ~64M characters), so that
        the stages of a fused chain tokenize each document once."""
        ids = self._memo.get(text)
        if ids is not None:
            return ids
        self._maybe_reset()
        parts = text.split()
        # One C-level pass of dict lookups; only chunks never seen before go through the tokenizer.
        found = list(map(self._chunk_ids.get, parts))
        if None in found:
            entry = self._entry
            found = [f if f is not None else entry(c)[1] for f, c in zip(found, parts)]
        ids = np.fromiter(chain.from_iterable(found), dtype=np.int64)
        ids.flags.writeable = False
        memo = self._memo
        cost = len(text) + 8 * len(ids)
        while memo and self._memo_chars + cost > self._memo_limit:
            old_text, old_ids = next(iter(memo.items()))  # oldest first (dicts keep insertion order)
            del memo[old_text]
            self._memo_chars -= len(old_text) + 8 * len(old_ids)
        if cost <= self._memo_limit:
            memo[text] = ids
            self._memo_chars += cost
        return ids

    def lengths(self) -> np.ndarray:
        """Character length of every token id."""
        n = len(self.strings)
        if len(self._lengths) < n:
            new = np.fromiter(map(len, self.strings[len(self._lengths) :]), np.int64, n - len(self._lengths))
            self._lengths = np.concatenate([self._lengths, new])
        return self._lengths

    def id_property(self, cache: dict[str, Any], fn: Callable[[str], Any], dtype: Any = np.bool_) -> np.ndarray:
        """A per-id array of fn(token), kept in `cache` (owned by the caller) and extended as the vocabulary
        grows; rebuilt after a vocabulary reset."""
        if cache.get("generation") != self.generation:
            cache.clear()
            cache["generation"] = self.generation
            cache["values"] = np.zeros(0, dtype)
        values: np.ndarray = cache["values"]
        n = len(self.strings)
        if len(values) < n:
            new = np.fromiter(map(fn, self.strings[len(values) :]), dtype, n - len(values))
            values = cache["values"] = np.concatenate([values, new])
        return values

    def split_sentences(self, text: str) -> list[str]:
        """Sentences; the base rule: terminal punctuation followed by whitespace, or a line break."""
        return [s for s in GENERIC_SENTENCE_END.split(text) if s and not s.isspace()]

    def count_sentences(self, text: str, at_most: int | None = None) -> int:
        """Number of sentences (see split_sentences); `at_most` caps the count (a hint for early exit)."""
        n = len(self.split_sentences(text))
        return n if at_most is None else min(n, at_most)


class RegexTokenizer(WordTokenizer):
    """Tokens are the matches of a regular expression within each whitespace-delimited chunk."""

    def __init__(self, language: str, pattern: re.Pattern[str]) -> None:
        super().__init__(language)
        self._findall = pattern.findall

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        return tuple(self._findall(chunk))

    def split_sentences(self, text: str) -> list[str]:
        if self.language in CJK_LANGUAGES:
            return [s for s in CJK_SENTENCE.findall(text) if not s.isspace()]
        return super().split_sentences(text)


class FunctionTokenizer(WordTokenizer):
    """A user's splitter `fn(text) -> words` for a language; it sees whole texts, not chunks."""

    def __init__(self, language: str, fn: Callable[[str], Iterable[str]]) -> None:
        super().__init__(language)
        self._fn = fn

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        return tuple(self._fn(chunk))

    def words(self, text: str) -> list[str]:
        return list(self._fn(text))

    def token_ids(self, text: str) -> np.ndarray:
        self._maybe_reset()
        vocab = self._vocab
        out = []
        for t in self._fn(text):
            i = vocab.get(t)
            if i is None:
                i = vocab[t] = len(self.strings)
                self.strings.append(t)
            out.append(i)
        ids = np.array(out, dtype=np.int64)
        ids.flags.writeable = False
        return ids
