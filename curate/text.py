"""Text helpers shared by stages: word splitting (language-aware), normalisation for hashing."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*", re.UNICODE)
_SPACE = re.compile(r"\s+")


def split_words(text: str, language: str | None = None) -> list[str]:
    """Words of `text`. Placeholder splitter on word characters; language-aware splitting lives here too."""
    return _WORD.findall(text)


def normalize_for_hash(text: str) -> str:
    """Case-folded, NFKC, whitespace-collapsed text: what exact dedup compares."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
