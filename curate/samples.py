"""A synthetic, realistic sample crawl: `curate sample-crawl OUT.warc.gz --pages N`, and `sample:crawl` input paths.

It writes a per-record-gzip WARC shaped like a Common Crawl file (warcinfo, then request / response / metadata
per capture, WARC-Identified-Payload-Type, SHA-1 digests). The responses mix what real crawls hold: news articles
in four languages (text from curate.sample_text) wrapped in site boilerplate (navigation, share buttons, related
links, cookie notice, newsletter box, footer, reader comments), syndicated near-duplicates and exact duplicates
under other URLs, keyword-stuffed spam (some on hosts that the URL filter's word lists ban), very short pages,
404 and redirect responses, and non-HTML captures (images, PDF, CSS, JavaScript). Some pages are in windows-1252
(declared in HTTP, only in <meta>, or not at all), some gzip content-encoded or chunked. Deterministic per seed.

`sample:crawl` (2,000 pages) or `sample:crawl?pages=N&seed=S` as an input path generates the file once into
$CURATE_CACHE (default ~/.cache/curate/samples) and reuses it.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import os
import random
import time
import uuid
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl

from curate.errors import InputError
from curate.sample_text import LANGUAGE_WEIGHTS, LANGUAGES, SPAM_HOSTS, SPAM_KEYWORDS, TOPICS

# Bump when the generator's output changes, so cached crawls are regenerated.
VERSION = 3
DEFAULT_PAGES = 2000
CRAWL_NAME = "CURATE-SAMPLE-2024-22"

# Share of captures (response records) by kind; articles are the rest.
KIND_WEIGHTS = {
    "article": 0.70,
    "near_duplicate": 0.07,
    "exact_duplicate": 0.03,
    "spam": 0.06,
    "short": 0.05,
    "non_html": 0.05,
    "redirect": 0.02,
    "not_found": 0.02,
}


# -- sample: paths --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("CURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "curate")
    return Path(base) / "samples"


def parse_sample(path: str) -> tuple[str, dict[str, int]]:
    """("crawl", {"pages": 2000, "seed": 0}) from "sample:crawl?pages=2000&seed=0"."""
    body = path.removeprefix("sample:")
    name, _, query = body.partition("?")
    if name != "crawl":
        raise InputError(f"unknown sample '{path}'", hint="the sample inputs are: sample:crawl[?pages=N&seed=S]")
    params = {"pages": DEFAULT_PAGES, "seed": 0}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in params:
            raise InputError(f"{path}: unknown parameter '{key}'", hint="sample:crawl takes pages and seed")
        try:
            params[key] = int(value)
        except ValueError:
            raise InputError(f"{path}: {key} must be an integer, not '{value}'") from None
    if params["pages"] < 1:
        raise InputError(f"{path}: pages must be at least 1")
    return name, params


def materialize(path: str) -> str:
    """The local file behind a `sample:` input path, generated on first use (atomically) and reused after."""
    _, params = parse_sample(path)
    out = cache_dir() / f"sample-crawl-{params['pages']}p-seed{params['seed']}-v{VERSION}.warc.gz"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            write_sample_crawl(tmp, params["pages"], params["seed"])
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
    return str(out)


# -- the generator ----------------------------------------------------------------------------------------------


@dataclass
class Site:
    host: str
    lang: str
    name: str
    layout: int  # 0 semantic HTML5, 1 div soup, 2 table layout, 3 blog with comments


@dataclass
class Article:
    lang: str
    topic: str
    title: str
    author: str
    paragraphs: list[list[str]]
    subheads: dict[int, str] = field(default_factory=dict)


class _Deck:
    """Draws items without replacement, reshuffling when empty, so an article rarely repeats a phrase."""

    def __init__(self, items: list[str], rng: random.Random) -> None:
        self.items = list(items)
        self.rng = rng
        self.left: list[str] = []

    def draw(self) -> str:
        if not self.left:
            self.left = self.items[:]
            self.rng.shuffle(self.left)
        return self.left.pop()


class CrawlGenerator:
    """Produces the captures of the sample crawl, one at a time, deterministically from a seed."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.sites: dict[str, list[Site]] = {lang: self._make_sites(lang, 40) for lang in LANGUAGES}
        self.recent: dict[str, deque[Article]] = {lang: deque(maxlen=300) for lang in LANGUAGES}
        self.last_page: tuple[str, bytes, str] | None = None  # url, html, charset of the last article page
        self.article_no = 0

    def _make_sites(self, lang: str, n: int) -> list[Site]:
        lex = LANGUAGES[lang]
        seen: set[str] = set()
        sites = []
        for a in lex["site_a"]:
            for b in lex["site_b"]:
                seen.add(f"{a}{'-' if lang != 'en' else ''}{b}")
        names = sorted(seen)
        self.rng.shuffle(names)
        for name in names[:n]:
            host = "www." + name + self.rng.choice(lex["tlds"])
            pretty = " ".join(w.capitalize() for w in name.replace("-", " ").split())
            # old table layouts are rarer, and trafilatura keeps their footer row: a realistic failure
            layout = self.rng.choices(range(4), [0.35, 0.3, 0.1, 0.25])[0]
            sites.append(Site(host, lang, pretty, layout))
        return sites

    # -- text -------------------------------------------------------------------------------------------------

    def article(self, lang: str) -> Article:
        rng = self.rng
        lex = LANGUAGES[lang]
        topic = rng.choice(TOPICS)
        decks = {
            "s": _Deck(lex["subjects"][topic], rng),
            "o": _Deck(lex["objects"][topic], rng),
            "v": _Deck(lex["verbs"], rng),
            "t": _Deck(lex["tails"], rng),
            "op": _Deck(lex["openers"], rng),
            "f": _Deck(lex["facts"], rng),
        }
        paragraphs = []
        first_object = ""
        # about ten sentences: the phrase decks (ten objects a topic) then rarely repeat within an article, which
        # Gopher's duplicated n-gram rules would (rightly) punish
        for _ in range(rng.randint(2, 5)):
            para = []
            for _ in range(rng.randint(2, 4)):
                sentence, obj = self._sentence(lang, lex, decks)
                first_object = first_object or obj
                para.append(sentence)
            paragraphs.append(para)
        title = _cap(first_object or decks["o"].draw())
        subheads = {}
        if len(paragraphs) > 3 and rng.random() < 0.5:
            subheads[rng.randrange(2, len(paragraphs))] = _cap(decks["o"].draw())
        author = f"{rng.choice(lex['first'])} {rng.choice(lex['last'])}"
        return Article(lang, topic, title, author, paragraphs, subheads)

    def _sentence(self, lang: str, lex: dict[str, Any], decks: dict[str, _Deck]) -> tuple[str, str]:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return self._fact(lex, decks["f"].draw()), ""
        subj, verb, obj = decks["s"].draw(), decks["v"].draw(), decks["o"].draw()
        tail = decks["t"].draw() if rng.random() < 0.7 else ""
        if r < 0.55:  # compound: two clauses
            subj2, verb2, obj2 = decks["s"].draw(), decks["v"].draw(), decks["o"].draw()
            conj = rng.choice(lex["conj"])
            first = _clause(lang, "", subj, verb, obj, tail)
            second = _clause(lang, "", subj2, verb2, obj2, "")
            return _cap(f"{first}, {conj} {second}") + ".", obj
        opener = decks["op"].draw() if rng.random() < 0.45 else ""
        return _cap(_clause(lang, opener, subj, verb, obj, tail)) + ".", obj

    def _fact(self, lex: dict[str, Any], template: str) -> str:
        rng = self.rng
        return template.format(
            n=rng.choice([rng.randint(20, 950), rng.randint(1000, 9000)]),
            small=rng.randint(2, 40),
            pct=rng.randint(51, 89),
            place=rng.choice(lex["places"]),
            month=rng.choice(lex["months"]),
            name=f"{rng.choice(lex['first'])} {rng.choice(lex['last'])}",
            adj=rng.choice(lex["adj"]),
            adj2=rng.choice(lex["adj2"]),
            currency=lex["currency"],
        )

    def near_duplicate(self, lang: str) -> Article | None:
        """A syndicated copy of a recent article: a sentence or two changed, maybe one added or the title edited."""
        if not self.recent[lang]:
            return None
        rng = self.rng
        src = rng.choice(list(self.recent[lang]))
        lex = LANGUAGES[lang]
        fresh = self.article(lang)
        paragraphs = [list(p) for p in src.paragraphs]
        for _ in range(rng.randint(1, 2)):
            p = rng.randrange(len(paragraphs))
            s = rng.randrange(len(paragraphs[p]))
            paragraphs[p][s] = rng.choice(rng.choice(fresh.paragraphs))
        if rng.random() < 0.3:
            paragraphs.append([self._fact(lex, rng.choice(lex["facts"]))])
        title = src.title if rng.random() < 0.7 else f"{src.title}: {fresh.title.lower()}"
        return Article(lang, src.topic, title, src.author, paragraphs, dict(src.subheads))

    # -- pages -------------------------------------------------------------------------------------------------

    def captures(self, pages: int) -> Any:
        """Yield (kind, url, status, headers, body, identified_type) for `pages` captures."""
        rng = self.rng
        kinds = list(KIND_WEIGHTS)
        weights = list(KIND_WEIGHTS.values())
        langs = list(LANGUAGE_WEIGHTS)
        lang_w = list(LANGUAGE_WEIGHTS.values())
        for i in range(pages):
            kind = "article" if i < 3 else rng.choices(kinds, weights)[0]
            lang = rng.choices(langs, lang_w)[0]
            site = rng.choice(self.sites[lang])
            if kind == "exact_duplicate" and self.last_page is not None:
                url, body, ctype = self.last_page
                # the same page reached through a tracking link or an AMP mirror
                url = url + ("?utm_source=rss&utm_medium=feed" if rng.random() < 0.5 else "amp/")
                yield kind, url, 200, [("Content-Type", ctype)], body, "text/html"
                continue
            if kind in ("article", "near_duplicate", "exact_duplicate"):
                art = self.near_duplicate(lang) if kind == "near_duplicate" else None
                if art is None:
                    kind = "article"
                    art = self.article(lang)
                    self.recent[lang].append(art)
                if kind == "near_duplicate":
                    site = rng.choice(self.sites[lang])
                self.article_no += 1
                url = f"https://{site.host}/{lex_section(lang, art.topic)}/{_slug(art.title)}-{self.article_no}/"
                page = render_article(site, art, self._related(lang), rng)
                body, ctype = self._encode(page, lang)
                self.last_page = (url, body, ctype)
                yield kind, url, 200, [("Content-Type", ctype)], body, "text/html"
            elif kind == "spam":
                host = rng.choice(SPAM_HOSTS) if rng.random() < 0.6 else f"www.{rng.randrange(10**6)}-deals.info"
                url = f"http://{host}/{'-'.join(rng.sample(['best', 'cheap', 'online', 'buy', 'top', 'sale'], 3))}"
                page = render_spam(rng)
                yield kind, url, 200, [("Content-Type", "text/html; charset=utf-8")], page.encode(), "text/html"
            elif kind == "short":
                title, text = rng.choice(LANGUAGES[lang]["short"])
                url = f"https://{site.host}/{_slug(title)}/"
                page = render_short(site, title, text)
                yield kind, url, 200, [("Content-Type", "text/html; charset=utf-8")], page.encode(), "text/html"
            elif kind == "non_html":
                yield self._non_html(site)
            elif kind == "redirect":
                url = f"http://{site.host}/"
                headers = [("Location", f"https://{site.host}/"), ("Content-Type", "text/html")]
                yield kind, url, 301, headers, b"", "text/html"
            else:  # not_found
                url = f"https://{site.host}/{rng.randrange(10**6)}.html"
                page = render_short(site, *LANGUAGES[lang]["short"][0])
                yield kind, url, 404, [("Content-Type", "text/html; charset=utf-8")], page.encode(), "text/html"

    def _related(self, lang: str) -> list[str]:
        recent = list(self.recent[lang])[-12:]
        return [a.title for a in self.rng.sample(recent, min(4, len(recent)))]

    def _encode(self, page: str, lang: str) -> tuple[bytes, str]:
        """UTF-8 mostly; some non-English pages in windows-1252, declared in HTTP, only in <meta>, or nowhere."""
        rng = self.rng
        if lang != "en" and rng.random() < 0.08:
            how = rng.randrange(3)
            if how == 1:
                page = page.replace('<meta charset="utf-8">', '<meta charset="windows-1252">')
            elif how == 2:
                page = page.replace('<meta charset="utf-8">', "")
            body = page.encode("cp1252", errors="xmlcharrefreplace")
            return body, "text/html; charset=windows-1252" if how == 0 else "text/html"
        return page.encode("utf-8"), "text/html; charset=utf-8"

    def _non_html(self, site: Site) -> tuple[str, str, int, list[tuple[str, str]], bytes, str]:
        rng = self.rng
        choice = rng.randrange(4)
        name = f"{rng.randrange(10**6):06d}"
        if choice == 0:
            body = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(rng.randint(2000, 20000)) + b"\xff\xd9"
            return (
                "non_html",
                f"https://{site.host}/media/{name}.jpg",
                200,
                [("Content-Type", "image/jpeg")],
                body,
                ("image/jpeg"),
            )
        if choice == 1:
            body = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + rng.randbytes(3000) + b"\n%%EOF\n"
            return (
                "non_html",
                f"https://{site.host}/files/{name}.pdf",
                200,
                [("Content-Type", "application/pdf")],
                body,
                "application/pdf",
            )
        if choice == 2:
            body = b"body{margin:0;font-family:sans-serif}\n.nav a{color:#333}\n" * rng.randint(5, 50)
            return (
                "non_html",
                f"https://{site.host}/static/site.css?v={name}",
                200,
                [("Content-Type", "text/css")],
                body,
                "text/css",
            )
        body = b"function init(){document.querySelectorAll('.share').forEach(function(b){b.hidden=false;});}\n"
        return (
            "non_html",
            f"https://{site.host}/static/app.js?v={name}",
            200,
            [("Content-Type", "application/javascript")],
            body * rng.randint(3, 30),
            "application/javascript",
        )


