"""Text helpers shared by stages: language-aware word and sentence splitting, normalisation for hashing.

Word splitting for space-delimited languages reproduces spaCy's rule tokenizer (what datatrove's Gopher, C4 and
FineWeb filters count words with: `spacy.blank(lang)` plus its sentencizer) in pure Python from exported rules
(prefix, suffix and infix patterns, URL pattern, special cases). Work is cached per whitespace-delimited chunk: web
text is Zipfian, so almost every chunk is a cache hit and a document costs one `str.split()` and a dict lookup per
chunk, where spaCy builds a Doc of C structs per document. Chinese and Japanese (no spaces) are split into Han
characters and kana/Latin/digit runs, Korean into space-delimited eojeol without punctuation.
`register_splitter()` plugs in another splitter for a language (jieba, a morphological analyser, kiwi).

Tokenizers also hand out integer token ids (`token_ids()`), so that filters can count n-grams with numpy.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

_SPACE = re.compile(r"\s+")
DATA = Path(__file__).resolve().parent / "data"

# ISO 639-3 spellings a user may write (datatrove's Languages uses "eng") -> the 639-1 codes used here.
_ALIASES = {
    "eng": "en", "deu": "de", "fra": "fr", "spa": "es", "ita": "it", "por": "pt", "nld": "nl", "rus": "ru",
    "pol": "pl", "zho": "zh", "cmn": "zh", "jpn": "ja", "kor": "ko",
}  # fmt: skip
CJK_LANGUAGES = frozenset({"zh", "ja", "yue", "wuu", "lzh"})
# Languages whose spaCy rules ship in curate/data (spacy_<code>.json.gz); other space-delimited languages use
# spaCy's multi-language rules ('xx'), which is also datatrove's proxy for most languages.
RULE_LANGUAGES = frozenset({"en", "xx", "de", "fr", "es", "it", "pt", "nl", "ru", "pl"})


def canonical_language(language: str | None) -> str | None:
    """'eng', 'en', 'en_Latn', 'zho_Hans', 'EN' -> 'en' / 'zh' (ISO 639-1 where we know one)."""
    if not language:
        return None
    code = language.replace("-", "_").split("_")[0].lower()
    return _ALIASES.get(code, code)


# -- the tokenizer base: chunk cache, vocabulary, memo ----------------------------------------------------------


class WordTokenizer:
    """Splits text on whitespace, then each chunk into tokens (cached); tokens also get stable integer ids.

    Ids index `strings`. When the vocabulary outgrows `max_vocab` it is reset between calls and `generation`
    increases, so a filter that keeps per-id arrays knows to rebuild them.
    """

    def __init__(self, language: str, max_vocab: int = 2_000_000, memo_chars: int = 64 << 20) -> None:
        self.language = language
        self.strings: list[str] = []
        self.generation = 0
        self._vocab: dict[str, int] = {}
        self._chunks: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
        self._chunk_ids: dict[str, tuple[int, ...]] = {}  # the ids half of _chunks, for lookups done in C
        self._lengths = np.zeros(0, np.int64)
        self._max_vocab = max_vocab
        # Recently tokenized texts -> ids, bounded by characters held (texts + ids, ~one batch or two).
        self._memo: dict[str, np.ndarray] = {}
        self._memo_chars = 0
        self._memo_limit = memo_chars

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """Tokens of one whitespace-free chunk (uncached)."""
        raise NotImplementedError

    def _entry(self, chunk: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        entry = self._chunks.get(chunk)
        if entry is None:
            toks = self.chunk_tokens(chunk)
            vocab = self._vocab
            ids = []
            for t in toks:
                i = vocab.get(t)
                if i is None:
                    i = vocab[t] = len(self.strings)
                    self.strings.append(t)
                ids.append(i)
            entry = self._chunks[chunk] = (toks, tuple(ids))
            self._chunk_ids[chunk] = entry[1]
        return entry

    def _maybe_reset(self) -> None:
        # Only between calls, so ids handed out within one call stay consistent.
        if len(self.strings) > self._max_vocab or len(self._chunks) > 4 * self._max_vocab:
            self._vocab.clear()
            self._chunks.clear()
            self._chunk_ids.clear()
            self.__dict__.get("_sentence_chunks", {}).clear()
            self._memo.clear()
            self._memo_chars = 0
            self.strings = []
            self._lengths = np.zeros(0, np.int64)
            self.generation += 1

    def words(self, text: str) -> list[str]:
        """All tokens of `text` (punctuation included), as datatrove's word_tokenize returns them."""
        self._maybe_reset()
        chunks = self._chunks
        out: list[str] = []
        extend = out.extend
        for chunk in text.split():
            entry = chunks.get(chunk)
            if entry is None:
                entry = self._entry(chunk)
            extend(entry[0])
        return out

    def token_ids(self, text: str) -> np.ndarray:
        """Token ids of `text` (int64, read-only). Recent texts are remembered (up to ~64M characters), so that
        the stages of a fused chain tokenize each document once."""
        ids = self._memo.get(text)
        if ids is not None:
            return ids
        self._maybe_reset()
        parts = text.split()
        # One C-level pass of dict lookups; only chunks never seen before go through the tokenizer.
        found = list(map(self._chunk_ids.get, parts))
        if None in found:
            entry = self._entry
            found = [f if f is not None else entry(c)[1] for f, c in zip(found, parts)]
        ids = np.fromiter(chain.from_iterable(found), dtype=np.int64)
        ids.flags.writeable = False
        memo = self._memo
        cost = len(text) + 8 * len(ids)
        while memo and self._memo_chars + cost > self._memo_limit:
            old_text, old_ids = next(iter(memo.items()))  # oldest first (dicts keep insertion order)
            del memo[old_text]
            self._memo_chars -= len(old_text) + 8 * len(old_ids)
        if cost <= self._memo_limit:
            memo[text] = ids
            self._memo_chars += cost
        return ids

    def lengths(self) -> np.ndarray:
        """Character length of every token id."""
        n = len(self.strings)
        if len(self._lengths) < n:
            new = np.fromiter(map(len, self.strings[len(self._lengths) :]), np.int64, n - len(self._lengths))
            self._lengths = np.concatenate([self._lengths, new])
        return self._lengths

    def id_property(self, cache: dict[str, Any], fn: Callable[[str], Any], dtype: Any = np.bool_) -> np.ndarray:
        """A per-id array of fn(token), kept in `cache` (owned by the caller) and extended as the vocabulary
        grows; rebuilt after a vocabulary reset."""
        if cache.get("generation") != self.generation:
            cache.clear()
            cache["generation"] = self.generation
            cache["values"] = np.zeros(0, dtype)
        values: np.ndarray = cache["values"]
        n = len(self.strings)
        if len(values) < n:
            new = np.fromiter(map(fn, self.strings[len(values) :]), dtype, n - len(values))
            values = cache["values"] = np.concatenate([values, new])
        return values

    def split_sentences(self, text: str) -> list[str]:
        """Sentences; the base rule: terminal punctuation followed by whitespace, or a line break."""
        return [s for s in _GENERIC_SENTENCE_END.split(text) if s and not s.isspace()]

    def count_sentences(self, text: str, at_most: int | None = None) -> int:
        """Number of sentences (see split_sentences); `at_most` caps the count (a hint for early exit)."""
        n = len(self.split_sentences(text))
        return n if at_most is None else min(n, at_most)


