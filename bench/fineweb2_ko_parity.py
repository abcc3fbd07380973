"""fineweb2-ko: curate's stages as configured in pipelines/fineweb2-ko.yaml against datatrove's blocks with FineWeb-2's
published kor_Hang values (../shared/corpus/reference-fineweb2-kor/kor_Hang.yml), on the corpus's real Korean text,
and the lid.176 threshold that stands in for FineWeb-2's GlotLID 0.842.

    python bench/fineweb2_ko_parity.py [--show N] [--lid-only]

Korean documents (read in place, nothing downloaded):
- nsmc: jsonl-ko-nsmc-reviews-sample, Naver movie reviews, one page per movie (its reviews one a line, 590 pages);
- dolma: the Korean documents (Hangul >= 30% of letters) of jsonl-dolma-cc2019-cclicensed (CC-MAIN-2019-30 text);
- chardet: the Korean pages of encodings-chardet-testdata (EUC-KR, CP949, Johab, ISO-2022-KR: blogs, RSS, news),
  decoded with their encoding and stripped of markup.
Non-Korean text (language ID only): dolma's other documents and the 73 other languages' Leipzig sentences of
langid-lingua-testdata (300 each); its 300 Korean sentences and the 27,854 single NSMC reviews count as Korean.

Filters compared (datatrove 0.10.1 is the oracle, not a dependency): GopherRepetitionFilter, FineWebQualityFilter and
GopherQualityFilter built as FineWeb-2's fineweb-2-pipeline.py builds them for kor_Hang, `language="kor_Hang"`, which
datatrove's load_word_tokenizer maps (assets/tokenizer_assignment.csv) to its KiwiTokenizer. That tokenizer asks
kiwipiepy for model_type="sbg"; kiwipiepy 0.24 with kiwipiepy_model 0.24 ships only the "cong" model ("OSError:
Cannot open required files for skipbigram model"), so the bench builds datatrove's KiwiTokenizer with "cong", the
model curate's Kiwi() loads by default. Everything else in datatrove's Kiwi path (surface spans of the text,
the removal of 20+ digit/comma runs, strip_strings) runs as shipped.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from korean_thresholds import CORPUS, SENTENCES  # noqa: E402
from parity_datatrove import REASONS, patch_datatrove_downloads, run_datatrove, run_ours  # noqa: E402

from curate_filters.annotation.langid import FastTextLangID, default_model_path, load_fasttext  # noqa: E402
from curate_filters.heuristics.fineweb import FineWebQuality  # noqa: E402
from curate_filters.heuristics.gopher import GopherQuality, GopherRepetition  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "pipelines" / "fineweb2-ko.yaml"
KOR_HANG = CORPUS / "reference-fineweb2-kor" / "kor_Hang.yml"
CHARDET_KO = {"EUC-KR": "euc-kr", "CP949": "cp949", "Johab": "johab", "iso-2022-kr": "iso2022_kr"}
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
LETTER = re.compile(r"[^\W\d_]")
TAG = re.compile(r"<[^>]*>")


def hangul_share(text: str) -> float:
    letters = len(LETTER.findall(text))
    return len(HANGUL.findall(text)) / letters if letters else 0.0


def _strip_markup(raw: str) -> str:
    text = raw
    for _ in range(2):  # RSS carries escaped HTML inside its elements
        text = html.unescape(TAG.sub("\n", text.replace("<![CDATA[", "").replace("]]>", "")))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def korean_docs() -> pa.Table:
    """id, url, text, source of the Korean documents (see the module docstring)."""
    rows: list[dict[str, str]] = []
    by_movie: dict[str, list[str]] = defaultdict(list)
    with gzip.open(CORPUS / "jsonl-ko-nsmc-reviews-sample" / "nsmc-raw-every25th-movie.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            by_movie[r["movie_id"]].append(r["review"].strip())
    for movie, reviews in by_movie.items():
        text = "\n".join(r for r in reviews if r)
        rows.append({"id": f"nsmc/{movie}", "url": f"https://movie.naver.com/movie/bi/mi/point.nhn?code={movie}",
                     "text": text, "source": "nsmc"})  # fmt: skip
    for d in dolma_docs():
        if hangul_share(d["text"]) >= 0.3:
            rows.append({**d, "source": "dolma"})
    for folder, codec in CHARDET_KO.items():
        for p in sorted((CORPUS / "encodings-chardet-testdata" / folder).glob("*")):
            text = _strip_markup(p.read_bytes().decode(codec, errors="replace"))
            if text and hangul_share(text) >= 0.3:
                rows.append({"id": f"chardet/{folder}/{p.name}", "url": "", "text": text, "source": "chardet"})
    return pa.Table.from_pylist(rows)


def dolma_docs() -> list[dict[str, str]]:
    with gzip.open(CORPUS / "jsonl-dolma-cc2019-cclicensed" / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz",
                   "rt") as f:  # fmt: skip
        return [{"id": f"dolma/{d['id']}", "url": d["metadata"].get("url", ""), "text": d["text"]}
                for d in map(json.loads, f)]  # fmt: skip


# -- language ID: the lid.176 threshold closest to "is Korean" -------------------------------------------------------


def lid_texts() -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, is-Korean truth, and the set each came from."""
    texts, truth, group = [], [], []
    docs = korean_docs()
    for t, s in zip(docs.column("text").to_pylist(), docs.column("source").to_pylist()):
        texts.append(t), truth.append(True), group.append(f"ko {s} pages")
    with gzip.open(CORPUS / "jsonl-ko-nsmc-reviews-sample" / "nsmc-raw-every25th-movie.jsonl.gz", "rt") as f:
        for line in f:
            texts.append(json.loads(line)["review"]), truth.append(True), group.append("ko nsmc single reviews")
    for p in sorted(SENTENCES.glob("*.txt")):
        ko = p.stem == "ko"
        for s in p.read_text(encoding="utf-8").splitlines():
            if s.strip():
                label = "ko Leipzig sentences" if ko else "other Leipzig sentences"
                texts.append(s), truth.append(ko), group.append(label)
    for d in dolma_docs():
        if hangul_share(d["text"]) < 0.05:
            texts.append(d["text"]), truth.append(False), group.append("other dolma documents")
    return texts, np.array(truth), group