def lex_section(lang: str, topic: str) -> str:
    return LANGUAGES[lang]["sections"][topic]


def _clause(lang: str, opener: str, subj: str, verb: str, obj: str, tail: str) -> str:
    if lang == "de" and opener:
        # verb-second: the opener takes the first position, the subject follows the verb
        words = [opener, verb, subj, obj, tail]
    else:
        words = [opener, subj, verb, obj, tail]
    return " ".join(w for w in words if w)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _slug(title: str) -> str:
    out = []
    for ch in title.lower():
        if ch.isalnum() and ch.isascii():
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")[:60] or "page"


# -- HTML -----------------------------------------------------------------------------------------------------


def _e(s: str) -> str:
    return html.escape(s, quote=True)


def _head(title: str, lang: str, site: Site) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)} | {_e(site.name)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<link rel="stylesheet" href="https://{site.host}/static/site.css">\n'
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
        "gtag('js',new Date());</script>\n"
        "<style>.cookie{position:fixed;bottom:0}.nav li{display:inline}</style>\n</head>\n"
    )


def _nav(site: Site) -> str:
    lex = LANGUAGES[site.lang]
    items = "".join(f'<li><a href="/{_slug(x)}/">{_e(x)}</a></li>' for x in lex["nav"])
    return items


def _footer(site: Site, year: int) -> str:
    lex = LANGUAGES[site.lang]
    links = " | ".join(f'<a href="/{_slug(x)}/">{_e(x)}</a>' for x in lex["footer"])
    return f"<p>&copy; {year} {_e(site.name)}. {_e(lex['rights'])}</p><p>{links}</p>"


