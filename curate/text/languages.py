"""Language codes: the spellings users write, which languages have spaCy rules, which are written without spaces."""

from __future__ import annotations

from pathlib import Path

# curate/data: spaCy's exported tokenizer rules (spacy_<code>.json.gz, see curate/data/NOTICE.md).
DATA = Path(__file__).resolve().parent.parent / "data"

# ISO 639-3 spellings a user may write (datatrove's Languages uses "eng") -> the 639-1 codes used here.
_ALIASES = {
    "eng": "en", "deu": "de", "fra": "fr", "spa": "es", "ita": "it", "por": "pt", "nld": "nl", "rus": "ru",
    "pol": "pl", "zho": "zh", "cmn": "zh", "jpn": "ja", "kor": "ko",
}  # fmt: skip
CJK_LANGUAGES = frozenset({"zh", "ja", "yue", "wuu", "lzh"})
# Languages whose spaCy rules ship in curate/data (spacy_<code>.json.gz); other space-delimited languages use
# spaCy's multi-language rules ('xx'), which is also datatrove's proxy for most languages.
RULE_LANGUAGES = frozenset({"en", "xx", "de", "fr", "es", "it", "pt", "nl", "ru", "pl"})


def canonical_language(language: str | None) -> str | None:
    """'eng', 'en', 'en_Latn', 'zho_Hans', 'EN' -> 'en' / 'zh' (ISO 639-1 where we know one)."""
    if not language:
        return None
    code = language.replace("-", "_").split("_")[0].lower()
    return _ALIASES.get(code, code)
