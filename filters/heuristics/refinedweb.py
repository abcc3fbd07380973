"""RefinedWeb's line-wise corrections (Penedo et al. 2023, "The RefinedWeb Dataset for Falcon LLM", sec. 3.2 and
appendix G.2): drop lines that are mostly uppercase, only numbers, social-media counters or a single word; cut
boilerplate phrases from short lines; reject the document when the corrections removed more than 5% of its words.

The paper lists the rules but not its phrase patterns; ours are below (BOILERPLATE_*), and every threshold is a
parameter. datatrove has no equivalent block, so there is no parity figure for this stage.
"""

from __future__ import annotations

import re

import pyarrow as pa

from curate.inflight import tracked
from curate.stage import Mapper
from curate_filters.heuristics.common import texts

_COUNTER_UNITS = (
    "likes?|shares?|comments?|views?|retweets?|tweets?|followers?|following|reviews?|repl(?:y|ies)|votes?|points?|"
    "reactions?|subscribers?|members?|posts?|pins?|repins?|reads?|downloads?|answers?|clicks?|hits?|stars?|forks?"
)
COUNTER = re.compile(rf"^[\d][\d,.]*\s*[kKmM]?\+?\s+(?:{_COUNTER_UNITS})$", re.IGNORECASE)
NUMERIC = re.compile(r"^[\d\s.,:;/+\-%()#]*\d[\d\s.,:;/+\-%()#]*$")
# Phrases cut from short lines (<= max_edit_words words): at the start, at the end, anywhere.
BOILERPLATE_START = re.compile(
    r"^\s*(?:sign[ -]?in|log[ -]?in|sign[ -]?up|register|subscribe|share(?: this)?(?: on \w+)?|tweet|pin it|"
    r"print(?: this)?|e-?mail(?: this)?|posted by|written by|skip to (?:main )?content)\b[\s:|,.\-]*",
    re.IGNORECASE,
)
BOILERPLATE_END = re.compile(
    r"[\s|,\-]*(?:(?:read more|continue reading|see more|show more|learn more|click here)\s*(?:\.\.\.|…|»|>>|→)?"
    r"|(?:\.\.\.|…)\s*more|\bmore\s*(?:\.\.\.|…|»|>>|→))\s*$",
    re.IGNORECASE,
)
BOILERPLATE_ANYWHERE = re.compile(
    r"\b(?:\d+\s+items? in (?:your )?(?:shopping )?cart|add to (?:cart|basket|wish ?list)|back to top|"
    r"all rights reserved|view cart|checkout)\b",
    re.IGNORECASE,
)


class RefinedWebLines(Mapper):
    """RefinedWeb line-wise corrections (Penedo et al. 2023, appendix G.2), then reject the document if more than
    max_removed_words_ratio of its words were removed. Reason: too_many_words_removed; removed and edited lines
    are counters (lines_removed_<why>, lines_edited)."""

    name = "refinedweb_lines"
    reasons = ("too_many_words_removed",)
    # Drop lines whose letters are more than this fraction uppercase (navigation, shouting); null disables.
    max_uppercase_ratio: float | None = 0.5
    # Drop lines made only of digits and number punctuation.
    remove_numeric_lines: bool = True
    # Drop social-media counters ("3 likes", "1.2k shares").
    remove_counter_lines: bool = True
    # Drop lines of a single word.
    remove_single_word_lines: bool = True
    # Cut boilerplate phrases (sign in, read more, items in cart) from lines of at most this many words; 0 disables.
    max_edit_words: int = 10
    # Reject the document when the corrections removed more than this fraction of its words (the paper: 5%).
    max_removed_words_ratio: float = 0.05

    def map_batch(self, batch: pa.Table) -> tuple[pa.Table, list[str | None]]:
        counts = dict.fromkeys(
            ("lines_removed_uppercase", "lines_removed_numeric", "lines_removed_counter",
             "lines_removed_single_word", "lines_edited"),
            0,
        )  # fmt: skip
        out: list[str] = []
        reasons: list[str | None] = []
        for text in tracked(texts(batch)):
            reason, new = self.correct(text, counts)
            reasons.append(reason)
            out.append(text if reason else new)
        for key, n in counts.items():
            if n:
                self.count(key, n)
        idx = batch.schema.get_field_index("text")
        return batch.set_column(idx, "text", pa.array(out, pa.string())), reasons

    def correct(self, text: str, counts: dict[str, int]) -> tuple[str | None, str]:
        """(reason or None, corrected text)."""
        total = removed = 0
        kept: list[str] = []
        for line in text.split("\n"):
            words = line.split()
            n = len(words)
            if n == 0:
                kept.append(line)
                continue
            total += n
            why = self._drop(line, words)
            if why:
                counts[f"lines_removed_{why}"] += 1
                removed += n
                continue
            if self.max_edit_words and n <= self.max_edit_words:
                edited = self._edit(line)
                if edited is not line:
                    counts["lines_edited"] += 1
                    left = len(edited.split())
                    removed += n - left
                    if left == 0:
                        continue
                    line = edited
            kept.append(line)
        if total and removed / total > self.max_removed_words_ratio:
            return "too_many_words_removed", text
        if not removed:
            return None, text
        return None, "\n".join(kept).strip("\n")

    def _drop(self, line: str, words: list[str]) -> str | None:
        stripped = line.strip()
        if self.remove_counter_lines and stripped[0].isdigit() and COUNTER.match(stripped):
            return "counter"
        if self.remove_numeric_lines and NUMERIC.match(stripped):
            return "numeric"
        if self.remove_single_word_lines and len(words) == 1:
            return "single_word"
        if self.max_uppercase_ratio is not None:
            letters = [c for c in stripped if c.isalpha()]
            if letters and sum(1 for c in letters if c.isupper()) / len(letters) > self.max_uppercase_ratio:
                return "uppercase"
        return None

    def _edit(self, line: str) -> str:
        new = BOILERPLATE_START.sub("", line, count=1)
        new = BOILERPLATE_END.sub("", new, count=1)
        new = BOILERPLATE_ANYWHERE.sub("", new)
        return line if new == line else new.strip()