class RegexTokenizer(WordTokenizer):
    """Tokens are the matches of a regular expression within each whitespace-delimited chunk."""

    def __init__(self, language: str, pattern: re.Pattern[str]) -> None:
        super().__init__(language)
        self._findall = pattern.findall

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        return tuple(self._findall(chunk))

    def split_sentences(self, text: str) -> list[str]:
        if self.language in CJK_LANGUAGES:
            return [s for s in _CJK_SENTENCE.findall(text) if not s.isspace()]
        return super().split_sentences(text)


class FunctionTokenizer(WordTokenizer):
    """A user's splitter `fn(text) -> words` for a language; it sees whole texts, not chunks."""

    def __init__(self, language: str, fn: Callable[[str], Iterable[str]]) -> None:
        super().__init__(language)
        self._fn = fn

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        return tuple(self._fn(chunk))

    def words(self, text: str) -> list[str]:
        return list(self._fn(text))

    def token_ids(self, text: str) -> np.ndarray:
        self._maybe_reset()
        vocab = self._vocab
        out = []
        for t in self._fn(text):
            i = vocab.get(t)
            if i is None:
                i = vocab[t] = len(self.strings)
                self.strings.append(t)
            out.append(i)
        ids = np.array(out, dtype=np.int64)
        ids.flags.writeable = False
        return ids


