"""A brute-force oracle of `decontaminate`, for its tests and bench/decontam.py: n-grams as tuples of words in a
Python set (no hashing, no numpy), datatrove's loops for the query/answer n-grams, and span mode's cut written out
character by character. Slow; exact by construction."""

from __future__ import annotations

import re

from curate_filters.decontam.evals import EvalItem
from curate_filters.decontam.index import IndexSettings

_CHUNK = re.compile(r"\S+")


def item_ngram_table(items: list[EvalItem], settings: IndexSettings) -> dict[tuple[str, ...], set[int]]:
    """Every n-gram (a tuple of words) of the items, with the items holding it, as NGramsDecontIndexer makes them;
    n-grams of more than max_items_per_ngram items left out."""
    n = settings.n_grams
    norm = settings.normalizer
    table: dict[tuple[str, ...], set[int]] = {}

    def add(words: list[str], k: int) -> None:
        for i in range(len(words) - n + 1):
            table.setdefault(tuple(words[i : i + n]), set()).add(k)

    for k, item in enumerate(items):
        query = norm.words(item.query) if item.query is not None else None
        for gold in item.golds:
            label = norm.words(gold)
            add(label, k)
            if query is None:
                continue
            if settings.find_query_ngrams:
                add(query, k)
            if settings.find_overlap_ngrams:
                for i in range(n - 1):
                    if len(query) >= n - 1 - i and len(label) >= i + 1:
                        table.setdefault(tuple(query[len(query) - (n - 1 - i) :] + label[: i + 1]), set()).add(k)
        if not item.golds and query is not None and settings.find_query_ngrams:
            add(query, k)
    if settings.max_items_per_ngram:
        table = {g: ks for g, ks in table.items() if len(ks) <= settings.max_items_per_ngram}
    return table


def hits(words: list[str], table: dict[tuple[str, ...], set[int]], n: int) -> list[int]:
    """Start positions of the document's n-grams that are in the table."""
    return [i for i in range(len(words) - n + 1) if tuple(words[i : i + n]) in table]


def rejects(text: str, table: dict[tuple[str, ...], set[int]], settings: IndexSettings, max_share: float = 0.0) -> bool:
    """document mode: any overlap (or more than max_share of the words covered)."""
    words = settings.normalizer.words(text)
    found = hits(words, table, settings.n_grams)
    if not found:
        return False
    if max_share <= 0:
        return True
    covered = set()
    for i in found:
        covered.update(range(i, i + settings.n_grams))
    return len(covered) > max_share * len(words)


def cut(
    text: str,
    table: dict[tuple[str, ...], set[int]],
    settings: IndexSettings,
    margin: int = 200,
    min_piece: int = 200,
    max_spans: int = 10,
) -> tuple[str, str | None, int]:
    """span mode: (the text left, the reason or None, the number of separate cuts). Every character from `margin`
    before an overlapping n-gram's first word to `margin` after its last word (whole whitespace-delimited words)
    is removed; pieces shorter than min_piece are dropped."""
    n = settings.n_grams
    norm = settings.normalizer
    words: list[str] = []
    owner: list[tuple[int, int]] = []
    for m in _CHUNK.finditer(text):
        for w in norm.words(m.group()):
            words.append(w)
            owner.append((m.start(), m.end()))
    if words != norm.words(text):
        raise AssertionError("the chunk-by-chunk words differ from the whole text's")
    removed = [False] * len(text)
    for i in hits(words, table, n):
        for c in range(max(0, owner[i][0] - margin), min(len(text), owner[i + n - 1][1] + margin)):
            removed[c] = True
    pieces: list[str] = []
    spans = 0
    current: list[str] = []
    for c, ch in enumerate(text):
        if removed[c]:
            if c == 0 or not removed[c - 1]:
                spans += 1
                pieces.append("".join(current))
                current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    if spans == 0:
        return text, None, 0
    if spans > max_spans:
        return text, "contaminated", spans
    kept = [p for p in pieces if len(p) >= min_piece and p.strip()]
    if not kept:
        return "", "too_little_left", spans
    return "\n".join(kept), None, spans
