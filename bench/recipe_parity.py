"""pipelines/fineweb.yaml before dedup against datatrove's FineWeb example chain, on the same WARC: which pages
each side keeps, and at which stage the two part ways.

    python bench/recipe_parity.py [--show 3] [--work DIR] [--timeout 1.0]

The WARC: every HTML page of ../shared/corpus (trafilatura's 990-page benchmark, Readability's test pages, the
corpus WARCs' HTML responses) packed into one WARC by the packer of filters/extraction/fast/corpus.py (the one
bench/extraction_speed.py --warc corpus uses).

curate: the stages of pipelines/fineweb.yaml up to `fineweb` (the kept set before `dedup` and `pii`), read from the
bundled file itself with only the input and output changed, on the local runner. datatrove: examples/fineweb.py's
chain, WarcReader -> URLFilter -> Trafilatura(favour_precision=True) -> LanguageFilter -> GopherRepetitionFilter ->
GopherQualityFilter -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter, each block with its
defaults (its lid.176 and word-list downloads pointed at the same local files curate uses; see
bench/parity_datatrove.py). Each side runs in its own fresh Python process: datatrove's Trafilatura keeps one
process-wide cache of the text segments it has seen (`deduplicate`), so a page's extraction there depends on the
pages extracted before it; curate's `deduplicate: true` counts repeats within each page. Both use the trafilatura
installed here (printed).

Printed: documents in, kept by each side, kept by both, the Jaccard index of the kept URL sets; per stage, how many
pages each side dropped there and how many only one side did, with examples (URL, each side's stage and reason).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

STAGES = ("url", "extract", "lang", "gopher_rep", "gopher_qual", "c4", "fineweb")
KEPT = "kept"


def pack(folder: Path) -> Path:
    """One WARC holding every HTML page of the corpus (the packer bench/extraction_speed.py --warc corpus uses)."""
    from curate_filters.extraction.fast.corpus import all_pages, write_warcs

    paths, _ = write_warcs(all_pages(), folder, files=1)
    return paths[0]


# -- curate: the bundled recipe up to its last filter --------------------------------------------------------------


def run_curate(warc: str, work: Path, timeout: float) -> dict[str, Any]:
    """url -> (stage, reason) for every page, from pipelines/fineweb.yaml cut before its `dedup` stage."""
    import pyarrow.parquet as pq
    import yaml

    from curate import config, engine

    spec = yaml.safe_load((REPO / "pipelines" / "fineweb.yaml").read_text())
    ids = [s["id"] for s in spec["stages"]]
    spec["stages"] = spec["stages"][: ids.index("dedup")]
    assert tuple(s["id"] for s in spec["stages"]) == STAGES, ids
    for s in spec["stages"]:
        if s["uses"] == "trafilatura":
            s["with"]["timeout"] = timeout
    out = work / "curate-out"
    spec["input"]["path"] = warc
    spec["output"] = {"path": str(out)}
    path = work / "fineweb-before-dedup.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    stats = engine.run(config.load(str(path)), runner="local")
    outcome: dict[str, tuple[str, str | None]] = {}
    for url in pq.read_table(out / "data", columns=["url"]).column("url").to_pylist():
        outcome[url] = (KEPT, None)
    for stage_dir in sorted((out / "rejected").iterdir()):
        t = pq.read_table(stage_dir, columns=["url", "reason"])
        for url, reason in zip(t.column("url").to_pylist(), t.column("reason").to_pylist()):
            outcome[url] = (stage_dir.name, reason)
    return {"outcome": outcome, "conserved": bool(stats["conserved"]), "input_docs": stats["input_docs"]}


# -- datatrove: examples/fineweb.py's chain, block by block ---------------------------------------------------------


def run_datatrove(warc: str, work: Path, timeout: float) -> dict[str, Any]:
    """url -> (stage, reason) for every page the reader produced, through datatrove's FineWeb chain."""
    import logging

    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.filters.base_filter import get_filter_result
    from datatrove.pipeline.readers import WarcReader
    from datatrove.utils.logging import logger
    from parity_datatrove import patch_datatrove_downloads

    logger.remove()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    patch_datatrove_downloads()
    steps = {
        "url": URLFilter(),
        "extract": Trafilatura(favour_precision=True, timeout=timeout),
        # examples/fineweb.py calls LanguageFilter() bare; datatrove 0.10.1's default languages=None keeps every
        # language, which is not FineWeb (English): the English filter it means
        "lang": LanguageFilter(languages=["en"], language_threshold=0.65),
        "gopher_rep": GopherRepetitionFilter(),
        "gopher_qual": GopherQualityFilter(),
        "c4": C4QualityFilter(filter_no_terminal_punct=False),
        "fineweb": FineWebQualityFilter(),
    }
    assert tuple(steps) == STAGES
    reasons: dict[str, str | None] = {}

    def recording(block: Any) -> None:
        # a filter's reason is only handed to its exclusion writer: catch it where filter() returns it
        inner = block.filter

        def filter(doc: Any) -> Any:
            result = inner(doc)
            ok, reason = get_filter_result(result)
            if not ok:
                reasons[doc.metadata.get("url")] = reason
            return result

        block.filter = filter

    passed: dict[str, list[str]] = {}

    def tap(name: str, data: Any) -> Any:
        seen = passed.setdefault(name, [])
        for doc in data:
            seen.append(doc.metadata.get("url"))
            yield doc

    data: Any = tap("read", WarcReader(str(Path(warc).parent), glob_pattern=Path(warc).name).run(rank=0, world_size=1))
    for name, block in steps.items():
        if name != "extract":
            recording(block)
        data = tap(name, block.run(data, rank=0, world_size=1))
    for _ in data:
        pass
    outcome: dict[str, tuple[str, str | None]] = {url: (KEPT, None) for url in passed["fineweb"]}
    before = passed["read"]
    for name in STAGES:
        after = set(passed[name])
        for url in before:
            if url not in after:
                outcome[url] = (name, reasons.get(url) or ("empty_text" if name == "extract" else None))
        before = passed[name]
    return {"outcome": outcome, "input_docs": len(passed["read"])}


