"""C4's heuristic line and page filters (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", sec. 2.2).

`c4_quality` follows datatrove's C4QualityFilter (parameter names, defaults, order of checks), which follows the
reference implementation (tensorflow_datasets c4_utils). `c4_badwords` is the "List of Dirty, Naughty, Obscene or
Otherwise Bad Words" page filter, as datatrove's C4BadWordsFilter, with the lists shipped (filters/data/ldnoobw).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from curate.errors import ConfigError, StageError
from curate.inflight import tracked
from curate.stage import Filter, Mapper
from curate.text import canonical_language, check_splitter, require_splitter, tokenizer
from curate_filters.heuristics.common import doc_tokenizers, texts

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


class C4Quality(Mapper):
    """C4 heuristics (Raffel et al. 2020): drop lines without terminal punctuation, with few words, a very long word,
    'javascript' or a policy notice; reject pages with 'lorem ipsum', a curly bracket, or too few sentences.

    Removed lines are counters in stats.json (lines_removed_<why>); document rejections are reasons:
    lorem_ipsum, curly_bracket, too_few_sentences (datatrove's names). The kept lines replace the text.
    """

    name = "c4_quality"
    reasons = ("lorem_ipsum", "curly_bracket", "too_few_sentences")
    # True (C4): one line per "\n"; false: work on sentences and join the kept ones with spaces.
    split_paragraph: bool = True
    # Remove Wikipedia-style citation marks ([1], [edit], [citation needed]) from lines.
    remove_citations: bool = True
    # Drop lines that do not end in . ? ! " ' (or end in an ellipsis). FineWeb turns this off.
    filter_no_terminal_punct: bool = True
    # Reject pages with fewer sentences (counted on kept lines); -1 disables.
    min_num_sentences: int = 5
    # Drop lines with fewer whitespace-separated words; -1 disables.
    min_words_per_line: int = 3
    # Drop lines with a word longer than this; -1 disables.
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    # Sentence splitting rules; null: each document's `language` column.
    language: str | None = "en"
    # A named word splitter for the languages it serves (curate.text.SPLITTERS; 'kiwi': Korean morphemes, needs
    # curate[korean]); null: the language's default (Korean: eojeol).
    word_splitter: str | None = None

    def preflight(self) -> None:
        require_splitter(self.word_splitter)

    def setup(self) -> None:
        # spaCy's rules compile into large regular expressions: build them once per worker, not in a batch.
        check_splitter(self.word_splitter)
        if self.language is not None:
            tokenizer(self.language, self.word_splitter)

    def map_batch(self, batch: pa.Table) -> tuple[pa.Table, list[str | None]]:
        counts = dict.fromkeys(
            ("lines_total", "lines_kept", "lines_removed_too_long_word", "lines_removed_no_terminal_punct",
             "lines_removed_too_few_words", "lines_removed_javascript", "lines_removed_policy"),
            0,
        )  # fmt: skip
        new_texts: list[str] = []
        reasons: list[str | None] = []
        changed = 0
        for text, tok in zip(tracked(texts(batch)), doc_tokenizers(batch, self.language, self.word_splitter)):
            reason, kept = self._check(text, tok, counts)
            reasons.append(reason)
            new_texts.append(text if reason else kept)
            changed += reason is None and kept != text
        for key, n in counts.items():
            if n:
                self.count(key, n)
        if changed:
            self.count("docs_changed", changed)
        idx = batch.schema.get_field_index("text")
        return batch.set_column(idx, "text", pa.array(new_texts, pa.string())), reasons

    def _check(self, text: str, tok, counts: dict[str, int]) -> tuple[str | None, str]:
        if self.split_paragraph:
            lines = text.splitlines()
        else:
            lines = tok.split_sentences(text)
        kept_lines: list[str] = []
        counts["lines_total"] += len(lines)
        for line in lines:
            line = line.strip()
            words = line.split()
            # A word longer than max_word_length needs a line longer than that: most lines skip the word scan.
            if (
                self.max_word_length != -1
                and len(line) > self.max_word_length
                and max(map(len, words)) > self.max_word_length
            ):
                counts["lines_removed_too_long_word"] += 1
                continue
            if self.remove_citations and "[" in line:
                line = CITATION.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                counts["lines_removed_no_terminal_punct"] += 1
                continue
            if len(words) < self.min_words_per_line:
                counts["lines_removed_too_few_words"] += 1
                continue
            line_l = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
                return "lorem_ipsum", text
            if self.filter_javascript and "javascript" in line_l:
                counts["lines_removed_javascript"] += 1
                continue
            if self.filter_curly_bracket and "{" in line:
                return "curly_bracket", text
            if self.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                counts["lines_removed_policy"] += 1
                continue
            kept_lines.append(line)
            counts["lines_kept"] += 1
        if self.min_num_sentences != -1 and self._sentences(kept_lines, tok) < self.min_num_sentences:
            return "too_few_sentences", text
        return None, ("\n" if self.split_paragraph else " ").join(kept_lines).strip()

    def _sentences(self, kept_lines: list[str], tok) -> int:
        if not self.split_paragraph:
            return len(kept_lines)
        # Every kept line holds at least one sentence, so only pages with few kept lines need the sentencizer.
        if len(kept_lines) >= self.min_num_sentences:
            return len(kept_lines)
        total = 0
        for line in kept_lines:  # stop as soon as the page has enough
            total += tok.count_sentences(line, at_most=self.min_num_sentences - total)
            if total >= self.min_num_sentences:
                break
        return total


# -- bad words --------------------------------------------------------------------------------------------------

BADWORDS_DIR = Path(__file__).resolve().parents[1] / "data" / "ldnoobw"
# Words allowed because they are common subwords in languages without spaces; each filters >10% of documents of
# its language when disallowed (datatrove's _BADWORDS_ALLOWLIST, removed from every list as datatrove does).
BADWORDS_ALLOWLIST = {"ja": {"sm", "グロ", "女の子"}, "zh": {"性"}}
# Languages written without spaces: a bad word matches anywhere, not only between non-word characters.
_NO_SPACE_LANGUAGES = ("ja", "th", "zh")


def _at_least(regex: re.Pattern[str], text: str, k: int, share: float | None = None) -> bool:
    """Whether the pattern occurs at least k times in the lower-cased text (the scan stops at the k-th) and, with
    `share`, in at least that share of its whitespace words."""
    if share is not None:
        found = sum(1 for _ in regex.finditer(text.lower()))
        return found >= k and found >= share * len(text.split())
    if k == 1:
        return regex.search(text.lower()) is not None
    found = 0
    for _ in regex.finditer(text.lower()):
        found += 1
        if found >= k:
            return True
    return False


def _trie_pattern(words: list[str]) -> str:
    """One regular expression matching any of `words`, as a character trie: the regex engine then follows one
    branch per character instead of trying hundreds of alternatives at every position."""
    trie: dict[str, dict] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        return "(?:" + "|".join(alts) + ")" + ("?" if "" in node else "")

    return emit(trie)


@lru_cache(maxsize=64)
def badwords_regex(language: str, path: str | None = None) -> re.Pattern[str] | None:
    """The compiled bad-words matcher for a language (None if there is no list), built once per process."""
    if path is None and not re.fullmatch(r"[A-Za-z0-9_\-]+", language):
        return None
    file = Path(path) if path else BADWORDS_DIR / f"{language}.txt"
    if not file.is_file():
        return None
    words = {line.strip() for line in file.read_text(encoding="utf-8").splitlines()}
    words.discard("")
    for allow in BADWORDS_ALLOWLIST.values():
        words -= allow
    body = _trie_pattern(sorted(words))
    if language in _NO_SPACE_LANGUAGES:
        return re.compile(body)
    # datatrove's (?:\W|^)(words)(?:\W|$), as lookarounds: the same documents match.
    return re.compile(rf"(?<!\w){body}(?!\w)")


class C4BadWords(Filter):
    """C4's bad-words page filter (Raffel et al. 2020): reject a page containing a word of the LDNOOBW list for
    its language (column `language`, else `default_language`). Reason: badwords. With `min_count: k` (and
    `min_share: s`) a page is rejected only when its bad words occur at least k times (and make at least the share s
    of its words): LLaMA 3's "dirty word counting" (sec. 3.1.1), for adult pages that domain blocklists miss, while a
    few stray words do not condemn a long page."""

    name = "c4_badwords"
    reasons = ("badwords",)
    # Keep this fraction of pages that contain bad words (drawn per document id, so reruns agree).
    keep_fraction: float = 0.0
    # Stop the run on a document whose language has no list; false keeps such documents (counted).
    fail_on_missing_language: bool = True
    seed: int | None = None
    default_language: str = "en"
    # A word list (one per line) to use for every language instead of the shipped lists.
    badwords_file: str | None = None
    # Reject a page only when its bad words occur at least this many times (C4: 1, any occurrence).
    min_count: int = 1
    # ...and make at least this share of its whitespace words (occurrences / words; null: any share), so that a long
    # page with a few stray words stays while a page dense with them goes (LLaMA 3's dirty-word counting).
    min_share: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 1:
            raise ConfigError(
                f"c4_badwords: min_count must be an integer of at least 1, got {self.min_count!r}",
                hint="1 rejects a page with any bad word (C4); LLaMA 3 counts them: e.g. min_count: 3",
            )
        if self.min_share is not None and not 0 < self.min_share < 1:
            raise ConfigError(
                f"c4_badwords: min_share must be between 0 and 1, got {self.min_share!r}",
                hint="the share of a page's words that are bad words, e.g. 0.005 (5 in 1,000 words); null: any",
            )

    def preflight(self) -> None:
        # the error the first document would meet: no list for its language, the file given not being one
        if self.badwords_file and self.fail_on_missing_language and not Path(self.badwords_file).is_file():
            raise StageError(
                f"c4_badwords: badwords_file '{self.badwords_file}' is not a file",
                hint="give a word list (one word a line), or leave badwords_file null for the shipped lists",
            )

    def reject_batch(self, batch: pa.Table) -> list[str | None]:
        if "language" in batch.column_names:
            langs = [lang or self.default_language for lang in batch.column("language").to_pylist()]
        else:
            langs = [self.default_language] * batch.num_rows
        ids = batch.column("id").to_pylist()
        out: list[str | None] = []
        found = kept = 0
        for text, lang, doc_id in zip(tracked(texts(batch)), langs, ids):
            regex = self._regex(lang)
            if regex is None:
                self.count(f"missing_badwords_language:{lang}")
                out.append(None)
                continue
            if not _at_least(regex, text, self.min_count, self.min_share):
                out.append(None)
                continue
            found += 1
            if self.keep_fraction > 0.0 and self._uniform(doc_id) < self.keep_fraction:
                kept += 1
                out.append(None)
            else:
                out.append("badwords")
        if found:
            self.count("docs_with_badwords", found)
        if kept:
            self.count("docs_kept_with_badwords", kept)
        return out

    def _regex(self, lang: str) -> re.Pattern[str] | None:
        resolved = self.__dict__.setdefault("_resolved", {})
        if lang in resolved:
            return resolved[lang]
        if self.badwords_file:
            regex = badwords_regex(canonical_language(lang) or lang, self.badwords_file)
        else:
            regex = badwords_regex(lang)
            if regex is None:
                regex = badwords_regex(canonical_language(lang) or lang)
        if regex is None and self.fail_on_missing_language:
            raise StageError(
                f"c4_badwords has no bad-words list for language '{lang}'",
                hint="set fail_on_missing_language: false to keep such documents, or give badwords_file",
            )
        resolved[lang] = regex
        return regex

    def _uniform(self, doc_id: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}:{doc_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64
