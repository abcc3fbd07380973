"""The sample crawl's pages as HTML: news articles in four site layouts, keyword spam, short pages."""

from __future__ import annotations

import html
import random
from dataclasses import dataclass, field

from curate.samples.phrases import LANGUAGES, SPAM_KEYWORDS


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


def slug(title: str) -> str:
    out = []
    for ch in title.lower():
        if ch.isalnum() and ch.isascii():
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")[:60] or "page"


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
    items = "".join(f'<li><a href="/{slug(x)}/">{_e(x)}</a></li>' for x in lex["nav"])
    return items


def _footer(site: Site, year: int) -> str:
    lex = LANGUAGES[site.lang]
    links = " | ".join(f'<a href="/{slug(x)}/">{_e(x)}</a>' for x in lex["footer"])
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
    rel = "".join(f'<li><a href="/{slug(t)}/">{_e(t)}</a></li>' for t in related)
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
    links = "".join(f'<li><a href="/{slug(w)}/">{_e(w)} {_e(w)}</a></li>' for w in rng.sample(words, 10))
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
