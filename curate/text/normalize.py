"""Text normalised for comparison: what exact dedup hashes, and datatrove's simplify_text (what MinHash shingles)."""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

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
_DT_PUNCTUATION_RE = re.compile(f"[{re.escape(_DT_PUNCTUATION)}]")  # ~5x faster than str.translate with a table
# datatrove matches numbers with the `regex` module's \p{Nd}+([.,،٫⎖⎗⎘]{1}\p{Nd}+)?. The stdlib's \d is
# Python's Nd (Unicode 14.0 on 3.11); the ranges added here are the decimal digits Unicode 15.0-17.0 added, which
# `regex` 2026.x already knows, so that the match is the same whatever Python's Unicode version.
_DT_DIGIT = (
    r"[\d\U00010d40-\U00010d49\U000116d0-\U000116e3\U00011bf0-\U00011bf9\U00011de0-\U00011de9\U00011f50-\U00011f59"
    r"\U00016130-\U00016139\U00016d70-\U00016d79\U0001ccf0-\U0001ccf9\U0001e4f0-\U0001e4f9\U0001e5f1-\U0001e5fa]"
)
_DT_NUMBER = re.compile(rf"{_DT_DIGIT}+(?:[.,،٫⎖⎗⎘]{_DT_DIGIT}+)?")
_DT_NUMBER_BMP = re.compile(r"\d+(?:[.,،٫⎖⎗⎘]\d+)?")  # the same on text without characters above U+FFFF


def simplify_text(text: str) -> str:
    """datatrove.utils.text.simplify_text with its default TextNormConfig: lower case, numbers -> '0',
    punctuation -> ' ', whitespace runs -> ' ', combining marks dropped after NFD (what its MinHash shingles)."""
    # Same steps in the same order as datatrove: the order matters ("1|2" -> "0 0", and a mark between two
    # spaces leaves both spaces, since whitespace is collapsed before marks are dropped).
    text = text.lower()
    ascii_only = text.isascii()
    # `re` tests a character class holding ranges above U+FFFF slowly: those patterns run only on text that has
    # such characters (lower case and NFD never take a character of the BMP above it).
    astral = not ascii_only and max(text) > "\uffff"
    text = (_DT_NUMBER if astral else _DT_NUMBER_BMP).sub("0", text)
    text = _SPACE.sub(" ", _DT_PUNCTUATION_RE.sub(" ", text).strip())
    if not ascii_only:  # ASCII has no combining marks and NFD leaves it as it is
        bmp, above = _marks()
        text = bmp.sub("", unicodedata.normalize("NFD", text))
        if astral:
            text = above.sub("", text)
    return text.strip()


@cache
def _marks() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Every character of category Mn (nonspacing marks), from this Python's unicodedata (what datatrove drops,
    character by character), as character classes: one C-level pass instead of a call per character. Those of
    the Basic Multilingual Plane and those above it apart, since a class with astral ranges is ~80x slower in
    `re`. Built on first use (~0.2 s)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) == "Mn":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))

    def char_class(rs: list[tuple[int, int]]) -> re.Pattern[str]:
        parts = [re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in rs]
        return re.compile("[" + "".join(parts) + "]+" if parts else "(?!)")

    return char_class([r for r in ranges if r[0] <= 0xFFFF]), char_class([r for r in ranges if r[0] > 0xFFFF])
