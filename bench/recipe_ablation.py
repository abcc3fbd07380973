"""The bundled recipes judged by training on their output (issue 15, part 6): every real page of ../shared/corpus
through each recipe, then `curate ablate` over 3 seeds, scored on a Gutenberg book that no arm trained on.

    python bench/recipe_ablation.py [--out DIR] [--max-steps 50] [--seeds 0,1,2] [--runner local]

1. Input (OUT/input/): every loose HTML page of the corpus (trafilatura's 990-page benchmark and Readability's 130
   test pages) packed into one WARC by the packer of bench/extraction_speed.py (`fast.corpus`), next to the
   corpus's own WARCs and the two 2008 ARCs. The copycat folder also holds WARC conversions of those ARCs (the same
   133 captures): they are left out so that no page is in the input twice. WAT and WET files are metadata and text
   derived from the WARCs beside them, also left out.
2. Each recipe in pipelines/ that is present (extract, fineweb, refinedweb, c4, gopher, then dclm, llama3 and
   fineweb2-ko when they exist) runs on that input into OUT/recipes/<name> (a finished output is reused).
   dclm.yaml's fastText classifier (also llama3.yaml's stand-in quality model) is trained first, as the README's
   DCLM section does (`curate classifier train --preset dclm`), but without the held-out book: positives the other
   seven books and tinyshakespeare, negatives the extract recipe's pages of this input (DCLM's negatives also come
   from the pool it filters).
3. The held-out set: one Project Gutenberg book (default pg16351, MacDowell's essays; bench/quality_classifier.py
   also holds it out of its classifier's training), licence header and footer cut, hard-wrapped lines joined into
   one line per paragraph as extracted web text has them. No arm's data contains it: the inputs are web pages only.
4. `curate ablate tiny-cpu OUT/recipes/* --heldout BOOK --seeds 0,1,2`: same tokenizer, model, budget and seeds for
   every arm; the table (mean and min-max of held-out loss per arm) goes to OUT/ablation/ablation.md.

Rerunning resumes: finished recipe outputs are reused and `curate ablate` resumes each arm and seed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CORPUS = Path(os.environ.get("CURATE_CORPUS", REPO.parent / "shared" / "corpus"))
RECIPES = ("extract", "fineweb", "refinedweb", "c4", "gopher", "dclm", "llama3", "fineweb2-ko")
MIN_DOCS = 20  # an arm with fewer kept documents cannot fill a validation split: reported and left out


def pack_input(folder: Path) -> list[Path]:
    """OUT/input/: the loose HTML pages packed into one WARC, and links to the corpus WARCs and ARCs."""
    from curate_filters.extraction.fast.corpus import readability_pages, trafilatura_eval, write_warcs

    folder.mkdir(parents=True, exist_ok=True)
    packed = folder / "corpus-pages-0.warc.gz"
    if not packed.exists():
        pages = trafilatura_eval(CORPUS) + readability_pages(CORPUS)
        tmp = folder / "packing"
        (paths, _) = write_warcs(pages, tmp, files=1)
        os.replace(paths[0], packed)
        tmp.rmdir()
        print(f"packed {len(pages):,} HTML pages into {packed}")
    files = [packed]
    arcs = sorted(CORPUS.glob("*/*.arc.gz"))
    converted = {a.name.replace(".arc.gz", ".warc.gz") for a in arcs}
    for src in arcs + sorted(CORPUS.glob("*/*.warc.gz")):
        if src.name in converted:
            continue  # the WARC conversion of an ARC that is already in
        link = folder / f"{src.parent.name}--{src.name}"
        if not link.exists():
            link.symlink_to(src)
        files.append(link)
    return files


def gutenberg_text(path: Path) -> str:
    """A book between PG's `*** START OF` / `*** END OF` lines, one line per paragraph (hard wraps joined)."""
    text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start >= 0 and end > start:
        text = text[text.index("\n", start) + 1 : end]
    paras = [" ".join(p.split()) for p in re.split(r"\n[ \t]*\n", text)]
    return "\n".join(p for p in paras if p) + "\n"


def curate(*argv: str, env: dict[str, str] | None = None) -> None:
    """One `curate` command in a child process (each recipe gets a fresh Ray and its own memory)."""
    cmd = [sys.executable, "-m", "curate.cli", *argv]
    print("$ " + "".join(f"{k}={v} " for k, v in (env or {}).items()) + "curate " + " ".join(argv), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, **(env or {})})


