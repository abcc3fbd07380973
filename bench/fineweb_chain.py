"""FineWeb's base processing end to end, curate vs datatrove, on the same WARC in the same run.

Chain (both sides): WARC reader -> URL filter -> trafilatura (favour_precision) -> fastText LID (en, 0.65) ->
Gopher repetition -> Gopher quality -> C4 (filter_no_terminal_punct=False) -> FineWeb quality -> Parquet.
curate runs `curate run` with the local runner (one process); datatrove runs LocalPipelineExecutor with one task
and one worker (its extractor adds a sandbox process that works while the main one waits). Each run is a fresh
process (trafilatura's duplicate-segment cache is process-wide), runs alternate between the two sides, and the table
reports the best and the median of --repeat runs (on a shared machine the best is the least disturbed).

Reported: documents read, kept, docs/s per core (one worker each) and the ratio; the Jaccard index of the kept URL
sets; where each side spends its time (curate: stats.json stage seconds; datatrove: its per-step time stats), and
the share of the non-extraction stages relative to extraction.

    python bench/fineweb_chain.py [--warc PATH ...] [--pages 2000] [--repeat 3]
    python bench/fineweb_chain.py --files 4 --workers 2      # scaled out: curate on Ray vs datatrove, 2 workers
    python bench/fineweb_chain.py --warc corpus-pages --extractor fast_extract   # curate's chain on fast_extract
    python bench/fineweb_chain.py --warc corpus-pages --agreement   # curate's chain, trafilatura vs fast_extract
    python bench/fineweb_chain.py --warc corpus --isolation-ab       # curate's chain, engine.isolation process vs none

Without --warc: the sample crawl (sample:crawl?pages=N); --files K makes K of them (seeds 0..K-1). `--warc corpus`
uses the real WARCs of ../shared/corpus; `--warc corpus-pages` packs every HTML page of ../shared/corpus (trafilatura's
benchmark, Readability's test pages, the WARCs' HTML responses) into two WARCs, and --agreement then also splits the
kept-URL Jaccard by the fast_extract tuning split (fast.corpus). With --workers N > 1, curate runs on its
Ray runner (an embedded Ray with N CPUs, its start-up included in the time) and datatrove's LocalPipelineExecutor
runs one task per file on N workers; docs/s per core is then documents / wall time / N for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

PIPELINE = """
name: fineweb-bench
input: {{format: warc, path: "{path}", statuses: [], content_types: [text/html, application/xhtml+xml]}}
output: {{path: "{out}"}}
stages:
  - {{id: url, uses: url_filter}}
  - {extract}
  - {{id: lang, uses: fasttext_langid, with: {{languages: [en], language_threshold: 0.65}}}}
  - {{id: gopher_rep, uses: gopher_repetition}}
  - {{id: gopher_qual, uses: gopher_quality}}
  - {{id: c4, uses: c4_quality, with: {{filter_no_terminal_punct: false}}}}
  - {{id: fineweb, uses: fineweb_quality}}
