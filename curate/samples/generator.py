"""The sample crawl's captures, drawn one at a time from a seed: articles, near and exact duplicates, spam,
short pages, non-HTML files, redirects and 404s."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from curate.samples.phrases import LANGUAGE_WEIGHTS, LANGUAGES, SPAM_HOSTS, TOPICS
from curate.samples.render import Article, Site, render_article, render_short, render_spam, slug

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
                url = f"https://{site.host}/{lex_section(lang, art.topic)}/{slug(art.title)}-{self.article_no}/"
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
                url = f"https://{site.host}/{slug(title)}/"
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
