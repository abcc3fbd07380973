"""Which tokenizer a language gets (built once per process), user-registered splitters, and the module-level
split_words / split_sentences / count_sentences."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterable

from curate.errors import ConfigError
from curate.text.cjk import CJK_WORD, KO_WORD
from curate.text.languages import CJK_LANGUAGES, DATA, RULE_LANGUAGES, canonical_language
from curate.text.rules import RuleTokenizer
from curate.text.tokenizer import FunctionTokenizer, RegexTokenizer, WordTokenizer

_tokenizers: dict[str, WordTokenizer] = {}
_registered: dict[str, Callable[[str], Iterable[str]]] = {}
_lock = threading.RLock()
# Named word splitters a stage's `word_splitter` may choose: name -> (the languages it serves, description). A
# document in another language keeps its language's default splitter.
SPLITTERS: dict[str, tuple[frozenset[str], str]] = {
    "eojeol": (frozenset({"ko"}), "Korean words as written: whitespace-delimited eojeol, punctuation dropped"),
    "kiwi": (frozenset({"ko"}), "Korean morphemes from Kiwi (pip install 'curate[korean]')"),
}


def register_splitter(language: str, splitter: Callable[[str], Iterable[str]] | None) -> None:
    """Split documents of `language` with `splitter(text) -> words` (e.g. jieba for 'zh', kiwi for 'ko');
    None restores the built-in splitter."""
    lang = canonical_language(language) or language
    with _lock:
        if splitter is None:
            _registered.pop(lang, None)
        else:
            _registered[lang] = splitter
        _tokenizers.pop(lang, None)


def _build(lang: str) -> WordTokenizer:
    if lang in _registered:
        return FunctionTokenizer(lang, _registered[lang])
    if lang in CJK_LANGUAGES:
        return RegexTokenizer(lang, CJK_WORD)
    if lang == "ko":
        return RegexTokenizer(lang, KO_WORD)
    rules = lang if lang in RULE_LANGUAGES else "xx"
    if rules != lang:
        return tokenizer(rules)
    with gzip.open(DATA / f"spacy_{rules}.json.gz", "rt", encoding="utf-8") as f:
        return RuleTokenizer(json.load(f))


def _build_named(lang: str, splitter: str) -> WordTokenizer:
    if splitter == "kiwi":
        from curate.text.korean import kiwi, kiwi_morphemes

        kiwi()  # fail now, with the install hint, rather than at the first document
        return FunctionTokenizer(lang, kiwi_morphemes)
    return RegexTokenizer(lang, KO_WORD)  # eojeol


def check_splitter(splitter: str | None) -> None:
    """Raise ConfigError unless `splitter` is None or a name in SPLITTERS."""
    if splitter is not None and splitter not in SPLITTERS:
        names = ", ".join(sorted(SPLITTERS))
        raise ConfigError(f"unknown word_splitter '{splitter}'", hint=f"the word splitters are: {names} (or null)")


def require_splitter(splitter: str | None) -> None:
    """check_splitter, and that the splitter's package imports (kiwi: kiwipiepy), without building a tokenizer: what
    a stage's preflight() checks on the driver."""
    check_splitter(splitter)
    if splitter == "kiwi":
        from curate.text.korean import require_kiwi

        require_kiwi()


def tokenizer(language: str | None = "en", splitter: str | None = None) -> WordTokenizer:
    """The shared word tokenizer for a language (built once per process): spaCy's rules for en, de, fr, es, it,
    pt, nl, ru, pl; CJK and Korean splitters; spaCy's multi-language rules for other languages. None -> en.
    `splitter` names one of SPLITTERS ('kiwi': Korean morphemes); languages it does not serve keep their default."""
    lang = canonical_language(language) or "en"
    key = lang
    if splitter is not None:
        check_splitter(splitter)
        if lang in SPLITTERS[splitter][0]:
            key = f"{lang}:{splitter}"
    tok = _tokenizers.get(key)
    if tok is None:
        with _lock:
            tok = _tokenizers.get(key)
            if tok is None:
                tok = _build(lang) if key == lang else _build_named(lang, str(splitter))
                _tokenizers[key] = tok
    return tok


def clear_caches() -> None:
    """Forget every tokenizer's chunk cache, vocabulary and memo (benchmarks measure cold starts with this)."""
    with _lock:
        for tok in _tokenizers.values():
            tok._max_vocab, saved = -1, tok._max_vocab
            tok._maybe_reset()
            tok._max_vocab = saved


def split_words(text: str, language: str | None = None, splitter: str | None = None) -> list[str]:
    """Words of `text` (punctuation tokens included), split as `language` (None: English) and `splitter` want."""
    return tokenizer(language, splitter).words(text)


def split_sentences(text: str, language: str | None = None) -> list[str]:
    """Sentences of `text`: spaCy's Sentencizer rules, or 。！？ and line breaks for CJK."""
    return tokenizer(language).split_sentences(text)


def count_sentences(text: str, language: str | None = None) -> int:
    """Number of sentences in `text`: spaCy's Sentencizer rules, or 。！？ and line breaks for CJK."""
    return tokenizer(language).count_sentences(text)