def ko_scores(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """lid.176's probability of __label__ko per text (0 where it gives ko nothing), and whether ko is its best label."""
    model = load_fasttext(default_model_path())
    labels, probs = model.predict([t.replace("\n", " ") for t in texts], k=-1, threshold=0.0)
    ko = np.array([dict(zip(ls, ps)).get("__label__ko", 0.0) for ls, ps in zip(labels, probs)])
    top = np.array([bool(len(ls)) and ls[0] == "__label__ko" for ls in labels])
    return ko, top


def lid_sweep() -> None:
    """Keep/reject on lid.176 against is-Korean, two ways: `any` is the fasttext_langid stage's rule (ko scores
    above the threshold, whatever the best label); `best` is FineWeb-2's structure (GlotLID labels a document with
    its best label, then the per-language threshold applies to that label's score). At thresholds >= 0.5 they are
    the same decision (lid.176's scores sum to 1)."""
    texts, truth, group = lid_texts()
    ko, top = ko_scores(texts)
    grid = [0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8, 0.842, 0.9, 0.95, 0.99, 0.999, 0.9997]
    nk, nn = int(truth.sum()), int((~truth).sum())
    print(f"\nlid.176 (fasttext_langid, languages [ko]) against 'is Korean' on {len(texts)} texts "
          f"({nk} Korean, {nn} not)\n")  # fmt: skip
    print("| threshold | rule | Korean kept | non-Korean kept | agreement | balanced agreement |")
    print("|---:|---|---:|---:|---:|---:|")
    best: dict[str, tuple[float, float]] = {}
    for thr in grid:
        for rule, keep in (("any", ko > thr), ("best", top & (ko > thr))):
            if rule == "best" and thr >= 0.5:
                continue  # the same decisions as `any`
            tp, fp = int((keep & truth).sum()), int((keep & ~truth).sum())
            bal = 0.5 * (tp / nk + (nn - fp) / nn)
            print(f"| {thr:g} | {rule if thr < 0.5 else 'any = best'} | {tp} ({100 * tp / nk:.2f}%) | {fp} | "
                  f"{100 * (tp + nn - fp) / len(truth):.2f}% | {100 * bal:.3f}% |")  # fmt: skip
            for r in (rule,) if thr < 0.5 else ("any", "best"):
                if bal > best.get(r, (0.0, -1.0))[1] + 1e-12:
                    best[r] = (thr, bal)
    for r, (thr, bal) in best.items():
        print(f"best balanced agreement, rule {r}: {100 * bal:.3f}% at {thr:g}")
    recipe_thr = recipe_stage("lang")["language_threshold"]
    stage = FastTextLangID(languages=["ko"], language_threshold=recipe_thr)
    stage.setup()
    _, reasons = stage.map_batch(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))
    keep = np.array([r is None for r in reasons])
    assert (keep == (ko > recipe_thr)).all(), "the stage's decisions differ from the sweep's"
    print(f"\nthe recipe's threshold {recipe_thr} (fasttext_langid stage): kept share per set")
    for g in sorted(set(group)):
        m = np.array([x == g for x in group])
        print(f"  {g}: {keep[m].sum()}/{m.sum()} ({100 * keep[m].mean():.2f}%)")


# -- filter parity ---------------------------------------------------------------------------------------------------


def recipe_stage(stage_id: str) -> dict[str, Any]:
    stages = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))["stages"]
    return dict(next(s for s in stages if s["id"] == stage_id).get("with") or {})