def render_article(site: Site, art: Article, related: list[str], rng: random.Random) -> str:
    lex = LANGUAGES[site.lang]
    date = f"2024-{rng.randint(1, 5):02d}-{rng.randint(1, 28):02d}"
    body_parts = []
    for i, para in enumerate(art.paragraphs):
        if i in art.subheads:
            body_parts.append(f"<h2>{_e(art.subheads[i])}</h2>")
        body_parts.append(f"<p>{_e(' '.join(para))}</p>")
    body = "\n".join(body_parts)
    share = "".join(f'<a class="share" href="#">{_e(s)}</a> ' for s in lex["share"])
    rel = "".join(f'<li><a href="/{_slug(t)}/">{_e(t)}</a></li>' for t in related)
    cookie = f'<div class="cookie" id="cookie-banner"><p>{_e(lex["cookie"])}</p><button>OK</button></div>'
    news = f'<div class="newsletter"><p>{_e(lex["newsletter"])}</p><input type="email"><button>OK</button></div>'
    byline = f'{_e(lex["by"])} {_e(art.author)} &middot; <time datetime="{date}">{date}</time>'
    head = _head(art.title, site.lang, site)
    footer = _footer(site, 2024)
    if site.layout == 0:
        return (
            f'{head}<body>\n<header><a class="logo" href="/">{_e(site.name)}</a>\n<nav><ul class="nav">{_nav(site)}'
            f'</ul></nav></header>\n<main>\n<article>\n<h1>{_e(art.title)}</h1>\n<p class="byline">{byline}</p>\n'
            f'{body}\n<div class="share-bar">{share}</div>\n</article>\n<aside><h3>{_e(lex["related"])}</h3>'
            f"<ul>{rel}</ul>\n{news}</aside>\n</main>\n<footer>{footer}</footer>\n{cookie}\n</body>\n</html>\n"
        )
    if site.layout == 1:
        return (
            f'{head}<body>\n<div id="wrapper"><div id="header"><div class="logo"><a href="/">{_e(site.name)}</a>'
            f'</div><div class="menu"><ul class="nav">{_nav(site)}</ul></div></div>\n<div id="content">'
            f'<div class="breadcrumb"><a href="/">{_e(lex["nav"][0])}</a> &raquo; '
            f'{_e(lex["nav"][1])}</div>\n<div class="post"><h1 class="title">{_e(art.title)}</h1>'
            f'<div class="meta">{byline}</div>\n<div class="entry">{body}</div>\n'
            f'<div class="share-bar">{share}</div></div>\n</div>\n<div id="sidebar"><h3>{_e(lex["related"])}</h3>'
            f'<ul>{rel}</ul>{news}</div>\n<div id="footer">{footer}</div></div>\n{cookie}\n</body>\n</html>\n'
        )
    if site.layout == 2:
        return (
            f'{head}<body>\n<table width="100%"><tr><td colspan="2" class="top"><b>{_e(site.name)}</b><br>'
            f'<ul class="nav">{_nav(site)}</ul></td></tr>\n<tr><td class="left" width="20%"><ul>{rel}</ul></td>\n'
            f'<td class="main"><h1>{_e(art.title)}</h1><p><i>{byline}</i></p>\n{body}\n</td></tr>\n'
            f'<tr><td colspan="2" class="bottom">{footer}</td></tr></table>\n{cookie}\n</body>\n</html>\n'
        )
    comments = "".join(
        f'<li class="comment"><span class="comment-author">{_e(rng.choice(lex["first"]))}</span>'
        f"<p>{_e(rng.choice(lex['comment_lines']))}</p></li>"
        for _ in range(rng.randint(0, 4))
    )
    return (
        f'{head}<body class="single-post">\n<div class="site-header"><h2 class="site-title"><a href="/">'
        f'{_e(site.name)}</a></h2><nav class="main-navigation"><ul>{_nav(site)}</ul></nav></div>\n'
        f'<div class="site-content"><article class="post hentry"><header class="entry-header">'
        f'<h1 class="entry-title">{_e(art.title)}</h1><div class="entry-meta">{byline}</div></header>\n'
        f'<div class="entry-content">{body}</div>\n<footer class="entry-footer">{share}</footer></article>\n'
        f'<div id="comments" class="comments-area"><h3>{_e(lex["comments"])}</h3><ol class="comment-list">'
        f'{comments}</ol></div>\n<div class="widget-area"><h3>{_e(lex["related"])}</h3><ul>{rel}</ul>{news}'
        f'</div></div>\n<footer class="site-footer">{footer}</footer>\n{cookie}\n</body>\n</html>\n'
    )