# -- spaCy-compatible rule tokenizer ----------------------------------------------------------------------------


class RuleTokenizer(WordTokenizer):
    """spaCy's Tokenizer algorithm (affixes, infixes, URL match, special cases) over exported rules."""

    def __init__(self, rules: dict[str, Any]) -> None:
        super().__init__(rules["language"])
        self._prefix = re.compile(rules["prefix"]).search if rules["prefix"] else None
        self._suffix = re.compile(rules["suffix"]).search if rules["suffix"] else None
        self._suffix_window = _suffix_window(rules["suffix"]) if rules["suffix"] else None
        self._infix = re.compile(rules["infix"]).finditer if rules["infix"] else None
        self._url = re.compile(rules["url"]).match if rules["url"] else None
        self._token_match = re.compile(rules["token_match"]).match if rules.get("token_match") else None
        self._specials: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in rules["specials"].items()}
        # Special cases spaCy re-applies after affix splitting (its PhraseMatcher pass): the token sequence the
        # string gets without special cases -> the special tokenization. Applied within a chunk.
        self._matcher: dict[tuple[str, ...], tuple[str, ...]] = {}
        for string in rules["matcher_specials"]:
            if " " in string:
                continue  # only ' ' itself: a whitespace token, which word counts drop anyway
            plain = tuple(self._tokenize(string, with_specials=False))
            if len(plain) > 1:
                self._matcher[plain] = self._specials[string]
        self._matcher_lengths = sorted({len(k) for k in self._matcher}, reverse=True)
        self._matcher_first = frozenset(k[0] for k in self._matcher)
        self.sentence_punct: frozenset[str] = frozenset(rules["sentence_punct"])
        self._sentence_chunks: dict[str, tuple[int, int, int, int]] = {}

    # A line-by-line port of spacy/tokenizer.pyx (_split_affixes, _attach_tokens).
    def _tokenize(self, string: str, with_specials: bool = True) -> list[str]:
        specials = self._specials if with_specials else {}
        if string in specials:
            return list(specials[string])
        prefixes: list[str] = []
        suffixes: list[str] = []
        last_size = 0
        while string and len(string) != last_size:
            if self._token_match and self._token_match(string):
                break
            if string in specials:
                break
            if string.isalpha():
                break  # no affix rule splits a run of letters (the fast path in chunk_tokens relies on it too)
            last_size = len(string)
            pre_len = _found(self._prefix, string)
            if pre_len:
                prefix = string[:pre_len]
                minus_pre = string[pre_len:]
                if minus_pre and minus_pre in specials:
                    string = minus_pre
                    prefixes.append(prefix)
                    break
            suf_len = self._find_suffix(string[pre_len:])
            if suf_len:
                suffix = string[-suf_len:]
                minus_suf = string[:-suf_len]
                if minus_suf and minus_suf in specials:
                    string = minus_suf
                    suffixes.append(suffix)
                    break
            if pre_len and suf_len and (pre_len + suf_len) <= len(string):
                string = string[pre_len:-suf_len]
                prefixes.append(prefix)
                suffixes.append(suffix)
            elif pre_len:
                string = minus_pre
                prefixes.append(prefix)
            elif suf_len:
                string = minus_suf
                suffixes.append(suffix)
        tokens = prefixes
        if string:
            if string in specials:
                tokens.extend(specials[string])
            elif string.isalpha():
                tokens.append(string)  # no URL and no infix (all need a non-letter) inside a run of letters
            elif (self._token_match and self._token_match(string)) or (self._url and self._url(string)):
                tokens.append(string)
            else:
                start = 0
                for m in self._infix(string) if self._infix else ():
                    infix_start, infix_end = m.start(), m.end()
                    if infix_start == 0:
                        continue
                    if infix_start != start:
                        tokens.append(string[start:infix_start])
                    if infix_start != infix_end:
                        tokens.append(string[infix_start:infix_end])
                    start = infix_end
                if string[start:]:
                    tokens.append(string[start:])
        tokens.extend(reversed(suffixes))
        return tokens

    def _find_suffix(self, string: str) -> int:
        """Length of the suffix spaCy's suffix_search finds (its leftmost match), searching only the tail that a
        bounded suffix can occupy; falls back to the whole string when the match may extend further left."""
        if self._suffix is None:
            return 0
        window = self._suffix_window
        pos = len(string) - window if window is not None and len(string) > window else 0
        m = self._suffix(string, pos)
        if m is not None and pos and m.start() == pos:
            m = self._suffix(string)  # e.g. a run of dots longer than the window: find where it starts
        return m.end() - m.start() if m is not None else 0

    def _apply_matcher(self, tokens: list[str]) -> list[str]:
        """spaCy's _apply_special_cases within one chunk: longest match first, then leftmost; no overlaps."""
        n = len(tokens)
        found: list[tuple[int, int]] = []
        for length in self._matcher_lengths:
            for start in range(0, n - length + 1):
                if tuple(tokens[start : start + length]) in self._matcher:
                    found.append((start, start + length))
        if not found:
            return tokens
        found.sort(key=lambda se: (-(se[1] - se[0]), se[0]))
        seen: set[int] = set()
        keep: list[tuple[int, int]] = []
        for s, e in found:
            if s not in seen and e - 1 not in seen:
                keep.append((s, e))
            seen.update(range(s, e))
        keep.sort()
        out: list[str] = []
        i = 0
        for s, e in keep:
            out.extend(tokens[i:s])
            out.extend(self._matcher[tuple(tokens[s:e])])
            i = e
        out.extend(tokens[i:])
        return out

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        # A run of letters is one token unless it is a special case ("cannot" -> "can", "not"): no shipped rule
        # set has a letters-only affix or infix (tests/test_text.py checks this against the slow path).
        if chunk.isalpha() and chunk not in self._specials:
            return (chunk,)
        tokens = self._tokenize(chunk)
        if len(tokens) > 1 and self._matcher_first.intersection(tokens):
            tokens = self._apply_matcher(tokens)
        return tuple(tokens)

    def _sentence_ends(self, text: str, at_most: int | None = None) -> list[int]:
        """End offset of every sentence but the last, as spaCy's rule-based Sentencizer splits: a sentence
        starts at the first token that is not punctuation after a token in punct_chars."""
        punct = self.sentence_punct
        ends: list[int] = []
        seen_period = False
        started = False
        prev_end = 0  # end offset of the last non-whitespace token
        pos = 0
        for piece in _WS_RUNS.split(text):
            if not piece:
                continue
            if piece[0].isspace():
                # A whitespace run other than one ' ' is a token of its own in spaCy (and not punctuation).
                if piece != " " and started and seen_period:
                    ends.append(prev_end)
                    seen_period = False
                    if at_most is not None and len(ends) >= at_most:
                        return ends
                pos += len(piece)
                continue
            for tok in self._entry(piece)[0]:
                started = True
                in_punct = tok in punct
                if seen_period and not in_punct and not is_punct(tok):
                    ends.append(prev_end)
                    seen_period = False
                    if at_most is not None and len(ends) >= at_most:
                        return ends
                elif in_punct:
                    seen_period = True
                pos += len(tok)
                prev_end = pos
        return ends

    def count_sentences(self, text: str, at_most: int | None = None) -> int:
        """Number of sentences, as spaCy's Sentencizer counts them (counting stops at `at_most`)."""
        if not text:
            return 0
        limit = at_most or 1 << 62
        parts = text.split()
        if not parts or " ".join(parts) != text:
            # Leading/trailing or other whitespace (a run other than one ' ' is a token for spaCy): token by token.
            return min(len(self._sentence_ends(text, None if at_most is None else at_most - 1)) + 1, limit)
        # Chunk by chunk: each chunk's effect on (count, seen_period) is cached, whichever state it starts in.
        summaries = self._sentence_chunks
        count, seen = 1, 0
        for chunk in parts:
            summary = summaries.get(chunk)
            if summary is None:
                summary = summaries[chunk] = self._sentence_summary(chunk)
            count += summary[seen]
            seen = summary[2 + seen]
            if count >= limit:
                return limit
        return count

    def _sentence_summary(self, chunk: str) -> tuple[int, int, int, int]:
        """(sentences started if entered without / with a pending period, period pending on exit, likewise)."""
        punct = self.sentence_punct
        out = []
        for seen in (False, True):
            started = 0
            for tok in self._entry(chunk)[0]:
                in_punct = tok in punct
                if seen and not in_punct and not is_punct(tok):
                    started += 1
                    seen = False
                elif in_punct:
                    seen = True
            out.append((started, int(seen)))
        return out[0][0], out[1][0], out[0][1], out[1][1]

    def split_sentences(self, text: str) -> list[str]:
        """Sentences as datatrove's split_into_sentences cuts them: contiguous pieces that cover the text, each
        ending where spaCy's sentence ends (whitespace goes to the start of the next)."""
        if not text:
            return []
        ends = self._sentence_ends(text)
        return [text[a:b] for a, b in zip([0, *ends], [*ends, len(text)])]


