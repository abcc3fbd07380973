"""The pages the fast_extract model is tuned and scored on: every HTML page of ../shared/corpus, each with its site
and its split (tune or held out), so that training, the benchmarks and the tests agree on which pages are unseen.

Split (issue 14, part 4): by site, never by page, so that no site's template is both learned and scored. A page's
site is its URL host without `www.` (the benchmark's `hard::name` keys: the host part of the file name; Readability
test pages: the folder name without a trailing `-N`). The site is tuned on when the first byte of SHA-1(site) is even.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

CORPUS = Path(os.environ.get("CURATE_CORPUS", Path(__file__).resolve().parents[4] / "shared" / "corpus"))

TUNE = "tune"
HELD_OUT = "held_out"


@dataclass
class Page:
    """One corpus page: raw bytes and what it is scored against."""

    id: str
    group: str  # trafilatura_eval, readability, warc
    site: str
    url: str
    html: bytes
    with_snippets: list[str] = field(default_factory=list)
    without_snippets: list[str] = field(default_factory=list)
    expected_text: str | None = None  # Readability's expected article, tags stripped

    @property
    def split(self) -> str:
        return split_of(self.site)


def split_of(site: str) -> str:
    """TUNE or HELD_OUT for a site (a fixed hash: the same on every machine and run)."""
    return TUNE if hashlib.sha1(site.encode()).digest()[0] % 2 == 0 else HELD_OUT


def site_of_url(url: str) -> str:
    """The host of a URL without `www.`; for a Wayback Machine capture, the host of the captured URL."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "web.archive.org":
        m = re.match(r"/web/[^/]+/(.+)", urlsplit(url).path)
        if m and "://" in m.group(1):
            return site_of_url(m.group(1))
    return host[4:] if host.startswith("www.") else host


def _site_of_eval(key: str, file: str) -> str:
    if "://" in key:
        return site_of_url(key)
    # "hard::haitiantimes.com-family.html": the host is the file name up to its first '-' after a dot
    m = re.match(r"(?:www\.)?([a-z0-9.-]+?\.[a-z]{2,})(?:[-_.]|$)", file.lower())
    return m.group(1) if m else file


def trafilatura_eval(corpus: Path = CORPUS) -> list[Page]:
    """The 990 pages of trafilatura's benchmark with their must-include / must-exclude snippets."""
    folder = corpus / "html-trafilatura-eval"
    evaldata = json.loads((folder / "evaldata.json").read_text())
    pages = []
    for key, entry in evaldata.items():
        html = gzip.decompress((folder / "html" / f"{entry['file']}.gz").read_bytes())
        pages.append(
            Page(
                id=key,
                group="trafilatura_eval",
                site=_site_of_eval(key, entry["file"]),
                url=key if "://" in key else "",
                html=html,
                with_snippets=list(entry.get("with", [])),
                without_snippets=list(entry.get("without", [])),
            )
        )
    return pages


def readability_pages(corpus: Path = CORPUS) -> list[Page]:
    """Mozilla Readability's test pages with the text of their expected article."""
    from lxml import html as lxml_html

    pages = []
    for src in sorted((corpus / "html-readability-testpages").glob("*/source.html.gz")):
        name = src.parent.name
        expected = gzip.decompress((src.parent / "expected.html.gz").read_bytes())
        text = lxml_html.fromstring(expected).text_content() if expected.strip() else ""
        pages.append(
            Page(
                id=f"readability/{name}",
                group="readability",
                site=re.sub(r"-\d+$", "", name),
                url="",
                html=gzip.decompress(src.read_bytes()),
                expected_text=text,
            )
        )
    return pages


def warc_pages(corpus: Path = CORPUS) -> list[Page]:
    """The HTML responses of the corpus WARCs (no gold text: used for agreement with trafilatura only)."""
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for warc in sorted(corpus.glob("*/*.warc.gz")):
        with open(warc, "rb") as fh:
            for i, rec in enumerate(ArchiveIterator(fh)):
                if rec.rec_type != "response" or not rec.http_headers:
                    continue
                if "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                    continue
                url = rec.rec_headers.get_header("WARC-Target-URI") or ""
                pages.append(
                    Page(
                        id=f"{warc.relative_to(corpus)}#{i}",
                        group="warc",
                        site=site_of_url(url),
                        url=url,
                        html=rec.content_stream().read(),
                    )
                )
    return pages


def all_pages(corpus: Path = CORPUS) -> list[Page]:
    return trafilatura_eval(corpus) + readability_pages(corpus) + warc_pages(corpus)


# -- the metrics --------------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def snippet_counts(text: str | None, page: Page) -> np.ndarray:
    """(tp, fn, fp, tn) of the benchmark's metric on one page."""
    text = text or ""
    tp = sum(s in text for s in page.with_snippets)
    fp = sum(s in text for s in page.without_snippets)
    return np.array([tp, len(page.with_snippets) - tp, fp, len(page.without_snippets) - fp])


def prf(counts: np.ndarray) -> dict[str, float]:
    """Precision, recall, accuracy and F1 from summed (tp, fn, fp, tn)."""
    tp, fn, fp, tn = (float(x) for x in counts)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    total = tp + fn + fp + tn
    return {"precision": p, "recall": r, "accuracy": (tp + tn) / total if total else 0.0,
            "f1": 2 * p * r / (p + r) if p + r else 0.0}  # fmt: skip


def token_prf(text: str | None, expected: str | None) -> tuple[float, float, float]:
    """Bag-of-words precision, recall and F1 of an extraction against an expected text (lower-cased \\w+ tokens);
    both empty counts as a perfect match."""
    from collections import Counter

    a = Counter(_WORD.findall((text or "").lower()))
    b = Counter(_WORD.findall((expected or "").lower()))
    if not a or not b:
        return (1.0, 1.0, 1.0) if not a and not b else (0.0, 0.0, 0.0)
    overlap = sum((a & b).values())
    p, r = overlap / sum(a.values()), overlap / sum(b.values())
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# -- packing pages into WARCs (for the benches that read WARCs) ---------------------------------------------------


def page_url(page: Page) -> str:
    """The page's URL, or a made-up one under its site for pages that have none (Readability's, `hard::` keys)."""
    if page.url:
        return page.url
    from urllib.parse import quote

    return f"https://{page.site or 'corpus.invalid'}/_corpus/{quote(page.id, safe='')}"


def write_warcs(pages: list[Page], folder: Path, files: int = 2) -> tuple[list[Path], dict[str, Page]]:
    """Pack the pages into `files` gzipped WARCs (round robin, 200 responses, text/html with no charset: the
    extractor decodes) and return their paths and the page behind each record URL (made unique with #N)."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"corpus-pages-{k}.warc.gz" for k in range(files)]
    handles = [open(p, "wb") for p in paths]
    by_url: dict[str, Page] = {}
    try:
        writers = [WARCWriter(h, gzip=True) for h in handles]
        for i, page in enumerate(pages):
            url = page_url(page).replace(" ", "%20")  # warcio would rewrite it, and the URL names the page
            if url in by_url:
                url = f"{url}#{i}"
            by_url[url] = page
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            # the payload type as Common Crawl records it: without it datatrove's reader sniffs the bytes and skips
            # pages it does not take for HTML
            rec = writers[i % files].create_warc_record(
                url,
                "response",
                payload=io.BytesIO(page.html),
                http_headers=headers,
                warc_headers_dict={"WARC-Identified-Payload-Type": "text/html"},
            )
            writers[i % files].write_record(rec)
    finally:
        for h in handles:
            h.close()
    return paths, by_url
