"""Real extracted documents for the benches: every HTML page of ../shared/corpus run through trafilatura once.

Pages: html-trafilatura-eval (990), html-readability-testpages (130), and the HTML responses of the corpus WARCs
(348). Extraction uses datatrove's Trafilatura options (favor_precision, no comments, deduplicate), in a fixed order,
and the result is cached as Parquet (id, url, text), so that every bench reads the same texts.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CURATE_CORPUS", REPO.parent / "shared" / "corpus"))
CACHE = Path(os.environ.get("CURATE_BENCH_CACHE", "/tmp/curate-bench"))


def _pages() -> list[tuple[str, str, bytes]]:
    """(id, url, html bytes) for every HTML page in the corpus, in a fixed order."""
    pages: list[tuple[str, str, bytes]] = []
    for p in sorted((CORPUS / "html-trafilatura-eval" / "html").glob("*.gz")):
        pages.append((str(p.relative_to(CORPUS)), "", gzip.decompress(p.read_bytes())))
    for p in sorted((CORPUS / "html-readability-testpages").glob("*/source.html.gz")):
        pages.append((str(p.relative_to(CORPUS)), "", gzip.decompress(p.read_bytes())))
    from warcio.archiveiterator import ArchiveIterator

    for warc in sorted(CORPUS.glob("*/*.warc.gz")):
        with open(warc, "rb") as fh:
            for i, rec in enumerate(ArchiveIterator(fh)):
                if rec.rec_type != "response" or not rec.http_headers:
                    continue
                if "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                    continue
                url = rec.rec_headers.get_header("WARC-Target-URI") or ""
                pages.append((f"{warc.relative_to(CORPUS)}#{i}", url, rec.content_stream().read()))
    return pages


def _decode(payload: bytes) -> str:
    for enc in ("utf-8", "cp1252"):
        try:
            return payload.decode(enc)
        except UnicodeDecodeError:
            continue
    return payload.decode("utf-8", errors="replace")


def extracted_docs(refresh: bool = False) -> pa.Table:
    """id, url, text of every corpus page with non-empty extracted text (cached in CURATE_BENCH_CACHE)."""
    path = CACHE / "corpus_docs.parquet"
    if path.is_file() and not refresh:
        return pq.read_table(path)
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS} (set CURATE_CORPUS)")
    import trafilatura

    t0 = time.perf_counter()
    rows = []
    for doc_id, url, html in _pages():
        text = trafilatura.extract(_decode(html), favor_precision=True, include_comments=False, deduplicate=True)
        if text:
            rows.append({"id": doc_id, "url": url, "text": text})
    table = pa.Table.from_pylist(
        rows, schema=pa.schema([("id", pa.string()), ("url", pa.string()), ("text", pa.string())])
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    print(f"extracted {len(rows)} documents in {time.perf_counter() - t0:.0f}s -> {path}", file=sys.stderr)
    return table
