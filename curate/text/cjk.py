"""Word and sentence patterns for Chinese, Japanese (no spaces between words) and Korean."""

from __future__ import annotations

import re

# Han ideographs one word each (the character is the unit of meaning; the median Chinese word is 1-2 characters),
# kana runs, Hangul runs, and runs of other word characters (Latin words, digits) inside CJK text.
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = r"\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
CJK_WORD = re.compile(
    rf"[{_HAN}]|[\u3040-\u309f]+|[\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]+|[{_HANGUL}]+|[^\W{_HAN}{_KANA}{_HANGUL}]+"
)
# Korean is written with spaces between eojeol (a word with its particles): words are those, minus punctuation.
KO_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
# A CJK sentence: text up to terminal punctuation (with closing quotes/brackets), or up to a line break.
CJK_SENTENCE = re.compile(r"[^。！？!?｡\n]*[。！？!?｡]+[」』”’)）]*|[^。！？!?｡\n]+")
