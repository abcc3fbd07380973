"""spaCy's rule tokenizer and sentencizer in pure Python, over rules exported from spaCy (curate/data).

A line-by-line port of spacy/tokenizer.pyx (affixes, infixes, URL match, special cases) and of the rule-based
Sentencizer; rules are regenerated with tools/export_spacy_rules.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from curate.text.tokenizer import WordTokenizer

_WS_RUNS = re.compile(r"(\s+)")


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
        # set has a letters-only affix or infix (tests/text/test_text.py checks this against the slow path).
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


@lru_cache(maxsize=65536)
def is_punct(token: str) -> bool:
    """spaCy's lexeme attribute is_punct: every character is Unicode punctuation (category P*)."""
    return all(unicodedata.category(c).startswith("P") for c in token)
