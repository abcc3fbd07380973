"""JSONL read throughput: curate's JsonlReader beside datatrove's JsonlReader, on one ~100 MB file of real text.

The file is built once (cached in CURATE_BENCH_CACHE) from ../shared/corpus: the Dolma CC documents as the record
template (id, text, metadata), their texts plus Gutenberg paragraphs and Lingua sentences in 75 languages (so the
decoder sees non-ASCII), in a fixed order. Each reader reads the whole file; the table gives docs/s and MB/s (best
of --repeat) and the ratio to curate. `--also OLD.py` times another version of curate/io/jsonl.py side by side
(e.g. `git show HEAD~1:curate/io/jsonl.py > /tmp/old_jsonl.py`).

    python bench/jsonl_read.py [--mb 100] [--repeat 3] [--gz] [--also /tmp/old_jsonl.py]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CURATE_CORPUS", REPO.parent / "shared" / "corpus"))
CACHE = Path(os.environ.get("CURATE_BENCH_CACHE", "/tmp/curate-bench"))


def _texts() -> list[tuple[str, dict]]:
    """(text, metadata) pairs from the corpus, in a fixed order."""
    out: list[tuple[str, dict]] = []
    dolma = CORPUS / "jsonl-cc-docs-dolma"
    for p in sorted(dolma.glob("*.gz")):
        for line in gzip.decompress(p.read_bytes()).decode("utf-8").splitlines():
            rec = json.loads(line)
            if isinstance(rec.get("text"), str):
                out.append((rec["text"], rec.get("metadata") or {}))
    for p in sorted((CORPUS / "prose-gutenberg").glob("*.txt")):
        paras = [x.strip() for x in p.read_text(encoding="utf-8", errors="replace").split("\n\n") if x.strip()]
        for i in range(0, len(paras), 12):  # documents of about 12 paragraphs (a few KB)
            out.append(("\n\n".join(paras[i : i + 12]), {"book": p.stem}))
    for p in sorted((CORPUS / "langid-lingua-testdata" / "language-testdata" / "sentences").glob("*.txt")):
        lines = p.read_text(encoding="utf-8").splitlines()
        for i in range(0, len(lines), 20):
            out.append(("\n".join(lines[i : i + 20]), {"language": p.stem}))
    if not out:
        sys.exit(f"corpus not found at {CORPUS} (set CURATE_CORPUS)")
    return out


def build(mb: int, gz: bool) -> Path:
    """The bench file: records cycled from the corpus texts until it holds `mb` megabytes."""
    path = CACHE / (f"jsonl_read_{mb}mb.jsonl" + (".gz" if gz else ""))
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    texts = _texts()
    tmp = path.with_suffix(".tmp")
    opener = gzip.open if gz else open
    written = i = 0
    with opener(tmp, "wt", encoding="utf-8") as fh:
        while written < mb << 20:
            text, meta = texts[i % len(texts)]
            line = json.dumps(
                {"id": f"doc-{i}", "text": text, "url": f"https://example.org/{i}", "metadata": meta},
                ensure_ascii=False,
            )
            fh.write(line + "\n")
            written += len(line.encode("utf-8")) + 1
            i += 1
    tmp.rename(path)
    return path


def _curate(module_file: str | None) -> Callable[[Path], int]:
    if module_file is None:
        from curate.io.jsonl import JsonlReader
    else:
        spec = importlib.util.spec_from_file_location("curate_jsonl_other", module_file)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
        JsonlReader = mod.JsonlReader  # noqa: N806

    def read(path: Path) -> int:
        reader = JsonlReader(path=str(path))
        (unit,) = reader.units()
        return sum(t.num_rows for t in reader.read(unit))

    return read


def _datatrove(path: Path) -> int:
    from datatrove.pipeline.readers import JsonlReader

    reader = JsonlReader(str(path.parent), glob_pattern=path.name, compression="infer")
    return sum(1 for _ in reader.read_file(path.name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gz", action="store_true", help="read a gzip-compressed file")
    ap.add_argument("--also", help="another version of curate/io/jsonl.py to time beside this one")
    args = ap.parse_args()
    path = build(args.mb, args.gz)
    size_mb = path.stat().st_size / (1 << 20)
    readers: list[tuple[str, Callable[[Path], int]]] = [("curate", _curate(None))]
    if args.also:
        readers.append((f"curate ({Path(args.also).name})", _curate(args.also)))
    try:
        import datatrove  # noqa: F401

        readers.append(("datatrove", _datatrove))
    except ImportError:
        print("datatrove not installed: pip install 'curate[bench]'", file=sys.stderr)
    import logging

    logging.getLogger("curate.io").setLevel(logging.ERROR)
    # Rounds interleave the readers, so that a busy moment on a shared machine does not favour one of them.
    best = {name: float("inf") for name, _ in readers}
    docs = dict.fromkeys(best, 0)
    for _ in range(args.repeat):
        for name, fn in readers:
            t0 = time.perf_counter()
            docs[name] = fn(path)
            best[name] = min(best[name], time.perf_counter() - t0)
    results = [(name, docs[name], best[name]) for name, _ in readers]
    print(f"{path.name}: {size_mb:.1f} MB on disk, best of {args.repeat}")
    print(f"{'reader':<28}{'docs':>10}{'seconds':>10}{'docs/s':>12}{'MB/s':>8}{'vs curate':>11}")
    base = results[0][2]
    for name, docs, sec in results:
        print(f"{name:<28}{docs:>10}{sec:>10.2f}{docs / sec:>12,.0f}{size_mb / sec:>8.1f}{base / sec:>10.2f}x")


if __name__ == "__main__":
    main()
