"""Gopher's repetition and quality heuristics (Rae et al. 2021, "Scaling Language Models", appendix A).

Parameter names and defaults are datatrove's (GopherRepetitionFilter, GopherQualityFilter), which are the paper's
table A1 values, so a datatrove pipeline ports by renaming the step. Words are counted as datatrove counts them
(spaCy's rules, see curate.text); n-grams are counted on integer token ids with numpy instead of joined strings.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any, ClassVar

import numpy as np

from curate.text import WordTokenizer, canonical_language
from curate.text import stop_words as shipped_stop_words
from curate_filters.heuristics.common import PUNCTUATION_SET, WordFilter, duplicates

_PARAGRAPHS = re.compile(r"\n{2,}")


def _split_lines(text: str) -> list[str]:
    """re.split(r"\n+", text) without the regex: empty pieces dropped except at either end."""
    parts = text.split("\n")
    if len(parts) <= 2:
        return parts
    inner = [p for p in parts[1:-1] if p]
    return [parts[0], *inner, parts[-1]]


# datatrove's reason for each of ours (bench/parity_datatrove.py compares them).
DATATROVE_REPETITION_REASONS = {"empty": "empty"}  # the others have the same names in both


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dense group id of every key, first position of every group); np.unique(return_index, return_inverse)
    without its stable sort, which costs several times an unstable one on long documents."""
    order = np.argsort(keys)
    sorted_keys = keys[order]
    new = np.empty(len(keys), bool)
    new[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    groups = np.empty(len(keys), np.int64)
    groups[order] = np.cumsum(new) - 1
    first = np.minimum.reduceat(order, np.flatnonzero(new)) if len(keys) else order
    return groups, first


class _NGrams:
    """n-gram statistics of one document's token ids, computed lazily and only as far as a decision needs: most
    documents are decided by cheap upper bounds derived from the bigrams alone."""

    def __init__(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        self.ids = ids
        self.m = len(ids)
        self.cum = np.zeros(self.m + 1, np.int64)
        np.cumsum(lengths[ids], out=self.cum[1:])
        self._groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._bigram_counts: np.ndarray | None = None
        self._bigram_repeat: np.ndarray | None = None
        self._cand: tuple[int, np.ndarray] | None = None

    def char_lens(self, n: int) -> np.ndarray:
        """Characters of the n-gram at every position, without separators."""
        return self.cum[n:] - self.cum[:-n]

    def groups(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(group id of the n-gram at every position, first position of every group). Exact, no hashing: the
        (n-1)-gram group and the next token id are packed into one int64 and renumbered densely."""
        if n not in self._groups:
            previous = self.ids if n == 2 else self.groups(n - 1)[0]
            keys = previous[: self.m - n + 1] * (int(self.ids.max()) + 1) + self.ids[n - 1 :]
            self._groups[n] = _group(keys)
        return self._groups[n]

    def bigram_counts(self) -> np.ndarray:
        """How often the bigram at each position occurs in the document."""
        if self._bigram_counts is None:
            groups, _ = self.groups(2)
            self._bigram_counts = np.bincount(groups)[groups]
        return self._bigram_counts

    def bigram_repeat(self) -> np.ndarray:
        """True where the bigram at that position occurred earlier."""
        if self._bigram_repeat is None:
            groups, first = self.groups(2)
            self._bigram_repeat = first[groups] != np.arange(len(groups))
        return self._bigram_repeat

    def span_lens(self, n: int) -> np.ndarray:
        """For every bigram position p: characters of the (at most) n tokens from p, without separators; an upper
        bound on the length of every k-gram (k <= n) that starts there."""
        ends = np.arange(n, n + self.m - 1)
        np.minimum(ends, self.m, out=ends)
        return self.cum[ends] - self.cum[: self.m - 1]

    def all_top_within(self, ns: list[int], n_chars: int, frac: float) -> bool:
        """True if no n-gram (n in ns, all >= 3) can cover more than `frac` of the text: one bound for all n."""
        big = max(ns)
        bound = int((self.bigram_counts() * (self.span_lens(big) + big - 1)).max())
        return bound / n_chars <= frac

    def all_duplicated_within(self, ns: list[int], n_chars: int, frac: float) -> bool:
        """True if the repeated n-grams (n in ns) cannot cover more than `frac` of the text, for every n at once:
        the positions where a k-gram may repeat (k = min ns) include those of every longer n-gram."""
        small, big = min(ns), max(ns)
        cand = self._candidates(small)
        bound = int(self.span_lens(big)[: len(cand)][cand].sum())
        return bound / n_chars <= frac

    def _candidates(self, n: int) -> np.ndarray:
        """Positions where an n-gram may repeat an earlier one: a repeated n-gram starts n-1 repeated bigrams.
        Built from the previous n's array with one more shifted AND (checks usually go n = 5, 6, ..., 10)."""
        repeat = self.bigram_repeat()
        m = self.m - n + 1
        k, cand = self._cand if self._cand is not None and self._cand[0] < n else (2, repeat)
        cand = cand[:m]
        for j in range(k, n):  # AND in the bigrams at offsets k-1 .. n-2
            cand = cand & repeat[j - 1 : j - 1 + m]
        self._cand = (n, cand)
        return cand

    def top_chars(self, n: int, n_chars: int, frac: float) -> int:
        """datatrove's find_top_duplicate: characters covered by the most frequent n-gram (' '-joined length times
        count; ties go to the n-gram seen first, as Counter.most_common). Returns an upper bound instead when even
        that stays within `frac` of the text: an n-gram occurs at most as often as the bigram it starts with."""
        lens = self.char_lens(n) + (n - 1)
        if n > 2:
            bound = int((self.bigram_counts()[: len(lens)] * lens).max())
            if bound / n_chars <= frac:
                return bound
        groups, _ = self.groups(n)
        counts = np.bincount(groups)
        top = counts.max()
        first = int(np.argmax(counts[groups] == top))
        return int(lens[first]) * int(top)

    def duplicated_chars(self, n: int, n_chars: int, frac: float) -> int:
        """datatrove's find_all_duplicate: scan left to right; an n-gram seen before counts its characters and the
        scan jumps past it. Returns an upper bound instead when even that stays within `frac` of the text."""
        m = self.m - n + 1
        lens = self.char_lens(n)
        bound = int(lens[self._candidates(n)].sum())
        if bound / n_chars <= frac:
            return bound
        groups, first = self.groups(n)
        # The scan, visiting only positions whose n-gram occurred before (all others are simply added to `seen`):
        # a first occurrence counts as seen unless a jump skipped it.
        g = groups.tolist()
        first_of = first.tolist()
        lens_l = lens.tolist()
        seen: set[int] = set()
        skip_starts: list[int] = []  # jumps skip positions [start, start + n - 2]
        jump_end = 0
        repeated = 0
        for p in np.flatnonzero(first[groups] != np.arange(m)).tolist():
            if p < jump_end:
                continue
            key = g[p]
            if key not in seen:
                f = first_of[key]
                i = bisect_right(skip_starts, f) - 1
                seen.add(key)
                if i >= 0 and f <= skip_starts[i] + n - 2:
                    continue  # its first occurrence was skipped: this one is added, not counted
            repeated += lens_l[p]
            skip_starts.append(p + 1)
            jump_end = p + n
        return repeated


class GopherRepetition(WordFilter):
    """Gopher repetition removal (Rae et al. 2021, table A1): duplicate lines/paragraphs, top and duplicated n-grams.

    Reasons (datatrove's names): empty, dup_para_frac, dup_para_char_frac, dup_line_frac, dup_line_char_frac,
    top_{n}_gram, duplicated_{n}_n_grams. A null or 0 threshold disables its check.
    """

    name = "gopher_repetition"
    reasons = (
        "empty",
        "dup_para_frac",
        "dup_para_char_frac",
        "dup_line_frac",
        "dup_line_char_frac",
        "top_{n}_gram",
        "duplicated_{n}_n_grams",
    )
    # Fraction of paragraphs / lines that repeat an earlier one.
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    # Fraction of the text's characters inside repeated lines / paragraphs.
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    # (n, max fraction of characters covered by the most frequent n-gram).
    top_n_grams: tuple[tuple[float, ...], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    # (n, max fraction of characters inside n-grams that repeat an earlier one).
    dup_n_grams: tuple[tuple[float, ...], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    # Word splitting rules; null: each document's `language` column (set by fasttext_langid).
    language: str | None = "en"
    # A named word splitter for the languages it serves (curate.text.SPLITTERS; 'kiwi': Korean morphemes, needs
    # curate[korean]); null: the language's default (Korean: eojeol).
    word_splitter: str | None = None

    def __post_init__(self) -> None:
        self._top = [(int(n), float(f)) for n, f in self.top_n_grams]
        self._dup = [(int(n), float(f)) for n, f in self.dup_n_grams]

    def check(self, text: str, tok: WordTokenizer) -> str | None:
        """The reason to reject `text`, or None."""
        if not text:
            return "empty"
        n_chars = len(text)
        stripped = text.strip()
        # Extracted text rarely has blank lines: then the whole text is one paragraph, without a regex pass.
        paragraphs = _PARAGRAPHS.split(stripped) if "\n\n" in stripped else [stripped]
        dups, dup_chars = duplicates(paragraphs)
        if self.dup_para_frac and dups / len(paragraphs) > self.dup_para_frac:
            return "dup_para_frac"
        if self.dup_para_char_frac and dup_chars / n_chars > self.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = _split_lines(text)
        dups, dup_chars = duplicates(lines)
        if self.dup_line_frac and dups / len(lines) > self.dup_line_frac:
            return "dup_line_frac"
        if self.dup_line_char_frac and dup_chars / n_chars > self.dup_line_char_frac:
            return "dup_line_char_frac"
        if not self._top and not self._dup:
            return None
        ids = tok.token_ids(text)
        grams = _NGrams(ids, tok.lengths())
        top = [(n, f) for n, f in self._top if grams.m >= n]
        dup = [(n, f) for n, f in self._dup if grams.m >= n]
        # Most documents are far from every threshold: one bound clears all the longer top n-grams (n >= 3),
        # another all the duplicated n-grams, before any per-n counting.
        longer = [n for n, _ in top if n >= 3]
        if longer and grams.all_top_within(longer, n_chars, min(f for n, f in top if n >= 3)):
            top = [(n, f) for n, f in top if n < 3]
        if dup and min(n for n, _ in dup) >= 2 and grams.all_duplicated_within([n for n, _ in dup], n_chars,
                                                                              min(f for _, f in dup)):  # fmt: skip
            dup = []
        for n, frac in top:
            if grams.top_chars(n, n_chars, frac) / n_chars > frac:
                return f"top_{n}_gram"
        for n, frac in dup:
            if grams.duplicated_chars(n, n_chars, frac) / n_chars > frac:
                return f"duplicated_{n}_n_grams"
        return None


STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher's list (Rae et al. 2021, A.1)

# datatrove's reason for each of ours (bench/parity_datatrove.py compares them).
DATATROVE_QUALITY_REASONS = {
    "too_few_words": "gopher_short_doc",
    "too_many_words": "gopher_long_doc",
    "mean_word_length_too_short": "gopher_below_avg_threshold",
    "mean_word_length_too_long": "gopher_above_avg_threshold",
    "too_many_hashes": "gopher_too_many_hashes",
    "too_many_ellipsis": "gopher_too_many_ellipsis",
    "too_many_bullet_lines": "gopher_too_many_bullets",
    "too_many_ellipsis_lines": "gopher_too_many_end_ellipsis",
    "too_few_alpha_words": "gopher_below_alpha_threshold",
    "too_few_stop_words": "gopher_enough_stop_words",
}


def _is_symbol_word(token: str) -> bool:
    return all(ch in PUNCTUATION_SET for ch in token)


def _has_alpha(token: str) -> bool:
    return any(c.isalpha() for c in token)


class GopherQuality(WordFilter):
    """Gopher quality heuristics (Rae et al. 2021, appendix A.1): word counts and lengths, symbols, bullets,
    ellipses, alphabetic words, stop words. Defaults are the published ones. min_alpha_words_ratio is datatrove's
    max_non_alpha_words_ratio (a minimum despite that name), which is still accepted.

    Reasons (datatrove's in brackets): too_few_words (gopher_short_doc), too_many_words (gopher_long_doc),
    mean_word_length_too_short/long (gopher_below/above_avg_threshold), too_many_hashes, too_many_ellipsis,
    too_many_bullet_lines (gopher_too_many_bullets), too_many_ellipsis_lines (gopher_too_many_end_ellipsis),
    too_few_alpha_words (gopher_below_alpha_threshold), too_few_stop_words (gopher_enough_stop_words).
    Word counts and mean length leave out symbol-only tokens; the ratios divide by all tokens, as datatrove does.
    """

    name = "gopher_quality"
    reasons = tuple(DATATROVE_QUALITY_REASONS)
    # Old (datatrove) parameter names a pipeline file may still use -> the current ones.
    aliases: ClassVar[dict[str, str]] = {"max_non_alpha_words_ratio": "min_alpha_words_ratio"}
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    # Max ('#' count) / words, and max ('...' + '…' count) / words.
    max_symbol_word_ratio: float | None = 0.1
    # Max fraction of lines starting with a bullet ('•' or '-').
    max_bullet_lines_ratio: float | None = 0.9
    # Max fraction of lines ending with an ellipsis.
    max_ellipsis_lines_ratio: float | None = 0.3
    # Min fraction of words with an alphabetic character (the paper's 80%). datatrove calls this
    # max_non_alpha_words_ratio although it is a minimum; that name is still accepted (see `aliases`).
    min_alpha_words_ratio: float | None = 0.8
    # At least this many distinct stop words must occur.
    min_stop_words: int | None = 2
    # Stop words (case-sensitive, as in datatrove); null: the list shipped for `language` and `word_splitter`
    # (Korean: curate/data/stopwords_ko*.txt), else Gopher's English list.
    stop_words: list[str] | None = None
    # Word splitting rules; null: each document's `language` column (set by fasttext_langid).
    language: str | None = "en"
    # A named word splitter for the languages it serves (curate.text.SPLITTERS; 'kiwi': Korean morphemes, needs
    # curate[korean]); null: the language's default (Korean: eojeol).
    word_splitter: str | None = None

    def __post_init__(self) -> None:
        shipped = shipped_stop_words(canonical_language(self.language), self.word_splitter) if self.language else None
        self._stop = frozenset(self.stop_words if self.stop_words is not None else shipped or STOP_WORDS)
        self._symbol: dict[int, dict[str, Any]] = {}
        self._alpha: dict[int, dict[str, Any]] = {}
        self._stopword: dict[int, dict[str, Any]] = {}

    def _props(self, tok: WordTokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        key = id(tok)
        symbol = tok.id_property(self._symbol.setdefault(key, {}), _is_symbol_word)
        alpha = tok.id_property(self._alpha.setdefault(key, {}), _has_alpha)
        stop = tok.id_property(self._stopword.setdefault(key, {}), self._stop.__contains__)
        return symbol, alpha, stop, tok.lengths()

    def check(self, text: str, tok: WordTokenizer) -> str | None:
        """The reason to reject `text`, or None."""
        ids = tok.token_ids(text)
        symbol, alpha, stop, lengths = self._props(tok)
        n_words = len(ids)
        word_ids = ids[~symbol[ids]]
        n_non_symbol = len(word_ids)
        if self.min_doc_words and n_non_symbol < self.min_doc_words:
            return "too_few_words"
        if self.max_doc_words and n_non_symbol > self.max_doc_words:
            return "too_many_words"
        # An empty document has no mean word length: datatrove's np.mean([]) is nan and passes both checks.
        avg = float(lengths[word_ids].mean()) if n_non_symbol else float("nan")
        if self.min_avg_word_length and avg < self.min_avg_word_length:
            return "mean_word_length_too_short"
        if self.max_avg_word_length and avg > self.max_avg_word_length:
            return "mean_word_length_too_long"
        if n_words == 0:
            return "too_few_words"  # every ratio below divides by the word count (datatrove raises here)
        if self.max_symbol_word_ratio:
            if text.count("#") / n_words > self.max_symbol_word_ratio:
                return "too_many_hashes"
            if (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
                return "too_many_ellipsis"
        lines = text.splitlines()
        if self.max_bullet_lines_ratio:
            bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
            if bullets / len(lines) > self.max_bullet_lines_ratio:
                return "too_many_bullet_lines"
        if self.max_ellipsis_lines_ratio:
            ellipsis = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if ellipsis / len(lines) > self.max_ellipsis_lines_ratio:
                return "too_many_ellipsis_lines"
        if self.min_alpha_words_ratio:
            if int(alpha[ids].sum()) / n_words < self.min_alpha_words_ratio:
                return "too_few_alpha_words"
        if self.min_stop_words:
            found = ids[stop[ids]]
            if len(found) < self.min_stop_words or len(np.unique(found)) < self.min_stop_words:
                return "too_few_stop_words"
        return None