def render_spam(rng: random.Random) -> str:
    words = SPAM_KEYWORDS
    title = " ".join(w.title() for w in rng.sample(words, 4))
    lines = []
    for _ in range(rng.randint(4, 12)):
        lines.append(f"<p>{_e(' '.join(rng.choices(words, k=rng.randint(8, 25))))}</p>")
    links = "".join(f'<li><a href="/{_slug(w)}/">{_e(w)} {_e(w)}</a></li>' for w in rng.sample(words, 10))
    hidden = f'<div style="display:none">{_e(" ".join(rng.choices(words, k=60)))}</div>'
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="keywords" content="{_e(", ".join(words))}"></head><body><h1>{_e(title)}</h1>'
        f"{''.join(lines)}<ul>{links}</ul>{hidden}<p>{_e(rng.choice(words).upper())}!!!</p></body></html>"
    )


def render_short(site: Site, title: str, text: str) -> str:
    return (
        f'{_head(title, site.lang, site)}<body><header><a href="/">{_e(site.name)}</a><nav><ul class="nav">'
        f"{_nav(site)}</ul></nav></header><main><h1>{_e(title)}</h1><p>{_e(text)}</p></main>"
        f"<footer>{_footer(site, 2024)}</footer></body></html>"
    )


# -- WARC writing ---------------------------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _record(
    rec_type: str,
    headers: list[tuple[str, str]],
    block: bytes,
    level: int,
    payload: bytes | None = None,
) -> bytes:
    """One WARC/1.0 record as its own gzip member (what Common Crawl writes, and what lets readers split files)."""
    head = [("WARC-Type", rec_type), *headers, ("Content-Length", str(len(block)))]
    if payload is not None:
        head.append(("WARC-Payload-Digest", _digest(payload)))
    head.append(("WARC-Block-Digest", _digest(block)))
    raw = ("WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n").encode("utf-8") + block + b"\r\n\r\n"
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(raw) + c.flush()


