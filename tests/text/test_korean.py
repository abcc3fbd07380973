"""Korean word splitting (eojeol by default, Kiwi morphemes as an option), shipped stop words, and the filters'
word_splitter option."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curate.errors import ConfigError
from curate.text import SPLITTERS, kiwi_available, split_words, stop_words, tokenizer
from curate_filters.heuristics.fineweb import FineWebQuality
from curate_filters.heuristics.gopher import STOP_WORDS, GopherQuality

SENTENCE = "북핵외교를 전담하는 별도조직인 “한반도평화교섭본부”가 있어 6자회담을 준비했다."

needs_kiwi = pytest.mark.skipif(not kiwi_available(), reason="kiwipiepy not installed (pip install 'curate[korean]')")


def test_eojeol_are_whitespace_words_without_punctuation():
    words = split_words(SENTENCE, "ko")
    assert words == [
        "북핵외교를",
        "전담하는",
        "별도조직인",
        "한반도평화교섭본부",
        "가",
        "있어",
        "6자회담을",
        "준비했다",
    ]
    assert split_words(SENTENCE, "ko", "eojeol") == words
    assert split_words(SENTENCE, "kor") == words  # ISO 639-3 spelling


def test_named_splitter_leaves_other_languages_alone_and_unknown_names_fail():
    assert tokenizer("en", "kiwi") is tokenizer("en")
    assert split_words("Hello, world.", "en", "kiwi") == ["Hello", ",", "world", "."]
    with pytest.raises(ConfigError, match="unknown word_splitter"):
        tokenizer("ko", "mecab")
    assert set(SPLITTERS) == {"eojeol", "kiwi"}


@needs_kiwi
def test_kiwi_splits_morphemes():
    words = split_words(SENTENCE, "ko", "kiwi")
    # particles and endings become their own tokens: 외교+를, 전담+하+는, 준비+하+었+다
    assert words[:6] == ["북핵", "외교", "를", "전담", "하", "는"]
    assert ["준비", "하", "었", "다", "."] == words[-5:]
    assert len(words) > 2 * len(split_words(SENTENCE, "ko"))


def test_shipped_stop_words():
    eojeol = stop_words("ko")
    assert eojeol is not None and 20 <= len(eojeol) <= 40
    assert {"있다", "그러나", "및", "때문에"} <= set(eojeol)
    assert not any(w.startswith("#") or " " in w for w in eojeol)
    morphemes = stop_words("ko", "kiwi")
    assert morphemes is not None and {"의", "를", "하", "다"} <= set(morphemes)
    assert stop_words("en") is None  # English keeps Gopher's list (filters/heuristics/gopher.py)


def _batch(*texts: str) -> pa.Table:
    return pa.table({"id": [str(i) for i in range(len(texts))], "text": list(texts)})


KOREAN_DOC = " ".join(
    [
        "정부는 올해 예산안을 국회에 제출했고 여야는 다음 주부터 심사에 들어갈 예정이다.",
        "그러나 야당은 복지 예산이 부족하다며 수정을 요구하고 있다.",
        "전문가들은 경기 회복을 위해 재정 지출을 늘려야 한다는 의견과 함께 재정 건전성을 지켜야 한다는 의견을 내놓았다.",
        "이 때문에 국회 심사 과정에서 치열한 논쟁이 예상된다.",
    ]
)


def test_gopher_uses_korean_stop_words_for_korean():
    ko = GopherQuality(language="ko", min_doc_words=10, min_avg_word_length=1)
    assert ko._stop == frozenset(stop_words("ko") or ())
    assert GopherQuality()._stop == frozenset(STOP_WORDS)
    reasons = ko.reject_batch(_batch(KOREAN_DOC, KOREAN_DOC.replace("그러나", "").replace("때문에", "탓에")))
    assert reasons[0] is None  # 그러나, 있다, 함께, 이, 때문에
    # with English stop words a Korean page never has two: the reason FineWeb-2 re-derives the list
    en = GopherQuality(language="ko", min_doc_words=10, min_avg_word_length=1, stop_words=list(STOP_WORDS))
    assert en.reject_batch(_batch(KOREAN_DOC)) == ["too_few_stop_words"]


@needs_kiwi
def test_filters_take_word_splitter():
    eojeol = FineWebQuality(language="ko", new_line_ratio=0.05)
    morph = FineWebQuality(language="ko", word_splitter="kiwi", new_line_ratio=0.05)
    lines = "\n".join(KOREAN_DOC.split(". ")) + "."
    # newlines per word: morphemes are ~2.5x as many as eojeol, so the same page passes with kiwi only
    assert eojeol.reject_batch(_batch(lines)) == ["list_ratio"]
    assert morph.reject_batch(_batch(lines)) == [None]
    g = GopherQuality(language="ko", word_splitter="kiwi", min_doc_words=10, min_avg_word_length=1)
    assert "었" in g._stop and g.reject_batch(_batch(KOREAN_DOC)) == [None]
