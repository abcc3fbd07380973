"""Korean word splitting: eojeol (whitespace words, the default) or morphemes through Kiwi (kiwipiepy, Lee 2024,
"Kiwi: Developing a Korean Morphological Analyzer Based on Statistical Language Models"), and Korean stop words."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from curate.errors import MissingDependency, require
from curate.text.languages import DATA

_kiwi: Any = None
_kiwi_lock = threading.Lock()


def kiwi() -> Any:
    """The process's Kiwi analyser (its model ships in the PyPI package kiwipiepy_model; built once, ~1 s)."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                require_kiwi()
                from kiwipiepy import Kiwi

                _kiwi = Kiwi()
    return _kiwi


def require_kiwi() -> None:
    """Raise MissingDependency (with the install hint) unless kiwipiepy imports; builds no analyser."""
    require("kiwipiepy", "kiwipiepy", "korean", what="Korean morpheme splitting")


def kiwi_morphemes(text: str) -> list[str]:
    """Morphemes of `text` as Kiwi analyses them (punctuation tokens included, as datatrove's KiwiTokenizer)."""
    if not text or text.isspace():
        return []
    return [token.form for token in kiwi().tokenize(text)]


def kiwi_available() -> bool:
    """Whether kiwipiepy (and so its bundled model) can be imported."""
    try:
        kiwi()
    except MissingDependency:
        return False
    return True


@lru_cache(maxsize=8)
def stop_words(language: str | None, splitter: str | None = None) -> tuple[str, ...] | None:
    """The shipped stop words of a language and word splitter (curate/data/stopwords_<lang>[_<splitter>].txt,
    sources in each file's header), or None when none ship."""
    name = f"stopwords_{language}{'_' + splitter if splitter and splitter != 'eojeol' else ''}.txt"
    path = DATA / name
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(w.strip() for w in lines if w.strip() and not w.startswith("#"))
