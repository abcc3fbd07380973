"""Korean filter thresholds re-derived from Korean reference text, FineWeb-2 style (Penedo et al. 2025, "FineWeb2:
One Pipeline to Scale Them All", sec. 4): for each metric, English and Korean reference documents are built the same
way from real sentences, and the Korean threshold keeps the same share of Korean reference as FineWeb's English
threshold keeps of English reference.

Reference text (read in place, never downloaded): the 300 Korean and 300 English sentences of
../shared/corpus/langid-lingua-testdata (both Leipzig news/web sentences, so the two sides are alike in kind), made
into --docs documents each of 6-14 sentences drawn without replacement, in paragraphs of 1-3 sentences (one a
line). A second Korean reference, when konlpy is installed: its bundled kolaw (the Constitution) and kobill (ten
National Assembly bills) text files, found on disk without importing konlpy; the table reports the share of those
kept by the derived thresholds (not used to derive them).

The rule, one for every row:
- quantile: where the English threshold rejects at least 1% of the English reference, the Korean threshold is the
  Korean reference's value at the same percentile (min-thresholds: the r-th percentile; max-thresholds: the (1-r)-th).
- tail ratio: where it rejects (almost) none, the quantile is no signal (every clean document passes), so the English
  threshold is scaled by the ratio of the tails: the 5th (min) or 95th (max) percentile, Korean / English; the
  median where a tail is 0. Where both are 0 the metric says nothing about the language and the English value stays.
- scale: length parameters (words per document, characters per line, the MinHash n-gram) scale with the measured
  ratio of Korean to English units per sentence (eojeol or morphemes per word, characters per character).

    python bench/korean_thresholds.py [--docs 400] [--seed 0] [--splitter eojeol|kiwi|both]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curate.text import kiwi_available, stop_words, tokenizer  # noqa: E402
from curate_filters.annotation.langid import default_model_path, load_fasttext  # noqa: E402
from curate_filters.heuristics.common import PUNCTUATION_SET, TERMINAL_PUNCTUATION  # noqa: E402
from curate_filters.heuristics.gopher import STOP_WORDS, _NGrams  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
SENTENCES = CORPUS / "langid-lingua-testdata" / "language-testdata" / "sentences"


def reference_docs(sentences: list[str], n: int, seed: int) -> list[str]:
    """`n` documents of 6-14 distinct sentences, paragraphs of 1-3 sentences one a line (same recipe per language)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        picked = rng.sample(sentences, rng.randint(6, 14))
        lines, i = [], 0
        while i < len(picked):
            step = rng.randint(1, 3)
            lines.append(" ".join(picked[i : i + step]))
            i += step
        docs.append("\n".join(lines))
    return docs


