"""Extraction throughput, pages/s on one core: curate's WarcReader + each extraction stage, and datatrove's WarcReader
+ Trafilatura, on the same WARC in the same run (alternating, repeated), and the cost of the per-document time limit.

Rows (each single-process, one core, a fresh process per run; best and median of --repeat alternating runs):
  curate            WarcReader.read -> Trafilatura(favour_precision, timeout=1).map_batch  (SIGALRM deadline)
  curate fast       the same with fast=True (trafilatura's no-fallback mode)
  fast_extract      WarcReader.read -> FastExtract(timeout=1).map_batch: curate's block classifier
  resiliparse       WarcReader.read -> Resiliparse(timeout=1).map_batch (when installed)
  curate no-limit   Trafilatura with timeout=0: what the deadline costs
  curate thread     Trafilatura off the main thread (as in a Ray actor): the watchdog-thread deadline
  datatrove         WarcReader -> Trafilatura(favour_precision=True, timeout=1): extraction in its sandbox process
  datatrove direct  datatrove's reader + trafilatura.extract in-process, no sandbox: what the sandbox costs
Ratios are in pages per second (documents read from the WARC, kept or not) of CPU time: the run's process time
(plus its children's for datatrove's sandbox), on a shared machine steadier than wall time (shown too). For curate's
rows also the CPU time inside the stage's map_batch alone (the extraction engine, without the WARC reader). The
per-repeat ratio of two rows (runs next to each other in time) gives their spread.

    python bench/extraction_speed.py [--warc PATH | --warc corpus] [--repeat 3] [--rows curate,fast_extract]
    python bench/extraction_speed.py --profile [--pages 400]   # where trafilatura's time goes, phase by phase
    python bench/extraction_speed.py --warc corpus --paired [--repeat 3]   # the two stages slice by slice
`--warc corpus` packs every HTML page of ../shared/corpus (trafilatura's benchmark, Readability's test pages, the
corpus WARCs) into one WARC. Without --warc: the sample crawl (sample:crawl?pages=N). datatrove rows need datatrove
installed (a bench-only oracle) and are skipped otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def curate_in_thread(path: str) -> tuple[int, int, float, float, float]:
    """curate_run off the main thread, as in a Ray actor: the time limit is then the watchdog thread."""
    import threading

    out: list[tuple[int, int, float, float, float]] = []
    t = threading.Thread(target=lambda: out.append(curate_run(path, "trafilatura", 1.0)))
    t.start()
    t.join()
    return out[0]


def _stage(kind: str, timeout: float):
    from curate_filters.extraction.extractors import Resiliparse, Trafilatura

    if kind == "trafilatura":
        return Trafilatura(favour_precision=True, timeout=timeout)
    if kind == "trafilatura_fast":
        return Trafilatura(favour_precision=True, fast=True, timeout=timeout)
    if kind == "resiliparse":
        return Resiliparse(timeout=timeout)
    from curate_filters.extraction.fast import FastExtract

    return FastExtract(timeout=timeout)


def _warc_batches(path: str):
    """curate's WarcReader batches of a WARC, every status (datatrove's reader keeps every status: the same
    documents), less the batches of records the reader itself rejects."""
    from curate.io.warc import WarcReader

    reader = WarcReader(path=path, statuses=[])
    for unit in reader.units():
        for batch in reader.read(unit):
            if "__reason__" not in batch.column_names:
                yield batch


def curate_run(path: str, kind: str, timeout: float) -> tuple[int, int, float, float, float]:
    stage = _stage(kind, timeout)
    stage.setup()  # one-off per worker (imports, warm-up): not counted, as datatrove warms its sandbox too
    t0 = time.perf_counter()
    c0 = time.process_time()
    docs = kept = 0
    in_stage = 0.0
    for batch in _warc_batches(path):
        s0 = time.process_time()
        _, reasons = stage.map_batch(batch)
        in_stage += time.process_time() - s0
        docs += batch.num_rows
        kept += sum(r is None for r in reasons)
    return docs, kept, time.perf_counter() - t0, time.process_time() - c0, in_stage


def paired_run(path: str, kinds: tuple[str, str] = ("trafilatura", "fast_extract"), slice_rows: int = 20) -> dict:
    """Two stages in one process on the same pages, slice by slice (the order flipping each slice): the CPU time
    of each stage's map_batch, summed. Both see the machine as it is within the same second, so a slow spell of a
    shared machine (these runs' CPU time for identical work varies by a third) slows both alike instead of one."""
    stages = [_stage(k, 1.0) for k in kinds]
    for st in stages:
        st.setup()
    cpu = [0.0, 0.0]
    kept = [0, 0]
    docs = 0
    flip = False
    for batch in _warc_batches(path):
        for i in range(0, batch.num_rows, slice_rows):
            piece = batch.slice(i, slice_rows)
            for k in (1, 0) if flip else (0, 1):
                s0 = time.process_time()
                _, reasons = stages[k].map_batch(piece)
                cpu[k] += time.process_time() - s0
                kept[k] += sum(r is None for r in reasons)
            flip = not flip
            docs += piece.num_rows
    return {"docs": docs, "kinds": list(kinds), "cpu": cpu, "kept": kept}


def paired(path: str, repeat: int) -> None:
    """--paired: paired_run in a fresh process per repeat (fast_extract's caches start cold each time)."""
    ratios = []
    print("\n| repeat | docs | trafilatura stage CPU s | fast_extract stage CPU s | trafilatura pages/s | "
          "fast_extract pages/s | ratio |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for rep in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--one", "paired", "--warc", path], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        a, b = r["cpu"]
        ratios.append(a / b)
        print(f"| {rep + 1} | {r['docs']} | {a:.2f} | {b:.2f} | {r['docs'] / a:.1f} | {r['docs'] / b:.1f} | "
              f"{a / b:.2f}x |", flush=True)  # fmt: skip
    print(f"\nfast_extract / trafilatura precision, the stages paired slice by slice: {min(ratios):.2f}-"
          f"{max(ratios):.2f}x over {repeat} runs (median {statistics.median(ratios):.2f}x)")  # fmt: skip


def datatrove_run(path: str, sandbox: bool) -> tuple[int, int, float, float, float]:
    import logging

    from datatrove.pipeline.extractors import Trafilatura as DTTrafilatura
    from datatrove.pipeline.readers import WarcReader as DTWarcReader
    from datatrove.utils.logging import logger

    logger.remove()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    folder, name = os.path.split(os.path.abspath(path))
    reader = DTWarcReader(folder, glob_pattern=name)
    extractor = DTTrafilatura(favour_precision=True, timeout=1.0)
    t0 = time.perf_counter()
    c0 = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    docs = kept = 0
    if sandbox:
        counted = []

        def source():
            for doc in reader.run():
                counted.append(1)
                yield doc

        kept = sum(1 for _ in extractor.run(source()))
        docs = len(counted)
    else:
        for doc in reader.run():
            docs += 1
            text = extractor.extract(doc.text)
            kept += bool(text)
    wall = time.perf_counter() - t0
    # the sandbox process has ended by now: its CPU time is in RUSAGE_CHILDREN
    cpu = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - c0
    return docs, kept, wall, cpu, float("nan")  # the extraction alone is not separable from datatrove's reader


ROWS = {
    "curate": lambda p: curate_run(p, "trafilatura", 1.0),
    "curate fast": lambda p: curate_run(p, "trafilatura_fast", 1.0),
    "fast_extract": lambda p: curate_run(p, "fast_extract", 1.0),
    "resiliparse": lambda p: curate_run(p, "resiliparse", 1.0),
    "curate no-limit": lambda p: curate_run(p, "trafilatura", 0.0),
    "curate thread": curate_in_thread,
    "datatrove": lambda p: datatrove_run(p, sandbox=True),
    "datatrove direct": lambda p: datatrove_run(p, sandbox=False),
}


def _available(rows: list[str]) -> list[str]:
    import importlib.util

    out = []
    for name in rows:
        if name.startswith("datatrove") and importlib.util.find_spec("datatrove") is None:
            print(f"(skipping {name}: datatrove is not installed)")
            continue
        if name == "resiliparse" and importlib.util.find_spec("resiliparse") is None:
            print("(skipping resiliparse: pip install 'curate[fast]')")
            continue
        out.append(name)
    return out


# -- where trafilatura's time goes ----------------------------------------------------------------------------------


def profile(n_pages: int) -> None:
    """Exclusive wall time per phase of trafilatura.extract (favor_precision, standard and fast mode) and of
    fast_extract, on the first n pages of trafilatura's benchmark, decoded once beforehand (as the stages do)."""
    import trafilatura
    import trafilatura.core as core
    import trafilatura.main_extractor as me

    from curate_filters.extraction.extractors import decode_html
    from curate_filters.extraction.fast.corpus import trafilatura_eval

    pages = [decode_html(p.html)[0] for p in trafilatura_eval()[:n_pages]]
    phases: dict[str, float] = {}
    stack: list[float] = []

    def wrap(module, name: str, label: str) -> None:
        fn = getattr(module, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            stack.append(0.0)
            try:
                return fn(*a, **k)
            finally:
                elapsed = time.perf_counter() - t0
                inner = stack.pop()
                phases[label] = phases.get(label, 0.0) + elapsed - inner
                if stack:
                    stack[-1] += elapsed

        setattr(module, name, timed)

    # the names as the calling module sees them: core.py and main_extractor.py import these into their namespace
    wrap(core, "load_html", "parse (lxml.html, HtmlElement class lookup)")
    wrap(core, "prune_unwanted_nodes", "raw-tree XPath prunes (comments, lists, infinite scroll)")
    wrap(core, "tree_cleaning", "tree cleaning (strip and delete tags, empty elements)")
    wrap(core, "copy", "tree copies")
    wrap(me, "deepcopy", "tree copies")
    wrap(core, "convert_tags", "tag conversion")
    wrap(core, "extract_content", "main extractor: BODY_XPATH cascade and the rest")
    wrap(me, "prune_unwanted_nodes", "main extractor: discard XPath passes (OVERALL/TEASER/PRECISION)")
    wrap(me, "delete_by_link_density", "main extractor: link-density passes")
    wrap(me, "handle_textelem", "main extractor: paragraph handling")
    wrap(me, "recover_wild_text", "main extractor: wild-text recovery")
    wrap(core, "compare_extraction", "fallback: readability / justext comparison")
    wrap(core, "justext_rescue", "fallback: readability / justext comparison")
    wrap(core, "baseline", "fallback: baseline")
    wrap(core, "xmltotxt", "text assembly (xmltotxt)")
    wrap(core, "duplicate_test", "deduplication")
    for page in pages[:5]:
        trafilatura.extract(page, favor_precision=True, include_comments=False)
    for fast in (False, True):
        best: tuple[float, dict[str, float]] | None = None
        for _ in range(2):
            phases.clear()
            t0 = time.perf_counter()
            for page in pages:
                trafilatura.extract(page, favor_precision=True, fast=fast, include_comments=False, deduplicate=False)
            total = time.perf_counter() - t0
            if best is None or total < best[0]:
                best = (total, dict(phases))
        total, ph = best  # type: ignore[misc]
        mode = "fast=True (no fallback)" if fast else "standard (with fallback)"
        print(
            f"\ntrafilatura {trafilatura.__version__} favor_precision, {mode}: {1000 * total / len(pages):.2f} ms/page"
        )
        _phase_table(ph, total, len(pages))
    _profile_fast_extract(pages)


def _phase_table(ph: dict[str, float], total: float, n: int) -> None:
    rows = sorted(ph.items(), key=lambda kv: -kv[1]) + [
        ("other (glue, options, size checks)", total - sum(ph.values()))
    ]
    print("| phase | ms/page | share |\n|---|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {1000 * seconds / n:.2f} | {100 * seconds / total:.1f}% |")


def _profile_fast_extract(pages: list[str]) -> None:
    import numpy as np

    from curate_filters.extraction.fast import FastExtract
    from curate_filters.extraction.fast.featurize import context, features
    from curate_filters.extraction.fast.layout import render
    from curate_filters.extraction.fast.tree import parse, segment

    stage = FastExtract(timeout=0)
    stage.setup()
    model = stage._model
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(3):
        ph = dict.fromkeys(("parse (libxml2)", "strip, walk, blocks", "features", "two tree passes", "render"), 0.0)
        t_all = time.perf_counter()
        for page in pages:
            t0 = time.perf_counter()
            root = parse(page)
            t1 = time.perf_counter()
            if root is None:
                continue
            b = segment(root)
            t2 = time.perf_counter()
            if not len(b):
                continue
            X = features(b)
            t3 = time.perf_counter()
            p = model.second.proba(np.hstack([X, context(b, model.first.proba(X))]))
            t4 = time.perf_counter()
            render(b, p >= model.threshold)
            t5 = time.perf_counter()
            for k, v in zip(ph, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                ph[k] += v
        total = time.perf_counter() - t_all
        if best is None or total < best[0]:
            best = (total, ph)
    total, ph = best  # type: ignore[misc]
    print(f"\nfast_extract: {1000 * total / len(pages):.2f} ms/page")
    _phase_table(ph, total, len(pages))


# -- the side-by-side run -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warc", help="a WARC file, or 'corpus' (default: the sample crawl)")
    ap.add_argument("--pages", type=int, default=2000, help="sample crawl size; with --profile: pages profiled")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    ap.add_argument("--profile", action="store_true", help="phase profile of trafilatura and fast_extract")
    ap.add_argument("--paired", action="store_true", help="trafilatura and fast_extract interleaved in one process")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one row in this (fresh) process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(paired_run(args.warc) if args.one == "paired" else ROWS[args.one](args.warc)))
        return
    if args.profile:
        profile(min(args.pages, 990))
        return
    rows = _available([r.strip() for r in args.rows.split(",") if r.strip()])
    with tempfile.TemporaryDirectory() as tmp:
        if args.warc == "corpus":
            from curate_filters.extraction.fast.corpus import all_pages, write_warcs

            path = str(write_warcs(all_pages(), Path(tmp), files=1)[0][0])
        elif args.warc:
            path = args.warc
        else:
            from curate.samples import materialize

            path = materialize(f"sample:crawl?pages={args.pages}")
        print(f"WARC: {args.warc or path}")
        if args.paired:
            paired(path, args.repeat)
            return
        results: dict[str, list[tuple[int, int, float, float, float]]] = {k: [] for k in rows}
        for rep in range(args.repeat):  # alternate, so machine noise hits every row alike
            for name in rows:
                # a fresh process per run: trafilatura's duplicate-segment cache is process-wide and would make a
                # second run over the same pages do different work
                out = subprocess.run(
                    [sys.executable, __file__, "--one", name, "--warc", path],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[name].append(tuple(json.loads(out.stdout.strip().splitlines()[-1])))
                d, k, s, c, e = results[name][-1]
                print(f"  run {rep + 1} {name:<17} {d} docs {k} kept {s:.2f}s wall {c:.2f}s cpu ({e:.2f}s in the "
                      "stage)", flush=True)  # fmt: skip
    report(results)


def report(results: dict[str, list[tuple[int, int, float, float, float]]]) -> None:
    print("\n| pipeline | docs | kept | best wall s | median wall s | best CPU s | pages/s per core (CPU, best) | "
          "stage CPU s (best) | stage pages/s per core |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    cpu: dict[str, float] = {}
    stage: dict[str, float] = {}
    for name, rs in results.items():
        docs = rs[0][0]
        cpu[name] = docs / min(r[3] for r in rs)
        stage_s = min(r[4] for r in rs)
        stage[name] = docs / stage_s if stage_s == stage_s else float("nan")
        print(f"| {name} | {docs} | {rs[0][1]} | {min(r[2] for r in rs):.2f} | "
              f"{statistics.median(r[2] for r in rs):.2f} | {min(r[3] for r in rs):.2f} | {cpu[name]:.1f} | "
              f"{stage_s:.2f} | {stage[name]:.1f} |")  # fmt: skip

    def ratio(a: str, b: str, label: str) -> None:
        if a not in results or b not in results:
            return
        per_run = sorted(rb[3] / ra[3] for ra, rb in zip(results[a], results[b]))
        line = (f"{label}: reader + stage {cpu[a] / cpu[b]:.2f}x pages/s per core (best runs; per repeat "
                f"{per_run[0]:.2f}-{per_run[-1]:.2f}x)")  # fmt: skip
        if stage[a] == stage[a] and stage[b] == stage[b]:
            per_stage = sorted(rb[4] / ra[4] for ra, rb in zip(results[a], results[b]))
            line += f"; the stage alone {stage[a] / stage[b]:.2f}x (per repeat {per_stage[0]:.2f}-{per_stage[-1]:.2f}x)"
        print(line)

    print()
    ratio("fast_extract", "curate", "fast_extract / trafilatura precision")
    ratio("fast_extract", "curate fast", "fast_extract / trafilatura precision fast")
    ratio("fast_extract", "resiliparse", "fast_extract / resiliparse")
    ratio("curate fast", "curate", "trafilatura fast / standard")
    ratio("curate", "datatrove", "curate / datatrove (trafilatura, time limit on)")
    if {"curate", "curate no-limit", "curate thread"} <= results.keys():
        lim = (cpu["curate no-limit"] / cpu["curate"] - 1) * 100
        thr = (cpu["curate no-limit"] / cpu["curate thread"] - 1) * 100
        line = f"time limit overhead (CPU): curate SIGALRM {lim:+.1f}%, curate watchdog thread {thr:+.1f}%"
        if {"datatrove", "datatrove direct"} <= results.keys():
            line += f", datatrove sandbox process {(cpu['datatrove direct'] / cpu['datatrove'] - 1) * 100:+.1f}%"
        print(line)


if __name__ == "__main__":
    main()
