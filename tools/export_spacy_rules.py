"""Export spaCy's tokenizer rules for a language to the .json.gz that curate.text.RuleTokenizer loads.

How curate/data/spacy_*.json.gz were made (spaCy is MIT-licensed; see curate/data/NOTICE.md); needs spaCy:

    python tools/export_spacy_rules.py en [curate/data/spacy_en.json.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "curate" / "data"


def export_spacy_rules(language: str, path: str | Path) -> None:
    """Write spaCy's tokenizer rules for `language` (spacy.blank) to a .json.gz that RuleTokenizer loads."""
    import spacy
    from spacy.attrs import ORTH
    from spacy.pipeline import Sentencizer

    tok = spacy.blank(language).tokenizer

    def pattern(fn: Any) -> str | None:
        return fn.__self__.pattern if fn is not None else None

    rules = {s: [t[ORTH] for t in v] for s, v in tok.rules.items()}
    # The special cases spaCy also matches after affix splitting (its faster_heuristics selection).
    matcher = [s for s in rules if tok.find_prefix(s) or tok.find_infix(s) or tok.find_suffix(s) or " " in s]
    data = {
        "language": language,
        "source": f"spaCy {spacy.__version__} spacy.blank({language!r}).tokenizer (MIT License, Explosion AI)",
        "prefix": pattern(tok.prefix_search),
        "suffix": pattern(tok.suffix_search),
        "infix": pattern(tok.infix_finditer),
        "url": pattern(tok.url_match),
        "token_match": pattern(tok.token_match),
        "specials": rules,
        "matcher_specials": matcher,
        "sentence_punct": list(Sentencizer.default_punct_chars),
    }
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(data, f, ensure_ascii=False, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("language", help="a spaCy language code (en, de, ..., xx for the multi-language rules)")
    parser.add_argument("out", nargs="?", help="the .json.gz to write (default curate/data/spacy_<language>.json.gz)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else DATA / f"spacy_{args.language}.json.gz"
    export_spacy_rules(args.language, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
