"""A synthetic, realistic sample crawl: `curate sample-crawl OUT.warc.gz --pages N`, and `sample:crawl` input paths.

It writes a per-record-gzip WARC shaped like a Common Crawl file (warcinfo, then request / response / metadata
per capture, WARC-Identified-Payload-Type, SHA-1 digests). The responses mix what real crawls hold: news articles
in four languages (phrases from curate/samples/data/phrases.json) wrapped in site boilerplate (navigation, share
buttons, related links, cookie notice, newsletter box, footer, reader comments), syndicated near-duplicates and
exact duplicates under other URLs, keyword-stuffed spam (some on hosts that the URL filter's word lists ban),
very short pages, 404 and redirect responses, and non-HTML captures (images, PDF, CSS, JavaScript). Some pages are
in windows-1252 (declared in HTTP, only in <meta>, or not at all), some gzip content-encoded or chunked.
Deterministic per seed.

`sample:crawl` (2,000 pages) or `sample:crawl?pages=N&seed=S` as an input path generates the file once into
$CURATE_CACHE (default ~/.cache/curate/samples) and reuses it.

Modules: `generator` (the captures, from a seed), `render` (their HTML), `writer` (the WARC file), `paths` (`sample:`
input paths, registered through the entry-point group `curate.schemes`), `phrases` (the phrase lists), `cli`.
"""

from __future__ import annotations

from curate.samples.cli import cmd_sample_crawl, register_cli
from curate.samples.generator import KIND_WEIGHTS, CrawlGenerator
from curate.samples.paths import DEFAULT_PAGES, cache_dir, materialize, parse_sample
from curate.samples.writer import CRAWL_NAME, VERSION, write_sample_crawl

__all__ = [
    "CRAWL_NAME",
    "DEFAULT_PAGES",
    "KIND_WEIGHTS",
    "VERSION",
    "CrawlGenerator",
    "cache_dir",
    "cmd_sample_crawl",
    "materialize",
    "parse_sample",
    "register_cli",
    "write_sample_crawl",
]
