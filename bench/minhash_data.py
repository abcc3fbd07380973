"""Real documents for the MinHash benches, and near copies of them at known word-5-gram Jaccard.

Documents: Project Gutenberg prose (../shared/corpus/prose-gutenberg, header and footer stripped, hard-wrapped lines
joined into paragraphs, consecutive paragraphs packed into documents of 250-600 words) and extracted web pages
(bench/corpus_docs.py: every corpus HTML page through trafilatura, cut to at most 600 words at a paragraph end).
Copies: word substitutions, insertions and deletions at random places (replacement words drawn from the corpus),
sometimes with two paragraphs swapped, as many edits as bring the exact Jaccard of the word 5-gram sets (shingled as
the minhash stage shingles: simplify_text, then curate's English word splitting) to a drawn target.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_docs import CORPUS, extracted_docs  # noqa: E402

from curate.text import simplify_text, tokenizer  # noqa: E402

MIN_WORDS, MAX_WORDS = 250, 600


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The minhash stage's shingles of `text`, as a set of word tuples."""
    words = tokenizer("en").words(simplify_text(text))
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _pack(paragraphs: list[str], prefix: str) -> list[tuple[str, str]]:
    docs, current, n = [], [], 0
    for p in paragraphs:
        words = p.split()
        while len(words) > MAX_WORDS:  # a very long paragraph becomes documents of its own
            docs.append(" ".join(words[:MAX_WORDS]))
            words = words[MAX_WORDS:]
        if n + len(words) > MAX_WORDS and n >= MIN_WORDS:
            docs.append("\n\n".join(current))
            current, n = [], 0
        current.append(" ".join(words))
        n += len(words)
        if n >= MIN_WORDS and random.Random(len(docs)).random() < 0.5:
            docs.append("\n\n".join(current))
            current, n = [], 0
    return [(f"{prefix}-{i:05d}", d) for i, d in enumerate(docs) if len(d.split()) >= MIN_WORDS // 2]


def gutenberg_docs() -> list[tuple[str, str]]:
    """(id, text) documents of 250-600 words from the eight Gutenberg books."""
    out = []
    for path in sorted((CORPUS / "prose-gutenberg").glob("pg*.txt")):
        raw = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        start = raw.find("\n", raw.find("*** START OF")) + 1
        end = raw.find("*** END OF")
        body = raw[start : end if end > 0 else len(raw)]
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if len(p.split()) >= 8]
        out += _pack(paragraphs, path.stem)
    return out


def web_docs() -> list[tuple[str, str]]:
    """(id, text) of extracted corpus pages with at least 150 words, cut to at most 600 at a paragraph end."""
    out = []
    table = extracted_docs()
    for i, text in enumerate(table.column("text").to_pylist()):
        paragraphs = [p for p in text.split("\n") if p.strip()]
        kept, n = [], 0
        for p in paragraphs:
            if n + len(p.split()) > MAX_WORDS and n >= 150:
                break
            kept.append(p)
            n += len(p.split())
        if n >= 150:
            out.append((f"web-{i:05d}", "\n\n".join(kept)))
    return out


def near_copy(text: str, target: float, rng: random.Random, vocab: list[str]) -> tuple[str, float, str]:
    """A copy of `text` edited until its exact 5-gram Jaccard with `text` is about `target`: (copy, J, edits)."""
    paragraphs = text.split("\n\n")
    how = []
    if len(paragraphs) > 2 and rng.random() < 0.3:
        i, j = rng.sample(range(len(paragraphs)), 2)
        paragraphs[i], paragraphs[j] = paragraphs[j], paragraphs[i]
        how.append("swap")
    words = "\n\n".join(paragraphs).split(" ")
    ops = []
    for _ in range(len(words)):
        kind = rng.choices(("sub", "ins", "del"), weights=(3, 1, 1))[0]
        ops.append((kind, rng.random(), rng.choice(vocab)))
    base = shingles(text)

    def apply(k: int) -> str:
        w = list(words)
        for kind, where, word in ops[:k]:
            pos = int(where * len(w))
            if kind == "sub" and w:
                w[min(pos, len(w) - 1)] = word
            elif kind == "ins":
                w.insert(pos, word)
            elif w:
                del w[min(pos, len(w) - 1)]
        return " ".join(w)

    lo, hi = 0, len(ops)
    while lo < hi:  # the fewest edits that bring J to the target or below (J falls with k, nearly monotone)
        mid = (lo + hi) // 2
        if jaccard(base, shingles(apply(mid))) > target:
            lo = mid + 1
        else:
            hi = mid
    copy = apply(lo)
    how.append(f"{lo} word edits")
    return copy, jaccard(base, shingles(copy)), "+".join(how)
