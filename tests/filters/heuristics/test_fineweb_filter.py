"""fineweb_quality: one test per reason."""

from __future__ import annotations

from stage_util import GOOD, reason

from curate_filters.heuristics.fineweb import FineWebQuality

LINES = GOOD.split(". ")
TEXT = ".\n".join(LINES)


def test_good_text_passes():
    assert reason(FineWebQuality(), TEXT) is None


def test_empty():
    assert reason(FineWebQuality(), "\n  \n") == "empty"


def test_line_punct_ratio():
    text = "\n".join(s.rstrip(".") + " and more words here" for s in LINES)
    assert reason(FineWebQuality(), text) == "line_punct_ratio"
    # line_punct_exclude_zero: a page without any punctuated line is not rejected for it.
    assert reason(FineWebQuality(line_punct_exclude_zero=True), text) is None


def test_short_line_ratio():
    text = TEXT + "\n" + "\n".join(f"Item {i}." for i in range(20))
    assert reason(FineWebQuality(), text) == "short_line_ratio"


def test_char_dup_ratio():
    text = TEXT + "\n" + LINES[0] + "."
    assert reason(FineWebQuality(), text) == "char_dup_ratio"


def test_list_ratio():
    # Long lines (not "short"), each ending in punctuation, but three tokens each: 29 newlines / 90 words.
    text = "\n".join(f"Extraordinarily{i}comprehensive documentation." for i in range(30))
    assert reason(FineWebQuality(), text) == "list_ratio"
    assert reason(FineWebQuality(new_line_ratio=0.5), text) is None


def test_custom_stop_chars():
    text = "\n".join(s + " :)" for s in LINES)
    assert reason(FineWebQuality(), text) == "line_punct_ratio"
    assert reason(FineWebQuality(stop_chars=[")"]), text) is None
