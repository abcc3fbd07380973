"""A fastText quality classifier trained with `curate classifier train` on data available offline: clean prose
(positives) against raw web extraction (negatives); held-out precision, recall, F1 and ROC-AUC.

    python bench/quality_classifier.py [--preset dclm] [--bucket N] [--words 300]

Positives: the 8 Project Gutenberg books of ../shared/corpus/prose-gutenberg (licence header and footer cut) and
tinyshakespeare, in documents of about --words words cut at paragraph (blank-line) boundaries. Negatives: the main
text of the sample crawl's pages (`curate run extract.yaml`: URL filter + trafilatura over 2,000 synthetic
captures) and of every HTML page of the corpus (bench/corpus_docs.py: trafilatura's 990-page benchmark,
Readability's 130 pages, the corpus WARCs' pages). Two held-out settings, each a run of the project's command:

- hash split: 10% of each class held out by a hash of the document id (DCLM-style random split; documents of one
  book are on both sides).
- unseen sources: two books (pg16351, MacDowell's essays; pg18304, Street's travel writing) and trafilatura's
  990 real pages are held out whole; the model trains on the other six books, Shakespeare, the synthetic crawl
  and the other real pages.
- unseen sources, English web only: the same, with every negative (training and held-out) passed through FineWeb's
  language filter (fasttext_langid, en > 0.65) first, as a quality classifier runs after language ID. The
  positives are all English, so without this the model can score language rather than style: most held-out web
  pages are German.

Files go to CURATE_BENCH_CACHE (/tmp/curate-bench)/quality_classifier/.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_docs import CACHE, CORPUS, extracted_docs  # noqa: E402

from curate.cli import main as curate  # noqa: E402

HELD_BOOKS = ("pg16351.txt", "pg18304.txt")


def gutenberg_body(text: str) -> str:
    """The book between Project Gutenberg's `*** START OF` and `*** END OF` lines (licence text cut)."""
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start < 0 or end < start:
        return text
    return text[text.index("\n", start) + 1 : end]


def chunks(text: str, words: int) -> list[str]:
    """Documents of at least `words` words, cut at blank lines (paragraphs kept whole, hard wraps kept)."""
    out, cur, n = [], [], 0
    for para in re.split(r"\r?\n[ \t]*\r?\n", text):
        if not para.strip():
            continue
        cur.append(para.strip("\r\n"))
        n += len(para.split())
        if n >= words:
            out.append("\n\n".join(cur))
            cur, n = [], 0
    if n >= words // 2:
        out.append("\n\n".join(cur))
    return out


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for doc_id, text in rows:
            fh.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    return path


def sample_crawl_text(root: Path) -> list[tuple[str, str]]:
    """The sample crawl through extract.yaml (cached): (id, text) of every extracted page."""
    import pyarrow.parquet as pq

    from curate import config, engine

    out = root / "extract"
    if not (out / "_SUCCESS").exists():
        engine.run(config.load("extract.yaml", output_path=str(out)), runner="local", overwrite=True)
    table = pq.read_table(out / "data", columns=["id", "text"])
    return list(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))


def build(root: Path, words: int) -> dict[str, Path]:
    """The JSONL files of both settings."""
    books = {p.name: chunks(gutenberg_body(p.read_text(encoding="utf-8")), words) for p in sorted(
        (CORPUS / "prose-gutenberg").glob("*.txt"))}  # fmt: skip
    shakespeare = chunks((CORPUS / "prose-tinyshakespeare" / "input.txt").read_text(encoding="utf-8"), words)
    pages = extracted_docs()
    web_real = list(zip(pages.column("id").to_pylist(), pages.column("text").to_pylist()))
    web_synth = sample_crawl_text(root)
    prose = [(b, f"{b}#{i}", t) for b, docs in books.items() for i, t in enumerate(docs)]
    files = {
        "books_train": [(i, t) for b, i, t in prose if b not in HELD_BOOKS],
        "books_held": [(i, t) for b, i, t in prose if b in HELD_BOOKS],
        "shakespeare": [(f"shakespeare#{i}", t) for i, t in enumerate(shakespeare)],
        "web_sample_crawl": web_synth,
        "web_corpus_train": [(i, t) for i, t in web_real if not i.startswith("html-trafilatura-eval/")],
        "web_corpus_held": [(i, t) for i, t in web_real if i.startswith("html-trafilatura-eval/")],
    }
    for name in ("web_sample_crawl", "web_corpus_train", "web_corpus_held"):
        files[f"{name}_en"] = english(files[name])
    return {name: write_jsonl(root / f"{name}.jsonl", rows) for name, rows in files.items()}


