"""Text helpers shared by stages: language-aware word and sentence splitting, normalisation for hashing.

Word splitting for space-delimited languages reproduces spaCy's rule tokenizer (what datatrove's Gopher, C4 and
FineWeb filters count words with: `spacy.blank(lang)` plus its sentencizer) in pure Python from exported rules
(prefix, suffix and infix patterns, URL pattern, special cases). Work is cached per whitespace-delimited chunk: web
text is Zipfian, so almost every chunk is a cache hit and a document costs one `str.split()` and a dict lookup per
chunk, where spaCy builds a Doc of C structs per document. Chinese and Japanese (no spaces) are split into Han
characters and kana/Latin/digit runs, Korean into space-delimited eojeol without punctuation.
`register_splitter()` plugs in another splitter for a language (jieba, a morphological analyser); a stage's
`word_splitter` picks a named one (SPLITTERS: 'kiwi', Korean morphemes through kiwipiepy). `stop_words()` gives the
shipped stop-word list of a language and splitter (Korean).

Tokenizers also hand out integer token ids (`token_ids()`), so that filters can count n-grams with numpy.

Modules: `languages` (codes), `tokenizer` (the cached, id-handing base and the regex / function tokenizers),
`rules` (spaCy's tokenizer and sentencizer over exported rules; regenerate those with tools/export_spacy_rules.py),
`cjk` (scripts without spaces, Korean), `korean` (Kiwi morphemes, stop words), `splitters` (which tokenizer a
language gets), `normalize` (for hashing and MinHash).
"""

from __future__ import annotations

from curate.text.korean import kiwi_available, stop_words
from curate.text.languages import CJK_LANGUAGES, DATA, RULE_LANGUAGES, canonical_language
from curate.text.normalize import normalize_for_hash, simplify_text
from curate.text.rules import RuleTokenizer, is_punct
from curate.text.splitters import (
    SPLITTERS,
    check_splitter,
    clear_caches,
    count_sentences,
    register_splitter,
    require_splitter,
    split_sentences,
    split_words,
    tokenizer,
)
from curate.text.tokenizer import FunctionTokenizer, RegexTokenizer, WordTokenizer

__all__ = [
    "CJK_LANGUAGES",
    "DATA",
    "RULE_LANGUAGES",
    "SPLITTERS",
    "FunctionTokenizer",
    "RegexTokenizer",
    "RuleTokenizer",
    "WordTokenizer",
    "canonical_language",
    "check_splitter",
    "clear_caches",
    "count_sentences",
    "is_punct",
    "kiwi_available",
    "normalize_for_hash",
    "register_splitter",
    "require_splitter",
    "simplify_text",
    "split_sentences",
    "split_words",
    "stop_words",
    "tokenizer",
]