def dclm_classifier(out: Path, held_book: str) -> Path:
    """dclm.yaml's fastText classifier, trained as the README's DCLM section does but without the held-out book:
    positives the other Gutenberg books and tinyshakespeare, negatives the extract recipe's pages (this input)."""
    model = out / "models" / "dclm-quality.bin"
    if model.exists():
        return model
    negatives = out / "recipes" / "extract"
    if not (negatives / "_SUCCESS").exists():
        curate("run", str(REPO / "pipelines" / "extract.yaml"), "--input", str(out / "input" / "*"),
               "--output", str(negatives), "--runner", "local", "--overwrite", "-q")  # fmt: skip
    books = [str(b) for b in sorted((CORPUS / "prose-gutenberg").glob("*.txt")) if b.name != held_book]
    model.parent.mkdir(parents=True, exist_ok=True)
    curate("classifier", "train", "--preset", "dclm", "--txt-words", "300",
           "--positive", *books, str(CORPUS / "prose-tinyshakespeare" / "input.txt"),
           "--negative", str(negatives), "--out", str(model))  # fmt: skip
    return model


def kept_docs(out: Path) -> tuple[int, int, int, int, bool]:
    """(input documents, kept documents, kept words, extraction timeouts, conserved) from an output's stats.json."""
    stats = json.loads((out / "stats.json").read_text())
    timeouts = sum(s["reasons"].get("extraction_timeout", 0) for s in stats["stages"])
    n_in, n_kept, words = int(stats["input_docs"]), int(stats["output_docs"]), int(stats["output_words"])
    return n_in, n_kept, words, timeouts, bool(stats["conserved"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("CURATE_BENCH_CACHE", "/tmp/curate-bench") + "/recipe_ablation")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="recipes to run (those absent are skipped)")
    ap.add_argument("--book", default="pg16351.txt", help="the prose-gutenberg book held out of everything")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-steps", type=int, default=50, help="train.max_steps of tiny-cpu (the token budget)")
    ap.add_argument("--runner", default="local", choices=("local", "ray"))
    ap.add_argument("--config", default="tiny-cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the training (OMP_NUM_THREADS); on the shared 2-core machine 1 beat 2 by 3.7x",
    )
    ap.add_argument("--no-ablate", action="store_true", help="stop after the recipes")
    args = ap.parse_args()
    out = Path(args.out)
    inputs = pack_input(out / "input")
    print(f"input: {len(inputs)} files in {out / 'input'}")

    arms: list[Path] = []
    rows = []
    for name in args.recipes.split(","):
        pipeline = REPO / "pipelines" / f"{name}.yaml"
        if not pipeline.exists():
            print(f"{name}: pipelines/{name}.yaml does not exist here, skipped")
            continue
        dest = out / "recipes" / name
        extra = []
        if name in ("dclm", "llama3"):  # llama3.yaml's stand-in classifier is trained by the same command
            extra = ["--set", f"stages.quality.model={dclm_classifier(out, args.book)}"]
        if not (dest / "_SUCCESS").exists():
            curate("run", str(pipeline), "--input", str(out / "input" / "*"), "--output", str(dest),
                   "--runner", args.runner, "--overwrite", "-q", *extra)  # fmt: skip
        n_in, n_kept, words, timeouts, conserved = kept_docs(dest)
        rows.append((name, n_in, n_kept, words, timeouts, conserved))
        if n_kept < MIN_DOCS:
            print(f"{name}: kept {n_kept} documents (< {MIN_DOCS}): left out of the ablation")
            continue
        arms.append(dest)
    # extraction_timeout is a wall-clock limit (1 s per page in the recipes): on a loaded machine it drops more pages
    print("\n| recipe | input docs | kept docs | kept % | kept words | extraction timeouts | conserved |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, n_in, n_kept, words, timeouts, conserved in rows:
        print(f"| {name} | {n_in:,} | {n_kept:,} | {100 * n_kept / max(n_in, 1):.1f} | {words:,} | {timeouts} "
              f"| {conserved} |")  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    print(f"\npipelines/ at commit {commit.stdout.strip()} (uncommitted changes, if any, are not in that name)")
    if args.no_ablate:
        return

    book = out / "heldout" / args.book
    book.parent.mkdir(parents=True, exist_ok=True)
    book.write_text(gutenberg_text(CORPUS / "prose-gutenberg" / args.book), encoding="utf-8")
    t0 = time.perf_counter()
    curate("ablate", args.config, *map(str, arms), "--heldout", str(book), "--seeds", args.seeds,
           "--out", str(out / "ablation"), "--set", f"train.max_steps={args.max_steps}",
           env={"OMP_NUM_THREADS": str(args.threads)})  # fmt: skip
    print(f"ablation: {time.perf_counter() - t0:.0f} s (a resumed run counts only what was left)")


if __name__ == "__main__":
    main()