def _found(search: Callable[[str], re.Match[str] | None] | None, string: str) -> int:
    if search is None:
        return 0
    m = search(string)
    return m.end() - m.start() if m is not None else 0


def _suffix_window(pattern: str) -> int | None:
    """How many trailing characters a suffix match can cover, for a spaCy suffix pattern ('a$|bc$|...'): the
    widest bounded alternative, provided every unbounded one is a run of one character ('\\.\\.+$'), whose
    leftmost match then also starts at the window's first character. None when the pattern is not of that form."""
    try:
        try:
            import re._constants as sre_constants
            import re._parser as sre_parse
        except ImportError:  # Python 3.10
            import sre_constants  # type: ignore[no-redef]
            import sre_parse  # type: ignore[no-redef]
        parsed = sre_parse.parse(pattern)
        if len(parsed.data) != 1 or parsed.data[0][0] != sre_constants.BRANCH:
            return None
        widest = 0
        for branch in parsed.data[0][1][1]:
            low, high = branch.getwidth()
            if high < sre_constants.MAXREPEAT:
                widest = max(widest, high)
                continue
            items = list(branch.data)
            # LITERAL c, MAX_REPEAT(1.., LITERAL c), AT_END: a run of c at the end.
            if not (
                len(items) == 3
                and items[0][0] == sre_constants.LITERAL
                and items[1][0] == sre_constants.MAX_REPEAT
                and list(items[1][1][2].data) == [items[0]]
                and items[2] == (sre_constants.AT, sre_constants.AT_END)
            ):
                return None
        return widest + 2  # room for the two characters the run needs
    except Exception:  # an unexpected pattern shape: search the whole string
        return None


