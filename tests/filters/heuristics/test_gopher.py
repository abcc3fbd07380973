"""gopher_repetition and gopher_quality: one test per reason, exact n-gram counting, parity on corpus pages."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from stage_util import GOOD, apply, reason

from curate_filters.heuristics.gopher import GopherQuality, GopherRepetition, _NGrams

UNIQUE = " ".join(f"w{i}x" for i in range(200))  # 200 distinct words: no repetition at all


def rep(**kw) -> GopherRepetition:
    return GopherRepetition(**kw)


def test_good_text_passes_both():
    assert reason(rep(), GOOD) is None
    assert reason(GopherQuality(), GOOD) is None


def test_repetition_empty():
    assert reason(rep(), "") == "empty"


def test_dup_para_frac():
    text = "\n\n".join(["alpha beta gamma"] * 3 + ["delta epsilon"])
    assert reason(rep(), text) == "dup_para_frac"


def test_dup_para_char_frac():
    long = "x" * 300
    text = "\n\n".join([long, long, "a", "b", "c", "d", "e", "f", "g", "h", "i"])  # 1/11 paragraphs, 300/620 chars
    assert reason(rep(), text) == "dup_para_char_frac"


def test_dup_line_frac():
    assert reason(rep(), "same line\nsame line\nsame line\nother line") == "dup_line_frac"


def test_dup_line_char_frac():
    long = "y" * 300
    text = "\n".join([long, long, "a", "b", "c", "d", "e", "f", "g", "h", "i"])
    assert reason(rep(), text) == "dup_line_char_frac"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_n_gram(n):
    phrase = " ".join(["alpha", "beta", "gamma", "delta"][:n])
    text = " ".join(f"{phrase} u{i}q" for i in range(30))
    stage = rep(top_n_grams=((n, 0.18),), dup_n_grams=())
    assert reason(stage, text) == f"top_{n}_gram"
    assert reason(stage, UNIQUE) is None


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9, 10])
def test_duplicated_n_grams(n):
    phrase = " ".join(f"p{k}hrase" for k in range(n))
    text = f"{UNIQUE[:300]} {phrase} {UNIQUE[300:600]} {phrase} {UNIQUE[600:700]}"
    stage = rep(top_n_grams=(), dup_n_grams=((n, 0.03),))
    assert reason(stage, text) == f"duplicated_{n}_n_grams"
    assert reason(rep(top_n_grams=(), dup_n_grams=((n + 1, 0.03),)), text) is None  # no repeated (n+1)-gram


def test_zero_threshold_disables_a_check():
    text = "same line\nsame line\nsame line\nother line"
    assert reason(rep(dup_line_frac=None, dup_line_char_frac=None, top_n_grams=(), dup_n_grams=()), text) is None


def _find_all_duplicate(words: list[str], n: int) -> int:
    """The published algorithm (datatrove's find_all_duplicate), kept here as the reference."""
    unique: set[tuple[str, ...]] = set()
    repeated, idx = 0, 0
    while idx < len(words) - n + 1:
        gram = tuple(words[idx : idx + n])
        if gram in unique:
            repeated += sum(map(len, gram))
            idx += n
        else:
            unique.add(gram)
            idx += 1
    return repeated


def _find_top_duplicate(words: list[str], n: int) -> int:
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def test_ngram_counting_matches_the_reference_algorithms_exactly():
    rng = random.Random(7)
    for _ in range(800):
        alphabet = rng.choice([2, 3, 6])
        words = [rng.choice("abcdef"[:alphabet]) * rng.randint(1, 3) for _ in range(rng.randint(1, 60))]
        vocab: dict[str, int] = {}
        ids = np.array([vocab.setdefault(w, len(vocab)) for w in words], np.int64)
        lengths = np.array([len(w) for w in vocab], np.int64)
        grams = _NGrams(ids, lengths)
        for n in range(2, 11):
            if len(words) < n:
                continue
            # frac -1 forces the exact computation; a random frac exercises the bounds.
            assert grams.duplicated_chars(n, 1, -1.0) == _find_all_duplicate(words, n)
            assert grams.top_chars(n, 1, -1.0) == _find_top_duplicate(words, n)
            n_chars, frac = 40 * len(words), rng.random() * 0.3
            exact = _find_all_duplicate(words, n)
            assert (grams.duplicated_chars(n, n_chars, frac) / n_chars > frac) == (exact / n_chars > frac)
            top = _find_top_duplicate(words, n)
            assert (grams.top_chars(n, n_chars, frac) / n_chars > frac) == (top / n_chars > frac)


# -- quality ------------------------------------------------------------------------------------------------------


def test_quality_too_few_and_too_many_words():
    assert reason(GopherQuality(), "Only a few words here.") == "too_few_words"
    assert reason(GopherQuality(max_doc_words=60), GOOD) == "too_many_words"


def test_quality_mean_word_length():
    assert reason(GopherQuality(), " ".join(["a", "the", "of", "an", "to"] * 20)) == "mean_word_length_too_short"
    assert reason(GopherQuality(), " ".join(["the", "extraordinarilylongword"] * 40)) == "mean_word_length_too_long"


def test_quality_symbols():
    assert reason(GopherQuality(), GOOD + " #tag" * 15) == "too_many_hashes"
    assert reason(GopherQuality(), GOOD + " wait..." * 15) == "too_many_ellipsis"


def test_quality_bullet_and_ellipsis_lines():
    sentences = GOOD.split(". ")
    assert reason(GopherQuality(), "\n".join(f"- {s}" for s in sentences)) == "too_many_bullet_lines"
    assert reason(GopherQuality(), "\n".join(f"{s} and so on…" for s in sentences)) == "too_many_ellipsis_lines"


def test_quality_alpha_words():
    numbers = " ".join(str(1000 + i) for i in range(45))
    assert reason(GopherQuality(), f"{GOOD} {numbers}") == "too_few_alpha_words"


def test_datatrove_name_of_the_alpha_words_ratio_still_loads(tmp_path):
    """A ported pipeline may say max_non_alpha_words_ratio (datatrove's name): it sets min_alpha_words_ratio."""
    from curate import config
    from curate.errors import ConfigError

    def load(with_: str):
        path = tmp_path / "p.yaml"
        path.write_text(
            "name: t\ninput: {format: parquet, path: in.parquet}\n"
            f"stages:\n  - id: gq\n    uses: gopher_quality\n    with: {{{with_}}}\n"
        )
        return config.load(str(path), check_input=False)

    text = f"{GOOD} " + " ".join(str(1000 + i) for i in range(45))  # 2/3 of the words have a letter
    assert reason(GopherQuality(), text) == "too_few_alpha_words"  # the default minimum is 0.8
    for value, expect in (("0.5", None), ("0.9", "too_few_alpha_words"), ("null", None)):
        old, new = load(f"max_non_alpha_words_ratio: {value}"), load(f"min_alpha_words_ratio: {value}")
        assert old.stages[0].params == new.stages[0].params
        assert old.resolved["stages"] == new.resolved["stages"]
        assert "max_non_alpha_words_ratio" not in old.resolved["stages"][0]["with"]
        assert reason(old.stages[0].build(), text) == reason(new.stages[0].build(), text) == expect
    with pytest.raises(ConfigError, match=r"p\.yaml:\d+: .*'min_alpha_words_ratio' and 'max_non_alpha_words_ratio'"):
        load("max_non_alpha_words_ratio: 0.5, min_alpha_words_ratio: 0.5")
    with pytest.raises(ConfigError, match="max_non_alpha_words_ratio: expected"):
        load("max_non_alpha_words_ratio: lots")


def test_quality_stop_words():
    text = " ".join(
        f"Bright yellow birds sang sweetly every morning near tall green trees number{i}." for i in range(8)
    )
    assert reason(GopherQuality(), text) == "too_few_stop_words"
    assert reason(GopherQuality(stop_words=["birds", "trees"]), text) is None


def test_quality_word_counts_follow_the_document_language_column():
    zh = "我们今天去北京大学参观了博物馆，然后在湖边散步。" * 4
    # English rules see 4 "words"; per-document Chinese splitting counts characters.
    assert reason(GopherQuality(language="en"), zh) == "too_few_words"
    assert (
        reason(
            GopherQuality(language=None, min_stop_words=None, max_avg_word_length=None, min_avg_word_length=1),
            zh,
            language="zh",
        )
        is None
    )


def test_batch_of_mixed_documents():
    reasons, _, _ = apply(GopherQuality(), [GOOD, "short", GOOD + " #x" * 20])
    assert reasons == [None, "too_few_words", "too_many_hashes"]


def test_parity_with_datatrove_on_corpus_pages(corpus):
    """Same decision and reason as datatrove's Gopher filters on a few real pages."""
    pytest.importorskip("datatrove")
    pytest.importorskip("spacy")
    trafilatura = pytest.importorskip("trafilatura")
    import gzip

    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    from curate_filters.heuristics.gopher import DATATROVE_QUALITY_REASONS

    pages = sorted((corpus / "html-trafilatura-eval" / "html").glob("*.gz"))[:40]
    texts = [
        trafilatura.extract(gzip.decompress(p.read_bytes()).decode("utf-8", "replace"), favor_precision=True)
        for p in pages
    ]
    texts = [t for t in texts if t]
    assert len(texts) >= 30
    for ours, theirs, names in (
        (GopherRepetition(), GopherRepetitionFilter(), {}),
        (GopherQuality(), GopherQualityFilter(), DATATROVE_QUALITY_REASONS),
    ):
        reasons, _, _ = apply(ours, texts)
        for text, r in zip(texts, reasons):
            res = theirs.filter(Document(text=text, id="x"))
            expected = None if res is True else res[1]
            assert (names.get(r, r) if r else None) == expected
