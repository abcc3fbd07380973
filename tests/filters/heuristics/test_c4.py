"""c4_quality (line removals as counters, document reasons) and c4_badwords."""

from __future__ import annotations

import pytest
from stage_util import apply, counters, reason

from curate.errors import ConfigError, StageError
from curate_filters.heuristics.c4 import C4BadWords, C4Quality, badwords_regex

SENTENCES = [
    "The river flooded the lower fields after three days of rain.",
    "Farmers moved their animals to higher ground before night fell.",
    "A small team of volunteers filled sandbags near the old bridge.",
    "The school stayed open so that families had a dry place to sleep.",
    "By Friday the water had started to fall, and the roads reopened.",
    "Officials said the repairs would take most of the summer.",
]
GOOD = "\n".join(SENTENCES)


def test_good_page_is_kept_unchanged():
    stage = C4Quality()
    reasons, texts, _ = apply(stage, [GOOD])
    assert reasons == [None] and texts == [GOOD]
    c = counters(stage)
    assert c["lines_total"] == 6 and c["lines_kept"] == 6


def test_lines_are_removed_and_counted_per_rule():
    lines = [
        *SENTENCES,
        "Share this",  # no terminal punctuation
        "Yes it is.",  # ends well but... 3 words: kept
        "Hi there.",  # too few words
        "Please enable JavaScript to view the comments.",
        "This site uses cookies to improve your experience.",
        "See " + "x" * 1001 + " for details.",
    ]
    stage = C4Quality()
    reasons, texts, _ = apply(stage, ["\n".join(lines)])
    assert reasons == [None]
    assert texts[0] == "\n".join([*SENTENCES, "Yes it is."])
    c = counters(stage)
    assert c["lines_removed_no_terminal_punct"] == 1
    assert c["lines_removed_too_few_words"] == 1
    assert c["lines_removed_javascript"] == 1
    assert c["lines_removed_policy"] == 1
    assert c["lines_removed_too_long_word"] == 1
    assert c["docs_changed"] == 1


def test_citations_are_removed_from_lines():
    _, texts, _ = apply(
        C4Quality(), [GOOD + "\nThe bridge was built in 1820.[3] It was rebuilt later.[citation needed]"]
    )
    assert texts[0].endswith("The bridge was built in 1820. It was rebuilt later.")


def test_lorem_ipsum_rejects_the_page():
    assert reason(C4Quality(), GOOD + "\nLorem ipsum dolor sit amet, consectetur.") == "lorem_ipsum"


def test_curly_bracket_rejects_the_page():
    assert reason(C4Quality(), GOOD + "\nThe function returns {value} to the caller.") == "curly_bracket"


def test_too_few_sentences():
    assert reason(C4Quality(), "\n".join(SENTENCES[:4])) == "too_few_sentences"
    # Sentences are counted inside lines (spaCy sentencizer rules): two lines of several sentences are enough.
    two_lines = " ".join(SENTENCES[:3]) + "\n" + " ".join(SENTENCES[3:5])
    assert reason(C4Quality(), two_lines) is None
    assert reason(C4Quality(min_num_sentences=-1), SENTENCES[0]) is None


def test_fineweb_setting_keeps_lines_without_terminal_punctuation():
    text = GOOD + "\nShare this page with friends"
    reasons, texts, _ = apply(C4Quality(filter_no_terminal_punct=False), [text])
    assert reasons == [None] and texts == [text]


def test_sentence_mode_joins_kept_sentences_with_spaces():
    text = " ".join(SENTENCES) + " Click here"
    reasons, texts, _ = apply(C4Quality(split_paragraph=False), [text])
    assert reasons == [None] and texts == [" ".join(SENTENCES)]


def test_badwords_rejects_whole_words_only():
    stage = C4BadWords()
    reasons, _, _ = apply(stage, ["The assistant passed the class.", "What an ass he was."])
    assert reasons == [None, "badwords"]
    assert counters(stage)["docs_with_badwords"] == 1


def test_badwords_min_count_counts_occurrences():
    texts = ["What an ass he was.", "An ass, an ass, and an ass again.", "Ass! ASS. ass? The assistant stayed."]
    assert apply(C4BadWords(), texts)[0] == ["badwords"] * 3
    assert apply(C4BadWords(min_count=3), texts)[0] == [None, "badwords", "badwords"]  # "assistant" is no match
    assert apply(C4BadWords(min_count=4), texts)[0] == [None, None, None]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="min_count"):
            C4BadWords(min_count=bad)
    # with a share, a page needs that many per word: 3 in 8 words (0.375) passes 0.3, not 0.4; 3 in 6 passes both
    assert apply(C4BadWords(min_count=3, min_share=0.3), texts)[0] == [None, "badwords", "badwords"]
    assert apply(C4BadWords(min_count=3, min_share=0.4), texts)[0] == [None, None, "badwords"]
    long_page = " ".join(["An ass, an ass, and an ass again."] + ["The committee met on Tuesday."] * 200)
    assert apply(C4BadWords(min_count=3, min_share=0.005), [long_page])[0] == [None]  # 3 in 1,008 words
    with pytest.raises(ConfigError, match="min_share"):
        C4BadWords(min_share=1.5)


def test_badwords_follows_the_language_column_and_allowlist():
    stage = C4BadWords()
    # 'scheiße' is on the German list, not on the English one.
    assert apply(stage, ["Das ist scheiße.", "Das ist scheiße."], language=["de", "en"])[0] == ["badwords", None]
    # Japanese matches without word boundaries; the allowlisted 'sm' is not a bad word.
    regex = badwords_regex("ja")
    assert regex is not None and regex.search("sm") is None


def test_badwords_missing_language():
    with pytest.raises(StageError):
        apply(C4BadWords(), ["text"], language=["xx-unknown"])
    stage = C4BadWords(fail_on_missing_language=False)
    assert apply(stage, ["text"], language=["xx-unknown"])[0] == [None]
    assert counters(stage) == {"missing_badwords_language:xx-unknown": 1}


def test_badwords_keep_fraction_is_deterministic_per_document():
    texts = [f"What an ass, number {i}." for i in range(200)]
    first = apply(C4BadWords(keep_fraction=0.5, seed=3), texts)[0]
    again = apply(C4BadWords(keep_fraction=0.5, seed=3), texts)[0]
    assert first == again
    assert 60 < first.count(None) < 140
