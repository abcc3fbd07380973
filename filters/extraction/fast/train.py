"""Train the fast_extract model on the tuning half of the corpus (issue 14, part 4) and write filters/data/.

    pip install catboost          # training only: the shipped model is plain arrays, read with numpy
    python -m curate_filters.extraction.fast.train [--cv] [--out filters/data/fast_extract.json]

Pages: every HTML page of ../shared/corpus whose site is in the tuning split (corpus.split_of): half of
trafilatura's benchmark, half of Readability's test pages, half of the WARC sites. The held-out half is never read
here; bench/extraction_quality.py reports on it.

Labels, per block: 1 when the block's text is in trafilatura's output for the page (favor_precision, FineWeb's
setting), else 0; where the page has human annotations (the benchmark's must-include / must-exclude snippets) or an
expected article (Readability's), a block holding a snippet or inside the article takes that label instead, with
GOLD_WEIGHT times the weight. So the model learns trafilatura's layout sense from every page and is corrected by
people where they looked.

Model: two CatBoost ensembles of oblivious trees (logloss). The first reads a block's own features; the second
also reads the first's scores around the block (featurize.context), computed out-of-fold (by site) so that it learns
from scores like those it will see on new pages. --cv first cross-validates the whole recipe by site on the
tuning pages (5 folds) and picks the threshold with the best mean of the two benchmarks' F1 there (trafilatura's
snippet F1 and Readability's token F1).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate_filters.extraction.extractors import decode_html
from curate_filters.extraction.fast.corpus import TUNE, Page, all_pages, prf, snippet_counts, token_prf
from curate_filters.extraction.fast.featurize import context, context_names, feature_names, features
from curate_filters.extraction.fast.layout import render
from curate_filters.extraction.fast.model import MODEL_PATH, Model, Trees
from curate_filters.extraction.fast.tree import Blocks, parse, segment

GOLD_WEIGHT = 3.0
_WORD = re.compile(r"\w+")
PARAMS = {"iterations": 200, "depth": 6, "learning_rate": 0.12, "l2_leaf_reg": 3.0}
INNER_FOLDS = 3
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


@dataclass
class Example:
    """One page, cut into blocks, with per-block labels and weights."""

    page: Page
    blocks: Blocks
    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    reference: str | None  # trafilatura's output


def _norm(s: str) -> str:
    return " ".join(s.split())


def distilled_labels(b: Blocks, reference: str | None) -> np.ndarray:
    """1 for blocks whose text trafilatura kept: a whole line of its output (list bullets and table bars aside), 20+
    characters found in it, or whole words inside one of its list items or table cells (which join the blocks in
    them); lines of a multi-line block each so."""
    y = np.zeros(len(b), np.float32)
    if not reference:
        return y
    lines = set()
    joined = []  # list items and table cells: trafilatura joins the blocks inside one into a line
    for line in reference.split("\n"):
        line = line.strip()
        lines.add(line)
        if line.startswith("- "):
            lines.add(line[2:])
            joined.append(line[2:])
        if line.startswith("|"):
            parts = [part.strip().replace("\\|", "|") for part in line.strip("| ").split(" | ")]
            lines.update(parts)
            joined.extend(parts)
    full = _norm(reference)
    inside = " " + "  ".join(_norm(part) for part in joined) + " "

    def kept(text: str) -> bool:
        # a short block counts as kept inside an item or a cell when it is there as whole words
        return text in lines or (len(text) >= 20 and text in full) or f" {text} " in inside

    for i, text in enumerate(b.texts):
        text = _norm(text) if "\n" not in text else text
        if kept(text) or ("\n" in text and all(kept(_norm(part)) for part in text.split("\n"))):
            y[i] = 1.0
    return y


def gold_labels(b: Blocks, page: Page) -> np.ndarray:
    """1 / 0 where people decided (a must-include / must-exclude snippet in the block, a block whose words are in
    Readability's expected article), -1 elsewhere."""
    g = np.full(len(b), -1.0, np.float32)
    texts = [_norm(t) for t in b.texts]
    if page.expected_text is not None:
        # Readability rewrites the article's markup, so its text rarely matches a block character for character:
        # a block of 4+ words is in the article when 90% of its words are
        expected = set(_WORD.findall(page.expected_text.lower()))
        for i, t in enumerate(texts):
            words = _WORD.findall(t.lower())
            if len(words) >= 4:
                g[i] = float(sum(w in expected for w in words) >= 0.9 * len(words))
    for s in page.without_snippets:
        s = _norm(s)
        for i, t in enumerate(texts):
            if s in t:
                g[i] = 0.0
    for s in page.with_snippets:
        s = _norm(s)
        hit = False
        for i, t in enumerate(texts):
            if s in t:
                g[i] = 1.0
                hit = True
        if not hit:  # a snippet across blocks: the blocks inside it
            for i, t in enumerate(texts):
                if len(t) >= 8 and t in s:
                    g[i] = 1.0
    return g


def trafilatura_outputs(pages: Sequence[Page]) -> dict[str, str | None]:
    """trafilatura's text (the `trafilatura` stage, FineWeb's settings, no cross-page dedup) for each page."""
    import pyarrow as pa

    from curate_filters.extraction.extractors import Trafilatura

    stage = Trafilatura(favour_precision=True, deduplicate=False, timeout=0)
    stage.setup()
    out: dict[str, str | None] = {}
    for i in range(0, len(pages), 50):
        chunk = pages[i : i + 50]
        table = pa.table(
            {
                "id": [p.id for p in chunk],
                "url": [p.url for p in chunk],
                "html": pa.array([p.html for p in chunk], pa.binary()),
            }
        )
        result, _ = stage.map_batch(table)
        out.update(zip([p.id for p in chunk], result.column("text").to_pylist()))
    return out


def examples(pages: Sequence[Page], references: dict[str, str | None]) -> list[Example]:
    out = []
    for page in pages:
        root = parse(decode_html(page.html)[0])
        if root is None:
            continue
        b = segment(root)
        if not len(b):
            continue
        reference = references.get(page.id)
        y = distilled_labels(b, reference)
        w = np.ones(len(b), np.float32)
        g = gold_labels(b, page)
        known = g >= 0
        y[known] = g[known]
        w[known] = GOLD_WEIGHT
        out.append(Example(page, b, features(b), y, w, reference))
    return out


def _fit(exs: Sequence[Example], extra: Sequence[np.ndarray] | None = None, seed: int = 0) -> Trees:
    from catboost import CatBoostClassifier

    X = np.vstack([e.X for e in exs])
    if extra is not None:
        X = np.hstack([X, np.vstack(list(extra))])
    y = np.concatenate([e.y for e in exs])
    w = np.concatenate([e.w for e in exs])
    model = CatBoostClassifier(**PARAMS, loss_function="Logloss", random_seed=seed, verbose=0, thread_count=2)
    model.fit(X, y, sample_weight=w)
    return Trees.from_catboost(model)


def _folds(exs: Sequence[Example], k: int) -> list[tuple[list[int], list[int]]]:
    from sklearn.model_selection import GroupKFold

    groups = [e.page.site for e in exs]
    return [(list(a), list(b)) for a, b in GroupKFold(k).split(list(range(len(exs))), groups=groups)]


def fit_two_pass(exs: Sequence[Example]) -> tuple[Trees, Trees]:
    """The first pass on all pages; the second on out-of-fold first-pass scores (folds by site)."""
    oof: list[np.ndarray] = [np.zeros(0)] * len(exs)
    for train, test in _folds(exs, INNER_FOLDS):
        trees = _fit([exs[i] for i in train])
        for i in test:
            oof[i] = trees.proba(exs[i].X)
    first = _fit(exs)
    second = _fit(exs, [context(e.blocks, p) for e, p in zip(exs, oof)])
    return first, second


def predict(first: Trees, second: Trees, ex: Example) -> np.ndarray:
    return second.proba(np.hstack([ex.X, context(ex.blocks, first.proba(ex.X))]))


def cross_validate(exs: Sequence[Example], folds: int = 5) -> dict:
    """The recipe cross-validated by site: benchmark F1 (and trafilatura's on the same pages) per threshold."""
    probs: list[np.ndarray] = [np.zeros(0)] * len(exs)
    for k, (train, test) in enumerate(_folds(exs, folds)):
        t0 = time.perf_counter()
        first, second = fit_two_pass([exs[i] for i in train])
        for i in test:
            probs[i] = predict(first, second, exs[i])
        print(f"  fold {k + 1}/{folds}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    bench = [i for i, e in enumerate(exs) if e.page.with_snippets or e.page.without_snippets]
    readability = [i for i, e in enumerate(exs) if e.page.expected_text is not None]
    reference = prf(sum(snippet_counts(exs[i].reference, exs[i].page) for i in bench))
    ref_tok = float(np.mean([token_prf(exs[i].reference, exs[i].page.expected_text)[2] for i in readability]))
    rows = []
    for thr in THRESHOLDS:
        texts = {i: render(exs[i].blocks, probs[i] >= thr) for i in bench + readability}
        s = prf(sum(snippet_counts(texts[i], exs[i].page) for i in bench))
        tok = float(np.mean([token_prf(texts[i], exs[i].page.expected_text)[2] for i in readability]))
        rows.append({"threshold": thr, **s, "readability_token_f1": tok})
    return {"folds": folds, "pages": len(bench), "readability_pages": len(readability), "rows": rows,
            "trafilatura": {**reference, "readability_token_f1": ref_tok}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(MODEL_PATH))
    ap.add_argument("--cv", action="store_true", help="cross-validate by site first and pick the threshold")
    ap.add_argument("--threshold", type=float, default=0.5, help="without --cv: the threshold to ship")
    ap.add_argument("--cache", help="a JSON file to keep trafilatura's outputs in between runs")
    args = ap.parse_args(argv)
    try:
        import catboost  # noqa: F401
    except ImportError:
        sys.exit("training needs CatBoost: pip install catboost (inference does not)")
    t0 = time.perf_counter()
    pages = [p for p in all_pages() if p.split == TUNE]
    cache = Path(args.cache) if args.cache else None
    references = json.loads(cache.read_text()) if cache and cache.is_file() else {}
    missing = [p for p in pages if p.id not in references]
    if missing:
        print(f"trafilatura on {len(missing)} tuning pages ...", file=sys.stderr, flush=True)
        references.update(trafilatura_outputs(missing))
        if cache:
            cache.write_text(json.dumps(references))
    exs = examples(pages, references)
    n_blocks = sum(len(e.y) for e in exs)
    print(f"{len(exs)} tuning pages from {len({e.page.site for e in exs})} sites, {n_blocks} blocks, "
          f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)  # fmt: skip
    threshold = args.threshold
    meta: dict = {}
    if args.cv:
        cv = cross_validate(exs)
        # both benchmarks count alike: the benchmark's snippet F1 and Readability's token F1, averaged
        best = max(cv["rows"], key=lambda r: r["f1"] + r["readability_token_f1"])
        threshold = best["threshold"]
        meta["cross_validation"] = cv
        print(f"cross-validation by site ({cv['pages']} benchmark pages): trafilatura F1 {cv['trafilatura']['f1']:.3f}",
              file=sys.stderr)  # fmt: skip
        for r in cv["rows"]:
            print(f"  threshold {r['threshold']:.2f}: F1 {r['f1']:.3f} (P {r['precision']:.3f} R {r['recall']:.3f}), "
                  f"Readability token F1 {r['readability_token_f1']:.3f}", file=sys.stderr)  # fmt: skip
    first, second = fit_two_pass(exs)
    import catboost

    meta.update(
        {
            "trained_on": "sites in the tuning split of fast.corpus (first byte of SHA-1(site) even)",
            "pages": len(exs),
            "sites": len({e.page.site for e in exs}),
            "blocks": n_blocks,
            "groups": {g: sum(e.page.group == g for e in exs) for g in ("trafilatura_eval", "readability", "warc")},
            "labels": f"trafilatura favor_precision output; human snippets / Readability articles x{GOLD_WEIGHT}",
            "params": PARAMS,
            "catboost": catboost.__version__,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    model = Model(feature_names(), context_names(), first, second, threshold, meta)
    model.save(Path(args.out))
    print(f"wrote {args.out} (threshold {threshold}, {time.perf_counter() - t0:.0f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