def datatrove_blocks() -> list[tuple[str, Any, Any]]:
    """(name, datatrove block factory, curate stage factory), FineWeb-2's kor_Hang configuration on both sides."""
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.utils import word_tokenizers

    word_tokenizers.KiwiTokenizer.__init__.__defaults__ = ("cong",)  # see the module docstring
    cfg = yaml.safe_load(KOR_HANG.read_text(encoding="utf-8"))
    lang = "kor_Hang"
    return [
        (
            "gopher_repetition",
            lambda: GopherRepetitionFilter(
                language=lang,
                dup_para_frac=0,
                dup_line_char_frac=0,
                dup_para_char_frac=0,
                dup_line_frac=cfg["dup_line_frac"],
                top_n_grams=cfg["top_n_grams"],
                dup_n_grams=cfg["dup_n_grams"],
            ),  # fmt: skip
            lambda: GopherRepetition(**recipe_stage("gopher_rep")),
        ),
        (
            "fineweb_quality",
            lambda: FineWebQualityFilter(
                language=lang,
                short_line_thr=999,
                char_duplicates_ratio=0.1,
                line_punct_thr=cfg["line_punct_thr"],
                new_line_ratio=cfg["new_line_ratio"],
            ),
            lambda: FineWebQuality(**recipe_stage("fineweb")),
        ),
        (
            "gopher_quality",
            lambda: GopherQualityFilter(
                language=lang,
                max_avg_word_length=cfg["max_avg_word_length"],
                min_avg_word_length=cfg["min_avg_word_length"],
                stop_words=cfg["stopwords"],
                max_non_alpha_words_ratio=cfg["max_non_alpha_words_ratio"],
                min_stop_words=2,
            ),
            lambda: GopherQuality(**recipe_stage("gopher_qual")),
        ),
    ]


def compare(name: str, block: Any, stage: Any, table: pa.Table, show: int) -> dict[str, Any]:
    rows = table.to_pylist()
    theirs, _ = run_datatrove(block, rows)
    ours, _ = run_ours(stage, table)
    n = len(rows)
    agree = sum(a[0] == b[0] for a, b in zip(theirs, ours))
    both = [(a, b) for a, b in zip(theirs, ours) if not a[0] and not b[0]]
    reason_ok = sum(REASONS.get(b[1], b[1]) == a[1] for a, b in both)
    other_reason = Counter((a[1], b[1]) for a, b in both if REASONS.get(b[1], b[1]) != a[1])
    why = Counter()
    shown = 0
    for r, a, b in zip(rows, theirs, ours):
        if a[0] != b[0]:
            why[(a[1] or "kept", b[1] or "kept")] += 1
            if shown < show:
                shown += 1
                print(f"  [{name}] {r['id']}: datatrove {a[1] or 'kept'} / curate {b[1] or 'kept'}", file=sys.stderr)
    by_source = {s: sum(a[0] == b[0] for a, b, r in zip(theirs, ours, rows) if r["source"] == s) for s in
                 sorted(set(table.column("source").to_pylist()))}  # fmt: skip
    return {"filter": name, "docs": n, "kept_dt": sum(a[0] for a in theirs), "kept_us": sum(b[0] for b in ours),
            "agree": agree, "reasons": f"{reason_ok}/{len(both)}", "why": why, "by_source": by_source,
            "other_reason": other_reason}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", type=int, default=3, help="print up to N disagreeing documents per filter (stderr)")
    ap.add_argument("--lid-only", action="store_true", help="only the language-ID threshold sweep")
    args = ap.parse_args()
    lid_sweep()
    if args.lid_only:
        return
    patch_datatrove_downloads()
    table = korean_docs()
    counts = Counter(table.column("source").to_pylist())
    print(f"\nDecision parity with datatrove (FineWeb-2 kor_Hang, Kiwi words) on {table.num_rows} Korean documents "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})\n")  # fmt: skip
    results = [compare(n, b(), s(), table, args.show) for n, b, s in datatrove_blocks()]
    print("| filter | docs | kept (datatrove) | kept (curate) | decisions agree | reasons agree (both reject) | "
          "disagreements (datatrove / curate) | both reject, other reason (datatrove / curate) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        why = "; ".join(f"{n}x {a} / {b}" for (a, b), n in r["why"].most_common()) or "-"
        other = "; ".join(f"{n}x {a} / {b}" for (a, b), n in r["other_reason"].most_common()) or "-"
        print(f"| {r['filter']} | {r['docs']} | {r['kept_dt']} | {r['kept_us']} | "
              f"{r['agree']} ({100 * r['agree'] / r['docs']:.2f}%) | {r['reasons']} | {why} | {other} |")  # fmt: skip
    print(
        "\nagreement per source: "
        + "; ".join(
            f"{r['filter']}: " + ", ".join(f"{s} {v}/{counts[s]}" for s, v in r["by_source"].items()) for r in results
        )
    )
    worst = min(r["agree"] / r["docs"] for r in results)
    print(f"\nlowest agreement: {100 * worst:.2f}%  (target >= 99%)")


if __name__ == "__main__":
    main()