def english(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The English documents, as FineWeb's language filter keeps them (fasttext_langid, en above 0.65)."""
    import pyarrow as pa

    from curate_filters.annotation.langid import FastTextLangID

    lid = FastTextLangID(languages=["en"], language_threshold=0.65)
    lid.setup()
    _, reasons = lid.apply(pa.table({"id": [i for i, _ in rows], "text": [t for _, t in rows]}))
    keep = [True] * len(rows) if reasons is None else [r is None for r in reasons.to_pylist()]
    return [row for row, k in zip(rows, keep) if k]


def train(files: dict[str, Path], root: Path, name: str, pos: list[str], neg: list[str], extra: list[str]) -> dict:
    args = ["classifier", "train", "--positive", *[str(files[p]) for p in pos]]
    args += ["--negative", *[str(files[n]) for n in neg], "--out", str(root / f"{name}.bin"), *extra]
    args += ["--report", str(root / f"{name}.report.json")]
    t0 = time.perf_counter()
    print(f"$ curate {' '.join(args)}", file=sys.stderr)
    rc = curate(args)
    if rc:
        sys.exit(rc)
    report = json.loads((root / f"{name}.report.json").read_text())
    report["wall_seconds"] = time.perf_counter() - t0
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="dclm", help="fastText preset (default dclm)")
    ap.add_argument("--bucket", type=int, help="n-gram buckets (default fastText's 2,000,000)")
    ap.add_argument("--words", type=int, default=300, help="words per prose document (default 300)")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS} (set CURATE_CORPUS)")
    root = CACHE / "quality_classifier"
    root.mkdir(parents=True, exist_ok=True)
    files = build(root, args.words)
    counts = {k: sum(1 for _ in open(v, encoding="utf-8")) for k, v in files.items()}
    print("documents: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    extra = ["--preset", args.preset] + (["--bucket", str(args.bucket)] if args.bucket else [])
    held_out = [
        "--heldout-positive",
        str(files["books_held"]),
        "--heldout-negative",
        str(files["web_corpus_held"]),
    ]
    everything_pos = ["books_train", "books_held", "shakespeare"]
    everything_neg = ["web_sample_crawl", "web_corpus_train", "web_corpus_held"]
    runs = {
        "hash split (10%)": train(files, root, "hash_split", everything_pos, everything_neg, extra),
        "unseen sources": train(
            files,
            root,
            "unseen",
            ["books_train", "shakespeare"],
            ["web_sample_crawl", "web_corpus_train"],
            extra + held_out,
        ),
        "unseen sources, English web only": train(
            files,
            root,
            "unseen_en",
            ["books_train", "shakespeare"],
            ["web_sample_crawl_en", "web_corpus_train_en"],
            extra + held_out[:3] + [str(files["web_corpus_held_en"])],
        ),
    }
    print()
    print(f"preset {args.preset}: {json.dumps(next(iter(runs.values()))['options'])}")
    print("| held out | train pos / neg | held-out pos / neg | precision | recall | F1 | ROC-AUC | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in runs.items():
        tr, he, m = r["docs"]["train"], r["docs"]["heldout"], r["heldout"]["metrics"]
        print(
            f"| {name} | {tr['positive']:,} / {tr['negative']:,} | {he['positive']:,} / {he['negative']:,} | "
            f"{m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['roc_auc']:.4f} | {r['wall_seconds']:.0f} |"
        )
    for name, r in runs.items():
        print(f"\nscore deciles, {name} (lowest first): docs, score range, share of prose, one example")
        for d in r["heldout"]["deciles"]:
            ex = d["examples"][-1] if d["examples"] else {"text": ""}
            print(
                f"  {d['decile']:>2}  {d['docs']:>4}  {d['min_score']:.3f}-{d['max_score']:.3f}  "
                f"{d['positive_share']:.2f}  {ex['text'][:90]}"
            )


if __name__ == "__main__":
    main()