def _chunked(body: bytes, rng: random.Random) -> bytes:
    out = []
    i = 0
    while i < len(body):
        n = rng.randint(500, 4000)
        piece = body[i : i + n]
        out.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        i += n
    return b"".join(out) + b"0\r\n\r\n"


def write_sample_crawl(out: str | Path, pages: int, seed: int = 0, level: int = 6) -> Counter[str]:
    """Write the sample crawl to `out` (a .warc.gz); returns the number of captures of each kind."""
    gen = CrawlGenerator(seed)
    rng = random.Random(seed + 1)  # record metadata: does not disturb the text stream
    counts: Counter[str] = Counter()
    start = 1716000000  # 2024-05-18
    info_id = f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"
    with open(out, "wb") as fh:
        _write_warcinfo(fh, Path(out).name, info_id, start, pages, seed, level)
        for i, (kind, url, status, http_headers, body, identified) in enumerate(gen.captures(pages)):
            counts[kind] += 1
            date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i * 2 + rng.randint(0, 1)))
            ids = [f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>" for _ in range(3)]
            ip = f"{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            extra: list[tuple[str, str]] = []
            if body and kind != "non_html" and rng.random() < 0.05:
                body = gzip.compress(body, mtime=0)
                extra.append(("Content-Encoding", "gzip"))
            if body and rng.random() < 0.03:
                body = _chunked(body, rng)
                extra.append(("Transfer-Encoding", "chunked"))
            else:
                extra.append(("Content-Length", str(len(body))))
            reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}[status]
            http = (
                f"HTTP/1.1 {status} {reason}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in [("Date", date), ("Server", "nginx"), *http_headers, *extra])
                + "\r\n"
            ).encode("latin-1", errors="replace")
            host = url.split("/")[2]
            request = (
                f"GET /{url.split('/', 3)[3] if url.count('/') >= 3 else ''} HTTP/1.1\r\nHost: {host}\r\n"
                "User-Agent: CCBot/2.0 (https://commoncrawl.org/faq/)\r\nAccept: text/html,*/*;q=0.8\r\n"
                "Accept-Encoding: gzip\r\nConnection: Keep-Alive\r\n\r\n"
            ).encode()
            common = [("WARC-Date", date), ("WARC-Warcinfo-ID", info_id), ("WARC-IP-Address", ip)]
            fh.write(
                _record(
                    "request",
                    [
                        ("WARC-Record-ID", ids[0]),
                        ("Content-Type", "application/http; msgtype=request"),
                        *common,
                        ("WARC-Target-URI", url),
                    ],
                    request,
                    level,
                )
            )
            resp_headers = [
                ("WARC-Record-ID", ids[1]),
                ("Content-Type", "application/http; msgtype=response"),
                *common,
                ("WARC-Concurrent-To", ids[0]),
                ("WARC-Target-URI", url),
            ]
            if rng.random() < 0.8:  # newer crawls set it; older ones leave the type to the HTTP header
                resp_headers.append(("WARC-Identified-Payload-Type", identified))
            fh.write(_record("response", resp_headers, http + body, level, payload=body))
            meta = f"fetchTimeMs: {rng.randint(40, 900)}\r\ncharset-detected: UTF-8\r\n".encode()
            fh.write(
                _record(
                    "metadata",
                    [
                        ("WARC-Record-ID", ids[2]),
                        ("Content-Type", "application/warc-fields"),
                        ("WARC-Date", date),
                        ("WARC-Warcinfo-ID", info_id),
                        ("WARC-Concurrent-To", ids[1]),
                        ("WARC-Target-URI", url),
                    ],
                    meta,
                    level,
                )
            )
    return counts