_WS_RUNS = re.compile(r"(\s+)")
_GENERIC_SENTENCE_END = re.compile(r"(?<=[.!?։؟۔।॥။።᙮‼‽⁇⁈⁉！．？｡。])\s+|\n+")


@lru_cache(maxsize=65536)
def is_punct(token: str) -> bool:
    """spaCy's lexeme attribute is_punct: every character is Unicode punctuation (category P*)."""
    return all(unicodedata.category(c).startswith("P") for c in token)


def export_spacy_rules(language: str, path: str | Path) -> None:
    """Write spaCy's tokenizer rules for `language` (spacy.blank) to a .json.gz that RuleTokenizer loads.

    How curate/data/spacy_*.json.gz were made (spaCy is MIT-licensed; see curate/data/NOTICE.md):
    `python -c "from curate.text import export_spacy_rules as e; e('en', 'curate/data/spacy_en.json.gz')"`
    """
    import spacy
    from spacy.attrs import ORTH
    from spacy.pipeline import Sentencizer

    tok = spacy.blank(language).tokenizer

    def pattern(fn: Any) -> str | None:
        return fn.__self__.pattern if fn is not None else None

    rules = {s: [t[ORTH] for t in v] for s, v in tok.rules.items()}
    # The special cases spaCy also matches after affix splitting (its faster_heuristics selection).
    matcher = [s for s in rules if tok.find_prefix(s) or tok.find_infix(s) or tok.find_suffix(s) or " " in s]
    data = {
        "language": language,
        "source": f"spaCy {spacy.__version__} spacy.blank({language!r}).tokenizer (MIT License, Explosion AI)",
        "prefix": pattern(tok.prefix_search),
        "suffix": pattern(tok.suffix_search),
        "infix": pattern(tok.infix_finditer),
        "url": pattern(tok.url_match),
        "token_match": pattern(tok.token_match),
        "specials": rules,
        "matcher_specials": matcher,
        "sentence_punct": list(Sentencizer.default_punct_chars),
    }
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(data, f, ensure_ascii=False, sort_keys=True)


