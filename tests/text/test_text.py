"""curate.text: the spaCy-compatible word/sentence splitter, CJK and Korean splitting, ids, normalisation."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from curate.text import (
    DATA,
    RULE_LANGUAGES,
    RuleTokenizer,
    canonical_language,
    count_sentences,
    normalize_for_hash,
    register_splitter,
    simplify_text,
    split_sentences,
    split_words,
    tokenizer,
)


def test_english_rules_split_punctuation_contractions_and_keep_urls():
    words = split_words("Don't stop (now), U.S. friends... Visit https://example.com/a?b=1 today!", "en")
    assert words == [
        "Do", "n't", "stop", "(", "now", ")", ",", "U.S.", "friends", "...", "Visit",
        "https://example.com/a?b=1", "today", "!",
    ]  # fmt: skip


def test_english_rules_units_hyphens_and_emoticons():
    assert split_words("5km well-known :) 10$ e.g.", "en") == ["5", "km", "well", "-", "known", ":)", "10", "$", "e.g."]


def test_default_language_is_english_and_aliases_resolve():
    assert split_words("can't") == ["ca", "n't"]
    assert split_words("can't", "eng") == ["ca", "n't"]
    assert canonical_language("eng_Latn") == "en"
    assert canonical_language("zho_Hans") == "zh"
    assert canonical_language(None) is None


def test_other_languages_use_their_own_rules():
    # German rules keep "z.B." as one token; the multi-language rules do not know it.
    assert "z.B." in split_words("Das ist z.B. gut.", "de")
    assert tokenizer("sw") is tokenizer("xx")  # no exported rules: spaCy's multi-language rules


def test_chinese_and_japanese_get_word_counts_without_spaces():
    zh = split_words("我们今天去北京大学。", "zh")
    assert zh == ["我", "们", "今", "天", "去", "北", "京", "大", "学"]
    ja = split_words("東京タワーはとても高いです", "ja")
    assert ja == ["東", "京", "タワー", "はとても", "高", "いです"]
    # Without a CJK splitter the whole sentence would be a single "word".
    assert len(split_words("我们今天去北京大学", "en")) == 1


def test_korean_words_are_eojeol_without_punctuation():
    assert split_words("수도는 서울특별시이다. 좋아요!", "ko") == ["수도는", "서울특별시이다", "좋아요"]


def test_register_splitter_overrides_a_language():
    register_splitter("tlh", lambda text: text.split("-"))
    try:
        assert split_words("qa-pla", "tlh") == ["qa", "pla"]
        assert list(tokenizer("tlh").token_ids("qa-pla-qa")) == [0, 1, 0]
    finally:
        register_splitter("tlh", None)
    assert split_words("qa-pla", "tlh") == ["qa", "-", "pla"]  # back to the multi-language rules


def test_sentences_follow_spacy_sentencizer():
    assert count_sentences("One. Two! Three? four", "en") == 4
    # Punctuation after the period stays in the sentence; "..." is not a sentence end for spaCy.
    assert split_sentences('He said "hi." Then left... and came back.', "en") == [
        'He said "hi."',
        " Then left... and came back.",
    ]
    assert count_sentences("", "en") == 0


def test_cjk_sentences():
    assert split_sentences("我们去北京。「好吗？」第二行\n第三行", "zh") == [
        "我们去北京。",
        "「好吗？」",
        "第二行",
        "第三行",
    ]


def test_token_ids_are_stable_and_lengths_match():
    tok = tokenizer("en")
    ids = tok.token_ids("the cat, the hat")
    assert ids[0] == ids[3] and ids[1] != ids[4]
    assert [tok.strings[i] for i in ids] == ["the", "cat", ",", "the", "hat"]
    assert list(tok.lengths()[ids]) == [3, 3, 1, 3, 3]
    with pytest.raises(ValueError):
        ids[0] = 5  # shared with other stages through the memo: read-only


def test_vocabulary_reset_bumps_generation_and_rebuilds_properties():
    tok = RuleTokenizer(_rules("en"))
    tok._max_vocab = 3
    cache: dict = {}
    tok.token_ids("a b c d e")
    assert tok.id_property(cache, lambda s: s == "e").sum() == 1
    gen = tok.generation
    tok.token_ids("x y")  # vocabulary of 5 > 3: reset before this call
    assert tok.generation == gen + 1
    prop = tok.id_property(cache, lambda s: s == "x")
    assert len(prop) == len(tok.strings) == 2 and prop.sum() == 1


def _rules(lang: str) -> dict:
    with gzip.open(DATA / f"spacy_{lang}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("lang", sorted(RULE_LANGUAGES))
def test_letters_only_fast_path_agrees_with_the_full_algorithm(lang):
    """chunk_tokens() returns a run of letters whole without running the rules; check that no shipped rule set
    would split one."""
    tok = tokenizer(lang)
    words = ["hello", "Straße", "naïve", "Ελλάδα", "Москва", "wwwcom", "km", "USA", "cannot", "gonna", "aux", "dass"]
    for w in words:
        slow = tuple(tok._tokenize(w))  # type: ignore[attr-defined]
        if len(slow) > 1:
            assert w in tok._specials, (lang, w, slow)  # type: ignore[attr-defined]
        assert tok.chunk_tokens(w) == slow


def test_normalize_for_hash():
    assert normalize_for_hash("  Hello\u00a0 WORLD\n") == "hello world"
    assert normalize_for_hash("ﬁne") == "fine"


# Strings where datatrove's steps interact: decimal separators, digits of other scripts (some newer than Python's
# Unicode), punctuation between numbers, control characters, marks left between spaces, NFD of Hangul and ligatures.
SIMPLIFY_CASES = [
    "",
    "   ",
    "Hello, World!",
    "Prices: 1,000,000.50 and 3.14 and 1|2|3 and 12:30",
    "١٢٣٫٤٥ ۱۲۳ ० १२ ๑๒๓ ᮰᮱ 𑵐 \U00011f50\U00011f51 \U0001e5f1",
    "Café naïve ÉCOLE Ångström façade",
    "a \u0301 b",  # a lone combining mark between spaces: both spaces stay
    "\u0301start and end\u0301",
    "한국어 텍스트입니다",
    "ﬁne ﬂour ㎞ Ⅻ ①",
    "tab\there\x0bvt\x0cff\r\ncrlf\x85nel\u2028ls\xa0nbsp",
    "\x00\x01\x1f\x7f\x9f control",
    "「引用」《书名》，句号。问号？感叹号！…",
    "em—dash – en-dash “quotes” ‘single’ «guillemets» ►arrow",
    "İstanbul ΣΊΣΥΦΟΣ straße ǅ",
    "x.5 5. .5 5.،5 5٫5 5⎖5",
    "emoji 😀👍🏽 and ZWJ 👨\u200d👩\u200d👧",
    "under_score @handle #tag $5 %20 ^caret ~tilde `tick` |pipe| \\back/slash",
    "MONDAY january",  # weekday and month names are left alone by the default config
]


def test_simplify_text_matches_datatrove_on_tricky_strings():
    dt = pytest.importorskip("datatrove.utils.text")
    for s in SIMPLIFY_CASES:
        assert simplify_text(s) == dt.simplify_text(s), repr(s)
    assert simplify_text("Café, 1,000.5 DOLLARS!") == "cafe 0 0 dollars"  # "1,000" then ".5": one separator each
    assert simplify_text("a \u0301 b") == "a  b"


def test_simplify_text_reads_the_digits_of_every_script_as_datatrove_does():
    """Every decimal digit the `regex` module knows (datatrove's \\p{Nd}), newer ones than Python's included."""
    import sys

    regex = pytest.importorskip("regex")
    dt = pytest.importorskip("datatrove.utils.text")
    nd = regex.compile(r"\p{Nd}")
    digits = [chr(c) for c in range(sys.maxunicode + 1) if nd.match(chr(c))]
    assert len(digits) >= 660
    text = " ".join(f"x{d}{d}.{d}y" for d in digits)
    assert simplify_text(text) == dt.simplify_text(text) == " ".join(["x0y"] * len(digits))


@pytest.mark.slow
def test_simplify_text_matches_datatrove_on_every_character():
    """Every code point alone and between digits (datatrove's punctuation table, digits of every script)."""
    import sys

    dt = pytest.importorskip("datatrove.utils.text")
    chars = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    block = 4096
    for i in range(0, len(chars), block):
        text = " ".join(f"1{c}2 {c}" for c in chars[i : i + block])
        assert simplify_text(text) == dt.simplify_text(text), i


def test_simplify_text_matches_datatrove_on_corpus_texts(corpus):
    """Real text: sentences of 75 languages, CCNet web documents, a Gutenberg book in pieces."""
    dt = pytest.importorskip("datatrove.utils.text")
    texts: list[str] = []
    for f in sorted((corpus / "langid-lingua-testdata" / "language-testdata" / "sentences").glob("*.txt")):
        texts.extend(f.read_text(encoding="utf-8").splitlines()[:4])
    for f in sorted((corpus / "jsonl-cc-docs-dolma").glob("*.json*.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for line in fh if line.strip())
    book = next(iter(sorted((corpus / "prose-gutenberg").glob("*.txt")))).read_text(encoding="utf-8")
    texts.extend(book[i : i + 5000] for i in range(0, min(len(book), 500_000), 5000))
    assert len(texts) >= 400
    for text in texts:
        assert simplify_text(text) == dt.simplify_text(text), text[:200]


def test_parity_with_spacy_on_corpus_sentences(corpus):
    """Token-for-token agreement with spaCy (what datatrove counts words with) on real sentences of 75 languages."""
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    files = sorted((corpus / "langid-lingua-testdata" / "language-testdata" / "sentences").glob("*.txt"))
    assert len(files) >= 70
    n = 0
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines()[:5]:
            doc = nlp(line)
            assert [t.text for t in doc if t.text.strip()] == split_words(line, "en"), line
            assert len(list(doc.sents)) == count_sentences(line, "en"), line
            n += 1
    assert n >= 350
    assert isinstance(tokenizer("en").token_ids("x"), np.ndarray)


def test_memo_is_bounded_by_characters():
    tok = RuleTokenizer(_rules("en"))
    tok._memo_limit = 1000
    for i in range(100):
        tok.token_ids(f"text number {i} " * 10)
    assert 0 < len(tok._memo) <= 3 and tok._memo_chars <= 1000
    first = tok.token_ids("text number 99 " * 10)
    assert first is tok.token_ids("text number 99 " * 10)  # the latest is remembered