def _write_warcinfo(fh: BinaryIO, name: str, info_id: str, start: int, pages: int, seed: int, level: int) -> None:
    fields = (
        f"software: curate sample-crawl v{VERSION}\r\nisPartOf: {CRAWL_NAME}\r\n"
        f"description: synthetic sample crawl, {pages} captures, seed {seed}\r\n"
        "format: WARC File Format 1.0\r\nconformsTo: https://iipc.github.io/warc-specifications/\r\n"
    ).encode()
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    headers = [
        ("WARC-Date", date),
        ("WARC-Filename", name),
        ("WARC-Record-ID", info_id),
        ("Content-Type", "application/warc-fields"),
    ]
    fh.write(_record("warcinfo", headers, fields, level))


# -- CLI ------------------------------------------------------------------------------------------------------


def cmd_sample_crawl(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    counts = write_sample_crawl(out, args.pages, args.seed)
    seconds = time.perf_counter() - t0
    size = out.stat().st_size
    kinds = ", ".join(f"{k} {v:,}" for k, v in counts.most_common())
    print(f"wrote {out}: {args.pages:,} captures ({kinds}), {size / 1e6:.1f} MB in {seconds:.1f}s")
    return 0


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample-crawl",
        help="write a synthetic Common-Crawl-like WARC (articles, boilerplate, duplicates, spam, non-HTML)",
    )
    p.add_argument("out", help="the .warc.gz file to write")
    p.add_argument("--pages", type=int, default=DEFAULT_PAGES, help=f"captures to write (default {DEFAULT_PAGES})")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same file)")
    p.set_defaults(fn=cmd_sample_crawl)
