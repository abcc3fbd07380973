"""refinedweb_lines: each line rule, phrase edits, and the 5%-of-words document rule."""

from __future__ import annotations

from stage_util import GOOD, apply, counters

from curate_filters.heuristics.refinedweb import RefinedWebLines

BODY = "\n".join([GOOD] * 3)  # ~285 words: one removed 10-word line is 3.5%


def test_clean_text_is_kept_unchanged():
    reasons, texts, _ = apply(RefinedWebLines(), [BODY])
    assert reasons == [None] and texts == [BODY]


def test_each_line_rule():
    stage = RefinedWebLines()
    for line, why in [
        ("HOME NEWS SPORTS WEATHER CONTACT", "uppercase"),
        ("12 345 678", "numeric"),
        ("1.2k likes", "counter"),
        ("Menu", "single_word"),
    ]:
        reasons, texts, _ = apply(stage, [f"{BODY}\n{line}"])
        assert reasons == [None] and texts == [BODY], line
        assert counters(stage) == {f"lines_removed_{why}": 1}, line


def test_phrases_are_cut_from_short_lines():
    stage = RefinedWebLines()
    _, texts, _ = apply(stage, [f"{BODY}\nGreat story about the bridge. Read more..."])
    assert texts == [f"{BODY}\nGreat story about the bridge."]
    assert counters(stage) == {"lines_edited": 1}


def test_document_rejected_when_more_than_5_percent_of_words_removed():
    menu = "\n".join(["HOME NEWS SPORTS", "Login", "42", "3 comments"] * 5)
    assert apply(RefinedWebLines(), [f"{BODY}\n{menu}"])[0] == ["too_many_words_removed"]
    assert apply(RefinedWebLines(max_removed_words_ratio=0.5), [f"{BODY}\n{menu}"])[0] == [None]