def konlpy_docs() -> list[str]:
    """kolaw and kobill texts shipped inside konlpy (None of it downloaded), or [] when konlpy is absent."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"
    return [p.read_text(encoding="utf-8") for p in sorted(root.glob("ko*/*.txt"))]


def _symbol(tok: str) -> bool:
    return all(c in PUNCTUATION_SET for c in tok)


def metrics(doc: str, language: str, splitter: str | None) -> dict[str, float]:
    """The value of every thresholded metric on one document, computed as the filters compute it."""
    tok = tokenizer(language, splitter)
    words = tok.words(doc)
    real = [w for w in words if not _symbol(w)]
    stops = frozenset(stop_words(language, splitter) or STOP_WORDS)
    lines = [line for line in doc.split("\n") if line.strip()]
    out: dict[str, float] = {
        "gopher_quality.min_avg_word_length": float(np.mean([len(w) for w in real])) if real else 0.0,
        "gopher_quality.max_avg_word_length": float(np.mean([len(w) for w in real])) if real else 0.0,
        "gopher_quality.min_alpha_words_ratio": sum(any(c.isalpha() for c in w) for w in words) / max(1, len(words)),
        "gopher_quality.min_stop_words": float(len({w for w in words if w in stops})),
        "fineweb_quality.line_punct_thr": sum(line[-1] in TERMINAL_PUNCTUATION for line in lines) / len(lines),
        "fineweb_quality.new_line_ratio": doc.count("\n") / max(1, len(words)),
    }
    ids = tok.token_ids(doc)
    grams = _NGrams(ids, tok.lengths())
    for n in (2, 3, 4):
        out[f"gopher_repetition.top_{n}_gram"] = grams.top_chars(n, len(doc), -1.0) / len(doc) if grams.m >= n else 0
    for n in range(5, 11):
        dup = grams.duplicated_chars(n, len(doc), -1.0) if grams.m >= n else 0
        out[f"gopher_repetition.dup_{n}_gram"] = dup / len(doc)
    return out


# metric -> (English threshold, "min" or "max": which side is rejected)
ENGLISH = {
    "fasttext_langid.language_threshold": (0.65, "min"),
    "gopher_repetition.top_2_gram": (0.20, "max"),
    "gopher_repetition.top_3_gram": (0.18, "max"),
    "gopher_repetition.top_4_gram": (0.16, "max"),
    **{f"gopher_repetition.dup_{n}_gram": (0.15 - 0.01 * (n - 5), "max") for n in range(5, 11)},
    "gopher_quality.min_avg_word_length": (3.0, "min"),
    "gopher_quality.max_avg_word_length": (10.0, "max"),
    "gopher_quality.min_alpha_words_ratio": (0.8, "min"),
    "gopher_quality.min_stop_words": (2.0, "min"),
    "fineweb_quality.line_punct_thr": (0.12, "min"),
    "fineweb_quality.new_line_ratio": (0.3, "max"),
}
INTEGER = {"gopher_quality.min_stop_words"}


def passes(values: np.ndarray, thr: float, side: str) -> np.ndarray:
    """Which documents a threshold keeps (the filters reject strictly beyond it)."""
    return values >= thr if side == "min" else values <= thr


def derive(en: np.ndarray, ko: np.ndarray, thr: float, side: str) -> tuple[float, str, float]:
    """(Korean threshold, method, share of English reference the English threshold keeps)."""
    kept_en = float(passes(en, thr, side).mean())
    rejected = 1.0 - kept_en
    if rejected >= 0.01:
        q = rejected if side == "min" else 1.0 - rejected
        return float(np.quantile(ko, q)), f"quantile p{100 * q:.1f}", kept_en
    tail = 5 if side == "min" else 95
    for name, p in ((f"p{tail}", tail), ("median", 50)):
        qe, qk = np.percentile(en, p), np.percentile(ko, p)
        if qe > 0 and qk > 0:
            return float(thr * qk / qe), f"tail ratio {name} {qk:.3g}/{qe:.3g}", kept_en
    return thr, "kept (no signal)", kept_en


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 100 else f"{x:,.0f}"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=400, help="reference documents per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splitter", choices=["eojeol", "kiwi", "both"], default="both")
    args = ap.parse_args()
    if not SENTENCES.is_dir():
        print(f"corpus not found: {SENTENCES}")
        return 1
    en_s = (SENTENCES / "en.txt").read_text(encoding="utf-8").splitlines()
    ko_s = (SENTENCES / "ko.txt").read_text(encoding="utf-8").splitlines()
    en_docs, ko_docs = reference_docs(en_s, args.docs, args.seed), reference_docs(ko_s, args.docs, args.seed)
    extra = konlpy_docs()
    print(
        f"reference: {len(en_s)} en / {len(ko_s)} ko lingua sentences -> {args.docs} documents each (seed "
        f"{args.seed}); konlpy kolaw+kobill: {len(extra) or 'absent'} documents (checked, not used to derive)"
    )

    model = load_fasttext(default_model_path())  # type: ignore[arg-type]

    def lid(texts: list[str], label: str) -> np.ndarray:
        labels, scores = model.predict([t.replace("\n", " ") for t in texts], k=-1, threshold=0.0)
        return np.array([dict(zip(ls, sc)).get(f"__label__{label}", 0.0) for ls, sc in zip(labels, scores)])

    lid_en, lid_ko = lid(en_s, "en"), lid(ko_s, "ko")
    splitters = ["eojeol", "kiwi"] if args.splitter == "both" else [args.splitter]
    if "kiwi" in splitters and not kiwi_available():
        print("kiwipiepy not installed: morpheme rows skipped (pip install 'curate[korean]')")
        splitters.remove("kiwi")
    en_tok = tokenizer("en")
    en_units = np.median([len([w for w in en_tok.words(s) if not _symbol(w)]) for s in en_s])
    en_chars = np.median([len(s) for s in en_s])
    for splitter in splitters:
        sp = None if splitter == "eojeol" else splitter
        ko_tok = tokenizer("ko", sp)
        ko_units = np.median([len([w for w in ko_tok.words(s) if not _symbol(w)]) for s in ko_s])
        unit_ratio = float(ko_units / en_units)
        char_ratio = float(np.median([len(s) for s in ko_s]) / en_chars)
        print(f"\n## word_splitter: {splitter}  (median per sentence: {ko_units:g} Korean units vs {en_units:g} "
              f"English words, ratio {unit_ratio:.3f}; characters ratio {char_ratio:.3f})\n")  # fmt: skip
        m_en = [metrics(d, "en", None) for d in en_docs]
        m_ko = [metrics(d, "ko", sp) for d in ko_docs]
        m_x = [metrics(d, "ko", sp) for d in extra]
        rows = []
        for key, (thr, side) in ENGLISH.items():
            if key.startswith("fasttext"):
                en, ko, x = lid_en, lid_ko, None
            else:
                en = np.array([m[key] for m in m_en])
                ko = np.array([m[key] for m in m_ko])
                x = np.array([m[key] for m in m_x]) if m_x else None
            t_ko, method, kept_en = derive(en, ko, thr, side)
            if key in INTEGER:
                t_ko = float(max(1, round(t_ko)))
            kept_ko = float(passes(ko, t_ko, side).mean())
            kept_x = "-" if x is None else f"{100 * passes(x, t_ko, side).mean():.0f}%"
            rows.append(
                (key, side, _fmt(thr), f"{100 * kept_en:.1f}%", method, f"{100 * kept_ko:.1f}%", _fmt(t_ko), kept_x)
            )
        scale = [  # (parameter, English value, Korean value, ratio)
            ("gopher_quality.min_doc_words", 50, round(50 * unit_ratio), unit_ratio),
            ("gopher_quality.max_doc_words", 100_000, round(100_000 * unit_ratio, -3), unit_ratio),
            ("c4_quality.min_words_per_line", 3, max(1, round(3 * unit_ratio)), unit_ratio),
            ("fineweb_quality.short_line_length", 30, round(30 * char_ratio), char_ratio),
            ("minhash.ngram", 5, max(1, round(5 * unit_ratio)), unit_ratio),
        ]
        for key, thr, t_ko, ratio in scale:
            rows.append((key, "-", _fmt(thr), "-", f"scale x{ratio:.3f}", "-", _fmt(t_ko), "-"))
        table(rows, ("metric", "rejects", "EN thr", "EN ref kept", "method (KO percentile)", "KO ref kept", "KO thr",
                     "konlpy kept"))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
