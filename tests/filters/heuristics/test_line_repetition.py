"""line_repetition: LLaMA 3's removal of lines of repeated content by Gopher's duplicated n-gram coverage, per line."""

from __future__ import annotations

import pytest
from stage_util import apply, counters

from curate.errors import ConfigError
from curate_filters.heuristics.line_repetition import GOPHER_DUP_N_GRAMS, LineRepetition, repeated_line

PROSE = (
    "The river ran high after the storm, and the ferry stayed on the far bank until the morning came and the "
    "boatman judged the current safe enough to cross with the mail and the three passengers waiting."
)
LOG = " ".join(["ERROR connection refused retrying in 5 seconds"] * 6)


def test_a_line_of_repeated_content_is_judged_repeated_and_prose_is_not():
    rules = list(GOPHER_DUP_N_GRAMS)
    assert repeated_line(LOG, rules, 10)
    assert not repeated_line(PROSE, rules, 10)
    assert not repeated_line("a b a b a b a b", rules, 10)  # fewer than min_words: never judged


def test_the_coverage_is_gophers_measure_within_the_line():
    # 20 distinct words, then one 5-gram of them again: 5 repeated words of 25; the repeated characters are
    # those of the second copy of the 5-gram (its words without separators), against the line's characters
    words = [f"w{i:02d}" for i in range(20)]
    line = " ".join(words + words[:5])
    share = sum(len(w) for w in words[:5]) / len(line)  # 15 / 99
    assert repeated_line(line, [(5, share - 0.001)], 10)
    assert not repeated_line(line, [(5, share + 0.001)], 10)
    assert not repeated_line(line, [(6, 0.01)], 10)  # no 6-gram repeats


def test_the_stage_removes_those_lines_keeps_the_rest_and_records_them():
    doc = "\n".join([PROSE, LOG, PROSE.upper(), LOG.lower()])
    stage = LineRepetition()
    reasons, texts, table = apply(stage, [doc, PROSE, LOG])
    assert texts[0] == "\n".join([PROSE, PROSE.upper()])
    assert texts[1] == PROSE
    assert reasons == [None, None, "too_little_left"]  # nothing left of the log
    assert texts[2] == LOG  # a rejected document keeps its text as it came
    assert table.column("line_repetition_cut").to_pylist() == [[LOG, LOG.lower()], None, [LOG]]
    assert counters(stage) == {"lines_removed": 3, "chars_removed": 3 * len(LOG)}


@pytest.mark.parametrize(
    "params", [{"dup_n_grams": [[1, 0.1]]}, {"dup_n_grams": [[5, 1.5]]}, {"dup_n_grams": "x"}, {"min_words": 1}]
)
def test_bad_parameters_are_config_errors(params):
    with pytest.raises(ConfigError, match="line_repetition"):
        LineRepetition(**params)