# -- scripts without spaces -------------------------------------------------------------------------------------

# Han ideographs one word each (the character is the unit of meaning; the median Chinese word is 1-2 characters),
# kana runs, Hangul runs, and runs of other word characters (Latin words, digits) inside CJK text.
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = r"\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_CJK_WORD = re.compile(
    rf"[{_HAN}]|[\u3040-\u309f]+|[\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]+|[{_HANGUL}]+|[^\W{_HAN}{_KANA}{_HANGUL}]+"
)
# Korean is written with spaces between eojeol (a word with its particles): words are those, minus punctuation.
_KO_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
# A CJK sentence: text up to terminal punctuation (with closing quotes/brackets), or up to a line break.
_CJK_SENTENCE = re.compile(r"[^。！？!?｡\n]*[。！？!?｡]+[」』”’)）]*|[^。！？!?｡\n]+")


# -- dispatch ---------------------------------------------------------------------------------------------------

_tokenizers: dict[str, WordTokenizer] = {}
_registered: dict[str, Callable[[str], Iterable[str]]] = {}
_lock = threading.RLock()


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
        return RegexTokenizer(lang, _CJK_WORD)
    if lang == "ko":
        return RegexTokenizer(lang, _KO_WORD)
    rules = lang if lang in RULE_LANGUAGES else "xx"
    if rules != lang:
        return tokenizer(rules)
    with gzip.open(DATA / f"spacy_{rules}.json.gz", "rt", encoding="utf-8") as f:
        return RuleTokenizer(json.load(f))


def tokenizer(language: str | None = "en") -> WordTokenizer:
    """The shared word tokenizer for a language (built once per process): spaCy's rules for en, de, fr, es, it,
    pt, nl, ru, pl; CJK and Korean splitters; spaCy's multi-language rules for other languages. None -> en."""
    lang = canonical_language(language) or "en"
    tok = _tokenizers.get(lang)
    if tok is None:
        with _lock:
            tok = _tokenizers.get(lang)
            if tok is None:
                tok = _tokenizers[lang] = _build(lang)
    return tok


def clear_caches() -> None:
    """Forget every tokenizer's chunk cache, vocabulary and memo (benchmarks measure cold starts with this)."""
    with _lock:
        for tok in _tokenizers.values():
            tok._max_vocab, saved = -1, tok._max_vocab
            tok._maybe_reset()
            tok._max_vocab = saved


def split_words(text: str, language: str | None = None) -> list[str]:
    """Words of `text` (punctuation tokens included), split as `language` wants; None means English."""
    return tokenizer(language).words(text)


def split_sentences(text: str, language: str | None = None) -> list[str]:
    """Sentences of `text`: spaCy's Sentencizer rules, or 。！？ and line breaks for CJK."""
    return tokenizer(language).split_sentences(text)


def count_sentences(text: str, language: str | None = None) -> int:
    """Number of sentences in `text`: spaCy's Sentencizer rules, or 。！？ and line breaks for CJK."""
    return tokenizer(language).count_sentences(text)


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
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text.strip()
