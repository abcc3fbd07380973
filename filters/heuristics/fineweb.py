"""FineWeb's own quality heuristics (Penedo et al. 2024, "The FineWeb Datasets", sec. 3.5).

Parameter names and defaults are datatrove's FineWebQualityFilter, the implementation FineWeb was built with.
"""

from __future__ import annotations

from curate.text import WordTokenizer
from curate_filters.heuristics.common import TERMINAL_PUNCTUATION, WordFilter, duplicates


class FineWebQuality(WordFilter):
    """FineWeb quality filters (Penedo et al. 2024): share of lines ending in punctuation, share of short lines,
    characters in duplicated lines, newlines per word.

    Reasons (datatrove's names): empty, line_punct_ratio, short_line_ratio, char_dup_ratio, list_ratio.
    """

    name = "fineweb_quality"
    reasons = ("empty", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio")
    # Reject when fewer than this fraction of non-empty lines end in terminal punctuation.
    line_punct_thr: float = 0.12
    # Do not reject documents where no line at all ends in punctuation.
    line_punct_exclude_zero: bool = False
    # What counts as terminal punctuation; null: datatrove's TERMINAL_PUNCTUATION (many scripts).
    stop_chars: list[str] | None = None
    # Reject when more than this fraction of non-empty lines have at most short_line_length characters.
    short_line_thr: float = 0.67
    short_line_length: int = 30
    # Reject when more than this fraction of the characters (newlines excluded) are in repeated lines.
    char_duplicates_ratio: float = 0.01
    # Reject when newlines / words exceeds this (list-like pages).
    new_line_ratio: float = 0.3
    # Word splitting rules; null: each document's `language` column.
    language: str | None = "en"
    # A named word splitter for the languages it serves (curate.text.SPLITTERS; 'kiwi': Korean morphemes, needs
    # curate[korean]); null: the language's default (Korean: eojeol).
    word_splitter: str | None = None

    def __post_init__(self) -> None:
        self._stop = tuple(TERMINAL_PUNCTUATION if self.stop_chars is None else self.stop_chars)
        # Single characters (the default): a set lookup on the last character instead of endswith(150 options).
        self._stop_set = frozenset(self._stop) if all(len(c) == 1 for c in self._stop) else None

    def check(self, text: str, tok: WordTokenizer) -> str | None:
        """The reason to reject `text`, or None."""
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return "empty"
        if self._stop_set is not None:
            stop_set = self._stop_set
            ratio = sum(1 for line in lines if line[-1] in stop_set) / len(lines)
        else:
            stop = self._stop
            ratio = sum(1 for line in lines if line.endswith(stop)) / len(lines)
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return "line_punct_ratio"
        short = self.short_line_length
        if sum(1 for line in lines if len(line) <= short) / len(lines) > self.short_line_thr:
            return "short_line_ratio"
        if duplicates(lines)[1] / (len(text) - text.count("\n")) > self.char_duplicates_ratio:
            return "char_dup_ratio"
        n_words = len(tok.token_ids(text))  # >= 1: some line has a non-space character
        if text.count("\n") / n_words > self.new_line_ratio:
            return "list_ratio"
        return None