# -- the comparison -------------------------------------------------------------------------------------------------


def side(name: str, warc: str, work: Path, timeout: float) -> dict[str, Any]:
    """Run one side in a fresh Python process (trafilatura's dedup cache is per process) and read its result."""
    result = work / f"{name}.json"
    cmd = [sys.executable, __file__, "--side", name, "--warc", warc, "--work", str(work), "--timeout", str(timeout)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    data = json.loads(result.read_text())
    data["outcome"] = {u: tuple(v) for u, v in data["outcome"].items()}
    return data


def report(cur: dict[str, Any], dt: dict[str, Any], show: int) -> None:
    import trafilatura

    a, b = cur["outcome"], dt["outcome"]
    kept_a = {u for u, (s, _) in a.items() if s == KEPT}
    kept_b = {u for u, (s, _) in b.items() if s == KEPT}
    union = kept_a | kept_b
    jaccard = len(kept_a & kept_b) / len(union) if union else 1.0
    print(f"trafilatura {trafilatura.__version__} on both sides; each side in a fresh process")
    print(f"curate: pipelines/fineweb.yaml up to `fineweb` (local runner); conserved: {cur['conserved']}")
    print()
    print(f"{'':22} {'curate':>8} {'datatrove':>10}")
    print(f"{'documents in':22} {cur['input_docs']:>8,} {dt['input_docs']:>10,}")
    print(f"{'kept':22} {len(kept_a):>8,} {len(kept_b):>10,}")
    print(f"kept by both {len(kept_a & kept_b):,}; only curate {len(kept_a - kept_b):,}; "
          f"only datatrove {len(kept_b - kept_a):,}; Jaccard of kept URL sets {jaccard:.4f}")  # fmt: skip
    common = sorted(set(a) & set(b))
    only_a_urls = sorted(set(a) - set(b))
    only_b_urls = sorted(set(b) - set(a))
    if only_a_urls or only_b_urls:
        both_read = set(common)
        ka, kb = kept_a & both_read, kept_b & both_read
        j = len(ka & kb) / len(ka | kb) if ka | kb else 1.0
        print(f"pages read by one side only: curate {len(only_a_urls):,}, datatrove {len(only_b_urls):,}; "
              f"on the {len(common):,} both read: kept {len(ka):,} / {len(kb):,}, Jaccard {j:.4f}")  # fmt: skip
        outcomes = Counter(a[u] for u in only_a_urls)
        print("  curate's outcome for the pages datatrove's reader skipped: "
              + ", ".join(f"{s}:{r} {n}" for (s, r), n in outcomes.most_common(6)))  # fmt: skip
        for u in only_a_urls[:show]:
            print(f"    {u[:100]}  curate: {a[u][0]} {a[u][1] or ''}")
    print()
    print(f"{'stage':12} {'dropped: curate':>16} {'datatrove':>10} {'both':>6} {'only curate':>12} {'only dt':>8}")
    for stage in STAGES:
        da = {u for u in common if a[u][0] == stage}
        db = {u for u in common if b[u][0] == stage}
        print(f"{stage:12} {len(da):>16,} {len(db):>10,} {len(da & db):>6,} {len(da - db):>12,} {len(db - da):>8,}")
    print()
    pairs = Counter((a[u][0], b[u][0]) for u in common if a[u][0] != b[u][0])
    print("documents whose outcome differs (curate stage -> datatrove stage):")
    for (sa, sb), n in pairs.most_common():
        print(f"  {n:>4}  curate {sa:11} datatrove {sb}")
        examples = [u for u in common if (a[u][0], b[u][0]) == (sa, sb)][:show]
        for u in examples:
            print(f"        {u[:90]}  curate: {a[u][1]}  datatrove: {b[u][1]}")
    from parity_datatrove import REASONS

    # url_filter's reasons and datatrove's URLFilter's (url_filter.py); a timeout is an empty text there
    renamed = {**REASONS, "blocklisted_domain": "domain", "blocklisted_url": "url", "banned_word": "hard_blacklisted",
               "soft_banned_words": "soft_blacklisted", "banned_subword": "blacklisted_subword",
               "extraction_timeout": "empty_text"}  # fmt: skip

    def same(ra: str | None, rb: str | None) -> bool:
        return ra == rb or renamed.get(ra or "", ra) == rb

    reasons = Counter((a[u][1], b[u][1]) for u in common if a[u][0] == b[u][0] != KEPT and not same(a[u][1], b[u][1]))
    if reasons:
        print("same stage, different reasons (curate / datatrove), beyond the renamings of parity_datatrove.REASONS:")
        for (ra, rb), n in reasons.most_common(12):
            print(f"  {n:>4}  {ra} / {rb}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=("curate", "datatrove"), help=argparse.SUPPRESS)
    ap.add_argument("--warc", help="a WARC to use instead of the packed corpus pages")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=1.0, help="trafilatura's time limit per page, both sides")
    ap.add_argument("--show", type=int, default=3, help="examples per disagreement")
    args = ap.parse_args()
    if args.side:
        work = Path(args.work)
        run = run_curate if args.side == "curate" else run_datatrove
        data = run(args.warc, work, args.timeout)
        data["outcome"] = {u: list(v) for u, v in data["outcome"].items()}
        (work / f"{args.side}.json").write_text(json.dumps(data))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        warc = args.warc or str(pack(work / "packed"))
        print(f"WARC: {args.warc or 'every HTML page of ../shared/corpus, packed'} ({warc})")
        cur = side("curate", warc, work, args.timeout)
        dt = side("datatrove", warc, work, args.timeout)
        report(cur, dt, args.show)


if __name__ == "__main__":
    main()
