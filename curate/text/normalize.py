"""Text normalised for comparison: what exact dedup hashes, and datatrove's simplify_text (what MinHash shingles)."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")


def normalize_for_hash(text: str) -> str:
    """Case-folded, NFKC, whitespace-collapsed text: what exact dedup compares."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


# -- datatrove's simplify_text ----------------------------------------------------------------------------------

# datatrove.utils.text.PUNCTUATION (Apache-2.0), character for character: these become spaces. The C0 and C1
# control characters except tab and line feed are part of it.
_DT_PUNCTUATION = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~"
    + "“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b))
)
_DT_PUNCTUATION_TRANS = str.maketrans(_DT_PUNCTUATION, " " * len(_DT_PUNCTUATION))
# datatrove matches numbers with the `regex` module's \p{Nd}+([.,،٫⎖⎗⎘]{1}\p{Nd}+)?. The stdlib's \d is
# Python's Nd (Unicode 14.0 on 3.11); the ranges added here are the decimal digits Unicode 15.0-17.0 added, which
# `regex` 2026.x already knows, so that the match is the same whatever Python's Unicode version.
_DT_DIGIT = (
    r"[\d\U00010d40-\U00010d49\U000116d0-\U000116e3\U00011bf0-\U00011bf9\U00011de0-\U00011de9\U00011f50-\U00011f59"
    r"\U00016130-\U00016139\U00016d70-\U00016d79\U0001ccf0-\U0001ccf9\U0001e4f0-\U0001e4f9\U0001e5f1-\U0001e5fa]"
)
_DT_NUMBER = re.compile(rf"{_DT_DIGIT}+(?:[.,،٫⎖⎗⎘]{_DT_DIGIT}+)?")


def simplify_text(text: str) -> str:
    """datatrove.utils.text.simplify_text with its default TextNormConfig: lower case, numbers -> '0',
    punctuation -> ' ', whitespace runs -> ' ', combining marks dropped after NFD (what its MinHash shingles)."""
    # Same steps in the same order as datatrove: the order matters ("1|2" -> "0 0", and a mark between two
    # spaces leaves both spaces, since whitespace is collapsed before marks are dropped).
    text = _DT_NUMBER.sub("0", text.lower())
    text = _SPACE.sub(" ", text.translate(_DT_PUNCTUATION_TRANS).strip())
    if not text.isascii():  # ASCII has no combining marks and NFD leaves it as it is: skip the per-character pass
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text.strip()