"""


WORKERS = 1
ISOLATION = "process"  # engine.isolation of curate's side (--isolation-ab: both, paired)
EXTRACTORS = {
    "trafilatura": "{id: extract, uses: trafilatura, with: {favour_precision: true, include_comments: false, "
    "deduplicate: true, timeout: 1.0}}",
    "fast_extract": "{id: extract, uses: fast_extract, with: {timeout: 1.0}}",
}
EXTRACTOR = "trafilatura"


def run_curate(folder: str, work: str) -> dict[str, Any]:
    from curate import config, engine

    out = os.path.join(work, "curate-out")
    pipe = os.path.join(work, "fineweb-bench.yaml")
    extract = EXTRACTORS[EXTRACTOR].replace("{", "{{").replace("}", "}}")
    Path(pipe).write_text(PIPELINE.replace("{extract}", extract).format(path=os.path.join(folder, "*"), out=out))
    import resource

    def cpu_now() -> float:  # this process and its children (engine.isolation: process forks one per batch)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    cpu0 = cpu_now()
    t0 = time.perf_counter()
    if WORKERS > 1:
        from curate.engine.ray import ensure_ray

        ensure_ray(num_cpus=WORKERS)  # timed: a user pays Ray's start-up too
        stats = engine.run(config.load(pipe, ["engine.progress_seconds=0", f"engine.isolation={ISOLATION}"]), "ray")
    else:
        stats = engine.run(config.load(pipe, [f"engine.isolation={ISOLATION}"]), runner="local")
    wall = time.perf_counter() - t0
    cpu = cpu_now() - cpu0
    import pyarrow.parquet as pq

    urls = pq.read_table(os.path.join(out, "data"), columns=["url"]).column("url").to_pylist()
    read = list(urls)
    for stage_dir in Path(out, "rejected").iterdir():
        if stage_dir.name != "input":
            read += pq.read_table(stage_dir, columns=["url"]).column("url").to_pylist()
    stages = {s["id"]: s["seconds"] for s in stats["stages"] if s["id"] != "input"}
    # Documents that reached the first stage: records the reader rejects (a redirect's empty payload) are counted
    # as rejected input by curate but skipped silently by datatrove's reader.
    docs = next(s["docs_in"] for s in stats["stages"] if s["id"] != "input")
    return {"docs": docs, "kept": stats["output_docs"], "wall": wall, "cpu": cpu, "stages": stages,
            "urls": sorted(urls), "read": sorted(read), "trafilatura": _trafilatura_version()}  # fmt: skip


def run_datatrove(folder: str, work: str) -> dict[str, Any]:
    import logging

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.logging import logger
    from parity_datatrove import patch_datatrove_downloads

    logger.remove()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    patch_datatrove_downloads()
    out = os.path.join(work, "datatrove-out")
    logs = os.path.join(work, "datatrove-logs")
    read: list[str] = []

    def record(data, rank: int = 0, world_size: int = 1):  # the URLs the reader produced (negligible cost)
        for doc in data:
            read.append(doc.metadata.get("url"))
            yield doc

    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReader(folder),
            record,
            URLFilter(),
            Trafilatura(favour_precision=True, timeout=1.0),
            LanguageFilter(languages=["en"], language_threshold=0.65),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter(),
            ParquetWriter(out),
        ],
        tasks=len(os.listdir(folder)),
        workers=WORKERS,
        start_method="fork",  # workers inherit the patched (local) model and word-list paths
        logging_dir=logs,
    )
    import resource

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    executor.run()
    wall = time.perf_counter() - t0
    # The sandbox process that ran trafilatura has ended: its CPU time is in RUSAGE_CHILDREN.
    cpu = time.process_time() - cpu0 + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    meta = table.column("metadata").to_pylist() if "metadata" in table.column_names else None
    urls = [m.get("url") for m in meta] if meta is not None else table.column("url").to_pylist()
    stats = json.loads(Path(logs, "stats.json").read_text())
    stages: dict[str, float] = {}
    docs = 0
    for step in stats:
        name = step["name"]
        stages[name] = step.get("time_stats", {}).get("total", 0.0)
        if "READER" in name:
            total = step["stats"].get("documents", {})
            docs = total.get("total", 0) if isinstance(total, dict) else int(total)
    kept = sum(1 for _ in urls)
    return {"docs": docs, "kept": kept, "wall": wall, "cpu": cpu, "stages": stages, "urls": sorted(urls),
            "read": sorted(read), "trafilatura": _trafilatura_version()}  # fmt: skip


def _trafilatura_version() -> str:
    import trafilatura

    return trafilatura.__version__


SIDES = {"curate": run_curate, "datatrove": run_datatrove}
NON_EXTRACTION = ("url", "lang", "gopher_rep", "gopher_qual", "c4", "fineweb")


def _folder(warcs: list[str], pages: int, tmp: str, files: int = 1) -> str:
    """A folder holding (links to) the WARC files both readers read."""
    if not warcs:
        from curate.samples import materialize

        warcs = [materialize(f"sample:crawl?pages={pages}&seed={i}") for i in range(files)]
    if warcs == ["corpus-pages"]:
        from curate_filters.extraction.fast.corpus import all_pages, write_warcs

        paths, by_url = write_warcs(all_pages(), Path(tmp, "packed"), files=2)
        Path(tmp, "splits.json").write_text(json.dumps({u: p.split for u, p in by_url.items()}))
        warcs = [str(p) for p in paths]
    if warcs == ["corpus"]:
        from corpus_docs import CORPUS

        warcs = [str(p) for p in sorted(CORPUS.glob("*/*.warc.gz"))]
    folder = os.path.join(tmp, "warcs")
    os.makedirs(folder, exist_ok=True)
    for i, w in enumerate(warcs):
        os.symlink(os.path.abspath(w), os.path.join(folder, f"{i:03d}-{os.path.basename(w)}"))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warc", nargs="*", default=[], help="WARC files, or 'corpus' (default: the sample crawl)")
    ap.add_argument("--pages", type=int, default=2000, help="sample crawl size when --warc is not given")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--files", type=int, default=1, help="sample crawl files (seeds 0..K-1)")
    ap.add_argument("--workers", type=int, default=1, help="cores per side (> 1: curate on Ray)")
    ap.add_argument("--extractor", default="trafilatura", choices=list(EXTRACTORS), help="curate's extract stage")
    ap.add_argument(
        "--agreement", action="store_true", help="curate's chain on trafilatura vs on fast_extract: kept-URL Jaccard"
    )
    ap.add_argument(
        "--isolation-ab", action="store_true", help="curate's chain with engine.isolation process vs none, paired"
    )
    ap.add_argument("--isolation", default="process", help=argparse.SUPPRESS)  # internal: curate's engine.isolation
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one side in this (fresh) process
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global WORKERS, EXTRACTOR, ISOLATION
    WORKERS = args.workers
    EXTRACTOR = args.extractor
    ISOLATION = args.isolation
    if args.one:
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(SIDES[args.one](args.folder, work)))
        return
    # side name -> (what --one runs, the extractor of curate's chain, its engine.isolation)
    if args.agreement:
        sides = {
            "trafilatura": ("curate", "trafilatura", "process"),
            "fast_extract": ("curate", "fast_extract", "process"),
        }
    elif args.isolation_ab:
        sides = {"process": ("curate", args.extractor, "process"), "none": ("curate", args.extractor, "none")}
    else:
        sides = {"curate": ("curate", args.extractor, "process"), "datatrove": ("datatrove", "trafilatura", "process")}
    _compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(args.warc, args.pages, tmp, args.files)
        splits_file = Path(tmp, "splits.json")
        splits = json.loads(splits_file.read_text()) if splits_file.is_file() else {}
        print(f"WARC files: {', '.join(sorted(os.listdir(folder)))}; curate's extractor: "
              f"{'both' if args.agreement else args.extractor}")  # fmt: skip
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
        for rep in range(args.repeat):  # alternate, so machine noise hits both sides alike
            for side, (one, extractor, isolation) in sides.items():
                cmd = [sys.executable, __file__, "--one", one, "--folder", folder, "--workers", str(args.workers),
                       "--extractor", extractor, "--isolation", isolation]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{side} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                runs[side].append(r)
                print(f"  run {rep + 1} {side:<12} {r['docs']} docs, {r['kept']} kept, {r['wall']:.2f}s wall, "
                      f"{r['cpu']:.2f}s cpu", flush=True)  # fmt: skip
    if args.agreement:
        report_agreement(runs, splits, args.workers)
    elif args.isolation_ab:
        report_isolation(runs)
    else:
        report(runs, args.workers)


def _compile_bytecode() -> None:
    """Write curate's bytecode before timing, as an installed package has it. datatrove comes from site-packages,
    compiled when pip installed it; curate runs from this checkout, and where PYTHONDONTWRITEBYTECODE is set (this
    project's machines) every Ray worker would compile curate's modules from source again: 0.2-0.3 s each."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("curate", "filters"):
        compileall.compile_dir(str(root / package), quiet=1)


def _spread(rs: list[dict[str, Any]]) -> str:
    walls = [r["wall"] for r in rs]
    return f"{min(walls):.2f}-{max(walls):.2f}s"


def report_isolation(runs: dict[str, list[dict[str, Any]]]) -> None:
    """What isolating each batch in a forked child (engine.isolation: process) costs a clean run: paired runs."""
    print("\n| engine.isolation | docs | kept | median wall s | wall min-max | median CPU s (with children) |")
    print("|---|---:|---:|---:|---:|---:|")
    for side, rs in runs.items():
        med = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        print(f"| {side} | {rs[0]['docs']} | {rs[0]['kept']} | {med:.2f} | {_spread(rs)} | {cpu:.2f} |")
    ratios = sorted(a["wall"] / b["wall"] for a, b in zip(runs["process"], runs["none"]))
    print(f"\nprocess / none wall, paired: median {statistics.median(ratios):.3f} "
          f"(min {ratios[0]:.3f}, max {ratios[-1]:.3f}, n={len(ratios)})")  # fmt: skip
    # trafilatura's 1 s timeout makes a page or two come and go on a loaded machine, on either side
    a, b = set(runs["process"][0]["urls"]), set(runs["none"][0]["urls"])
    print(f"kept URLs: process {len(a)}, none {len(b)}, both {len(a & b)} (first runs)")


def report_agreement(runs: dict[str, list[dict[str, Any]]], splits: dict[str, str], workers: int = 1) -> None:
    """The same chain on two extractors' output: speed, and how alike the kept documents are (URL Jaccard)."""
    print("\n| extract stage | docs | kept | best wall s | wall min-max | docs/s per core (best) | CPU s (best) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rate = {}
    for side, rs in runs.items():
        best = min(rs, key=lambda r: r["wall"])
        rate[side] = best["docs"] / best["wall"] / workers
        print(f"| {side} | {best['docs']} | {best['kept']} | {best['wall']:.2f} | {_spread(rs)} | {rate[side]:.1f} | "
              f"{best['cpu']:.2f} |")  # fmt: skip
    print(f"\nfast_extract / trafilatura chain docs/s per core: {rate['fast_extract'] / rate['trafilatura']:.2f}x "
          "(best runs)")  # fmt: skip
    stages = {side: min(rs, key=lambda r: r["wall"])["stages"] for side, rs in runs.items()}
    slow, quick = stages["trafilatura"]["extract"], stages["fast_extract"]["extract"]
    print(f"extract stage seconds (best run): trafilatura {slow:.2f}, fast_extract {quick:.2f} ({slow / quick:.2f}x)")
    a, b = set(runs["trafilatura"][0]["urls"]), set(runs["fast_extract"][0]["urls"])
    groups = [("all pages", lambda u: True)]
    if splits:
        groups += [(f"{s} sites", lambda u, s=s: splits.get(u) == s) for s in ("held_out", "tune")]
    for label, keep in groups:
        aa, bb = {u for u in a if keep(u)}, {u for u in b if keep(u)}
        union = aa | bb
        jac = len(aa & bb) / len(union) if union else 1.0
        print(f"kept URLs, {label}: trafilatura {len(aa)}, fast_extract {len(bb)}, both {len(aa & bb)}, "
              f"Jaccard {jac:.4f}")  # fmt: skip


def report(runs: dict[str, list[dict[str, Any]]], workers: int = 1) -> None:
    print(f"\ntrafilatura: curate {runs['curate'][0]['trafilatura']}, datatrove {runs['datatrove'][0]['trafilatura']}")
    print("\n| pipeline | docs read | kept | best s | median s | wall min-max | docs/s per core (best) | "
          "docs/s per core (median) | CPU s (best run) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rate: dict[str, tuple[float, float]] = {}
    for side, rs in runs.items():
        best = min(rs, key=lambda r: r["wall"])
        med = statistics.median(r["wall"] for r in rs)
        rate[side] = (best["docs"] / best["wall"] / workers, best["docs"] / med / workers)
        print(f"| {side} | {best['docs']} | {best['kept']} | {best['wall']:.2f} | {med:.2f} | {_spread(rs)} | "
              f"{rate[side][0]:.1f} | {rate[side][1]:.1f} | {best['cpu']:.2f} |")  # fmt: skip
    print(f"\ncurate / datatrove docs/s per core: {rate['curate'][0] / rate['datatrove'][0]:.2f}x (best runs), "
          f"{rate['curate'][1] / rate['datatrove'][1]:.2f}x (medians)")  # fmt: skip
    a, b = set(runs["curate"][0]["urls"]), set(runs["datatrove"][0]["urls"])
    jac = len(a & b) / len(a | b) if a | b else 1.0
    print(f"kept URL sets: curate {len(a)}, datatrove {len(b)}, both {len(a & b)}, Jaccard {jac:.4f}")
    # The readers differ on a few records (encodings datatrove cannot detect, non-HTML it sniffs as HTML): the
    # same comparison on the documents both readers produced isolates the filters and the extraction.
    if not runs["datatrove"][0]["read"]:  # its workers are forked processes: what they read stays there
        print("read by both readers: not collected when datatrove runs several workers")
    else:
        common = set(runs["curate"][0]["read"]) & set(runs["datatrove"][0]["read"])
        ac, bc = a & common, b & common
        jac_c = len(ac & bc) / len(ac | bc) if ac | bc else 1.0
        print(f"read by both readers: {len(common)} URLs (curate read {len(set(runs['curate'][0]['read']))}, "
              f"datatrove {len(set(runs['datatrove'][0]['read']))}); kept among them: curate {len(ac)}, datatrove "
              f"{len(bc)}, Jaccard {jac_c:.4f}")  # fmt: skip
    best = min(runs["curate"], key=lambda r: r["wall"])["stages"]
    print("\ncurate stage seconds (best run): " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    shares = sorted(100 * sum(r["stages"].get(s, 0.0) for s in NON_EXTRACTION) / r["stages"]["extract"]
                    for r in runs["curate"])  # fmt: skip
    print(
        f"curate non-extraction stages / extraction, per run: {', '.join(f'{x:.1f}%' for x in shares)} "
        f"(median {statistics.median(shares):.1f}%)"
    )
    dt = min(runs["datatrove"], key=lambda r: r["wall"])["stages"]
    dt_extract = sum(v for k, v in dt.items() if "Trafilatura" in k)
    dt_other = sum(v for k, v in dt.items() if "Trafilatura" not in k and "Warc" not in k and "Parquet" not in k)
    print("datatrove step seconds (best run): " + ", ".join(f"{k.encode('ascii', 'ignore').decode().strip()} {v:.2f}"
                                                             for k, v in dt.items()))  # fmt: skip
    print(f"datatrove non-extraction steps / extraction: {dt_other:.2f}s / {dt_extract:.2f}s = "
          f"{100 * dt_other / max(dt_extract, 1e-9):.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
