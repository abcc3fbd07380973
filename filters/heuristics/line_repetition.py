"""The `line_repetition` stage: LLaMA 3's line-level repetition removal (Dubey et al. 2024, "The Llama 3 Herd of
Models", sec. 3.1.1: "we use duplicated n-gram coverage ratio (Rae et al., 2021) to remove lines that consist of
repeated content such as logging or error messages. Those lines could be very long and unique, hence cannot be
filtered by line-dedup").

Gopher's duplicated n-gram rule (Rae et al. 2021, table A1; datatrove's find_all_duplicate) applied to each line on
its own instead of to the whole document: a line of at least `min_words` whitespace words is removed when the
characters inside its n-grams that repeat an earlier n-gram of the same line exceed the fraction given for any n in
`dup_n_grams` (Gopher's defaults: 0.15 of the characters for 5-grams down to 0.10 for 10-grams). The paper gives
neither the n nor the thresholds; we take Gopher's, whose measure it names.

The document keeps its other lines (and their newlines); one left with fewer than `min_chars` non-space characters is
rejected as `too_little_left` and keeps its text as it came. The lines removed stay beside the document in
`line_repetition_cut` (`curate explain` shows them). Counters: lines_removed, chars_removed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from curate.inflight import tracked
from curate.stage import Mapper
from curate_filters.dedup.lines import CUT_TEXT, TOO_LITTLE_LEFT, cut_column, non_space_chars, with_cut_text
from curate_filters.heuristics.common import texts
from curate_filters.heuristics.gopher import _NGrams

GOPHER_DUP_N_GRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def repeated_line(line: str, rules: list[tuple[int, float]], min_words: int) -> bool:
    """True when the line's duplicated n-gram coverage exceeds a rule's fraction (Gopher's measure, in the line)."""
    words = line.split()
    if len(words) < min_words:
        return False
    codes: dict[str, int] = {}
    ids = np.fromiter((codes.setdefault(w, len(codes)) for w in words), np.int64, len(words))
    lengths = np.zeros(len(codes), np.int64)
    for w, i in codes.items():
        lengths[i] = len(w)
    grams = _NGrams(ids, lengths)
    n_chars = len(line.strip())
    for n, frac in rules:
        if grams.m < n:
            continue
        if grams.duplicated_chars(n, n_chars, frac) / n_chars > frac:
            return True
    return False


class LineRepetition(Mapper):
    """Remove lines made of repeated content (logs, error messages, repeated phrases) by Gopher's duplicated
    n-gram coverage measured within each line (LLaMA 3, sec. 3.1.1). A document left with fewer than `min_chars`
    non-space characters is rejected as `too_little_left`."""

    name = "line_repetition"
    reasons = (TOO_LITTLE_LEFT,)
    output_columns = {cut_column("line_repetition"): CUT_TEXT}

    # (n, max fraction of a line's characters inside n-grams that repeat an earlier one of the line): Gopher's table.
    dup_n_grams: tuple[tuple[float, ...], ...] = GOPHER_DUP_N_GRAMS
    # Lines with fewer whitespace words are never judged (a short line has too few n-grams to repeat).
    min_words: int = 10
    # A document that lost lines and is left with fewer non-space characters than this is rejected.
    min_chars: int = 50
    # Keep the lines removed in the column `line_repetition_cut` (what `curate explain` shows).
    record_cuts: bool = True

    def __post_init__(self) -> None:
        try:
            self._rules = [(int(n), float(f)) for n, f in self.dup_n_grams]
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"line_repetition: dup_n_grams must be pairs [n, fraction], got {self.dup_n_grams!r}",
                hint="e.g. dup_n_grams: [[5, 0.15], [10, 0.1]]",
            ) from e
        if not self._rules or any(n < 2 or not 0 < f < 1 for n, f in self._rules):
            raise ConfigError(
                f"line_repetition: each dup_n_grams pair needs n >= 2 and 0 < fraction < 1, got {self.dup_n_grams!r}"
            )
        if self.min_words < 2 or self.min_chars < 0:
            raise ConfigError(
                f"line_repetition: min_words must be at least 2 and min_chars at least 0, got {self.min_words}, "
                f"{self.min_chars}"
            )

    def map_batch(self, batch: pa.Table) -> tuple[pa.Table, list[str | None]]:
        out: list[str] = []
        reasons: list[str | None] = []
        pieces: list[list[str] | None] = []
        lines_removed = chars_removed = 0
        for text in tracked(texts(batch)):
            lines = text.split("\n")
            gone = [i for i, line in enumerate(lines) if repeated_line(line, self._rules, self.min_words)]
            if not gone:
                out.append(text)
                reasons.append(None)
                pieces.append(None)
                continue
            drop = set(gone)
            left = "\n".join(line for i, line in enumerate(lines) if i not in drop)
            cut = [lines[i] for i in gone]
            lines_removed += len(cut)
            chars_removed += sum(len(c) for c in cut)
            pieces.append(cut if self.record_cuts else None)
            if non_space_chars(left) < self.min_chars:
                reasons.append(TOO_LITTLE_LEFT)
                out.append(text)
            else:
                reasons.append(None)
                out.append(left)
        if lines_removed:
            self.count("lines_removed", lines_removed)
            self.count("chars_removed", chars_removed)
        idx = batch.schema.get_field_index("text")
        batch = batch.set_column(idx, "text", pa.array(out, pa.string()))
        return with_cut_text(batch, cut_column(self.name), pieces), reasons
