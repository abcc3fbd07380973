"""The Korean sample crawl (`sample:crawl-ko`): real Korean sentences rendered into news pages with Korean site
boilerplate, plus syndicated near duplicates, exact duplicates, gambling/loan spam, link-list and repeated-text
pages, very short pages, English and German pages, and non-HTML captures, so that every stage of
pipelines/fineweb2-ko.yaml has something to do.

The sentences are real text, not generated: the 300 Korean sentences of langid-lingua-testdata (Leipzig news
sentences; ../shared/corpus, or $CURATE_CORPUS) when that folder is there, else the Constitution of the Republic of
Korea (public domain, curate/samples/data/ko_constitution.txt). Only their order and grouping into articles is ours;
the boilerplate strings and spam keywords were written for curate.
"""

from __future__ import annotations

import html
import os
import random
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.samples.generator import CrawlGenerator
from curate.samples.render import render_article

HERE = Path(__file__).resolve().parent
CONSTITUTION = HERE / "data" / "ko_constitution.txt"
LINGUA_KO = Path("langid-lingua-testdata") / "language-testdata" / "sentences" / "ko.txt"

# Bump when this module's output changes, so cached Korean crawls are regenerated.
VERSION = 2
KIND_WEIGHTS = {
    "article": 0.60,
    "near_duplicate": 0.08,
    "exact_duplicate": 0.04,
    "spam": 0.06,
    "link_list": 0.04,
    "repeated": 0.03,
    "short": 0.05,
    "foreign": 0.07,
    "non_html": 0.03,
}

SECTIONS = {"정치": "politics", "경제": "economy", "사회": "society", "국제": "world", "문화": "culture"}
NAV = ["홈", *SECTIONS, "스포츠", "오피니언", "포토", "전체기사"]
FOOTER = ["회사소개", "개인정보처리방침", "이용약관", "청소년보호정책", "고객센터", "광고문의"]
RIGHTS = "무단 전재 및 재배포 금지."
COOKIE = (
    "이 웹사이트는 더 나은 서비스를 위해 쿠키를 사용합니다. 계속 이용하시면 쿠키 사용에 동의하는 것으로 간주합니다."
)
NEWSLETTER = "매일 아침 주요 뉴스를 이메일로 받아보세요. 뉴스레터 구독하기"
SHARE = ["공유하기", "페이스북", "트위터", "카카오톡", "링크 복사"]
SITE_NAMES = ["한빛일보", "새날신문", "누리뉴스", "바른경제", "오늘의시사", "푸른소식", "다온타임즈", "한결저널"]
HOSTS = ["hanbit-ilbo.co.kr", "saenal.kr", "nuri-news.com", "bareun-econ.co.kr", "oneul-sisa.kr", "pureun.kr",
         "daon-times.com", "hangyeol.kr"]  # fmt: skip
SURNAMES = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임"]
GIVEN = ["민준", "서연", "지훈", "하은", "도윤", "수빈", "현우", "지민", "예준", "유진"]
# What Korean web spam repeats: online gambling, loans, adult sites (keyword stuffing, written for curate).
SPAM_WORDS = ["바카라", "카지노", "토토사이트", "먹튀검증", "슬롯", "무료충전", "당일대출", "무직자대출", "최저금리",
              "성인용품", "출장마사지", "가입머니", "첫충", "보너스", "안전놀이터", "실시간"]  # fmt: skip
SPAM_HOSTS = ["best-casino-kr.top", "toto-safe.xyz", "loan-today.info", "slot777.bet"]
SHORT_PAGES = [("페이지를 찾을 수 없습니다", "요청하신 페이지가 삭제되었거나 주소가 변경되었습니다."),
               ("로그인", "아이디와 비밀번호를 입력해 주세요."),
               ("구독 안내", "지금 구독하고 모든 기사를 무제한으로 읽어보세요.")]  # fmt: skip


def corpus_dir() -> Path | None:
    """$CURATE_CORPUS, else ../shared/corpus beside the repository, when it holds the lingua Korean sentences."""
    env = os.environ.get("CURATE_CORPUS")
    candidates = [Path(env)] if env else []
    candidates.append(HERE.parent.parent.parent / "shared" / "corpus")
    for c in candidates:
        if (c / LINGUA_KO).is_file():
            return c
    return None


def korean_sentences() -> tuple[str, list[str]]:
    """(source name, real Korean sentences): lingua's Leipzig sentences when the corpus is there, else the
    Constitution shipped as package data."""
    root = corpus_dir()
    if root is not None:
        lines = (root / LINGUA_KO).read_text(encoding="utf-8").splitlines()
        return "lingua", [s.strip() for s in lines if s.strip()]
    lines = CONSTITUTION.read_text(encoding="utf-8").splitlines()
    return "constitution", [s.strip() for s in lines if s.strip() and not s.startswith("#")]


def _e(s: str) -> str:
    return html.escape(s, quote=True)


class KoreanCrawlGenerator:
    """Captures of the Korean sample crawl, one at a time, deterministically from a seed and the sentence list."""

    def __init__(self, sentences: list[str], seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.sentences = sentences
        self.recent: deque[tuple[str, list[list[str]]]] = deque(maxlen=100)
        self.last_page: tuple[str, bytes] | None = None
        self.foreign = CrawlGenerator(seed + 7)  # English and German pages come from the phrase-based crawl
        self.n = 0

    def _paragraphs(self) -> list[list[str]]:
        k = min(len(self.sentences), self.rng.randint(7, 14))
        picked = self.rng.sample(self.sentences, k)  # without replacement: no sentence repeats within a page
        paras, i = [], 0
        while i < len(picked):
            step = self.rng.randint(1, 3)
            paras.append(picked[i : i + step])
            i += step
        return paras

    def _page(self, host: str, name: str, title: str, paras: list[list[str]]) -> str:
        rng = self.rng
        nav = "".join(f'<li><a href="/{i}/">{_e(x)}</a></li>' for i, x in enumerate(NAV))
        body = "\n".join(f"<p>{_e(' '.join(p))}</p>" for p in paras)
        related = "".join(f'<li><a href="/r/{i}">{_e(t)}</a></li>' for i, (t, _) in enumerate(list(self.recent)[-4:]))
        reporter = f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)} 기자"
        date = f"2024-{rng.randint(1, 5):02d}-{rng.randint(1, 28):02d}"
        share = " ".join(f'<a class="share" href="#">{_e(s)}</a>' for s in SHARE)
        footer = " | ".join(f'<a href="/f/{i}">{_e(x)}</a>' for i, x in enumerate(FOOTER))
        main = (
            f'<h1>{_e(title)}</h1>\n<p class="byline">{_e(reporter)} &middot; <time>{date}</time></p>\n{body}\n'
            f'<div class="share-bar">{share}</div>'
        )
        if rng.random() < 0.5:
            layout = f"<header><nav><ul>{nav}</ul></nav></header>\n<main><article>{main}</article>\n"
            layout += f"<aside><h3>관련 기사</h3><ul>{related}</ul><p>{_e(NEWSLETTER)}</p></aside></main>\n"
        else:
            layout = f'<div id="header"><ul class="menu">{nav}</ul></div>\n<div id="content"><div class="post">'
            layout += f'{main}</div></div>\n<div id="sidebar"><h3>많이 본 뉴스</h3><ul>{related}</ul></div>\n'
        return (
            f'<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)} - {_e(name)}'
            f"</title>\n<script>var _ga=[];</script>\n</head>\n<body>\n{layout}<footer><p>&copy; 2024 {_e(name)}. "
            f'{_e(RIGHTS)}</p><p>{footer}</p></footer>\n<div class="cookie"><p>{_e(COOKIE)}</p><button>확인</button>'
            "</div>\n</body>\n</html>\n"
        )

    def _site(self) -> tuple[str, str]:
        i = self.rng.randrange(len(HOSTS))
        return "www." + HOSTS[i], SITE_NAMES[i]

    def _url(self, host: str) -> str:
        self.n += 1
        section = self.rng.choice(list(SECTIONS.values()))
        return f"https://{host}/{section}/article/{20240000 + self.n}"

    def _title(self, paras: list[list[str]]) -> str:
        # a headline from the first sentence's first eojeol: never a line of the body (FineWeb's duplicate-line rule)
        words = paras[0][0].rstrip(".").split()
        return " ".join(words[: min(len(words) - 1, 5)]) or words[0]

    def captures(self, pages: int) -> Iterator[tuple[str, str, int, list[tuple[str, str]], bytes, str]]:
        """Yield (kind, url, status, headers, body, identified_type) for `pages` captures."""
        rng = self.rng
        kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
        html_type = [("Content-Type", "text/html; charset=utf-8")]
        for i in range(pages):
            kind = "article" if i < 3 else rng.choices(kinds, weights)[0]
            host, name = self._site()
            if kind == "exact_duplicate" and self.last_page is not None:
                url, body = self.last_page
                yield kind, url + "?utm_source=naver&utm_medium=news", 200, html_type, body, "text/html"
                continue
            if kind == "near_duplicate" and self.recent:
                title, src = rng.choice(list(self.recent))
                paras = [list(p) for p in src]
                fresh = self._paragraphs()
                for _ in range(rng.randint(1, 2)):  # a syndicated copy with a sentence or two changed
                    p = rng.randrange(len(paras))
                    paras[p][rng.randrange(len(paras[p]))] = rng.choice(fresh)[0]
                page = self._page(host, name, title, paras)
                yield kind, self._url(host), 200, html_type, page.encode(), "text/html"
                continue
            if kind in ("article", "near_duplicate", "exact_duplicate"):
                kind = "article"
                paras = self._paragraphs()
                title = self._title(paras)
                self.recent.append((title, paras))
                url = self._url(host)
                body = self._page(host, name, title, paras).encode()
                self.last_page = (url, body)
                yield kind, url, 200, html_type, body, "text/html"
            elif kind == "spam":
                yield (
                    kind,
                    f"http://{rng.choice(SPAM_HOSTS)}/{rng.randrange(10**6)}",
                    200,
                    html_type,
                    self._spam(),
                    "text/html",
                )
            elif kind == "link_list":
                items = [self._title([[s]]) for s in rng.sample(self.sentences, 25)]
                paras = [[f"{j + 1}. {t}"] for j, t in enumerate(items)]
                page = self._page(host, name, "전체기사 목록", paras).replace("</p>\n<p>", "<br>\n")
                yield kind, f"https://{host}/list?page={rng.randint(2, 99)}", 200, html_type, page.encode(), "text/html"
            elif kind == "repeated":
                line = rng.choice(self.sentences)
                paras = [[line]] * rng.randint(6, 12) + self._paragraphs()[:1]
                page = self._page(host, name, self._title(paras), paras)
                yield kind, f"https://{host}/board/{rng.randrange(10**5)}", 200, html_type, page.encode(), "text/html"
            elif kind == "short":
                title, text = rng.choice(SHORT_PAGES)
                page = self._page(host, name, title, [[text]])
                yield kind, f"https://{host}/member/{rng.randrange(10**4)}", 200, html_type, page.encode(), "text/html"
            elif kind == "foreign":
                yield self._foreign()
            else:
                body = b"function init(){document.querySelectorAll('.share').forEach(function(b){b.hidden=0;});}\n"
                url = f"https://{host}/static/app.js?v={rng.randrange(10**6)}"
                yield kind, url, 200, [("Content-Type", "application/javascript")], body * 20, "application/javascript"

    def _spam(self) -> bytes:
        rng = self.rng
        lines = "".join(f"<p>{_e(' '.join(rng.choices(SPAM_WORDS, k=rng.randint(8, 20))))}</p>" for _ in range(8))
        title = " ".join(rng.sample(SPAM_WORDS, 4))
        return (
            f'<!DOCTYPE html><html lang="ko"><head><meta charset="utf-8"><title>{_e(title)}</title></head><body>'
            f"<h1>{_e(title)}</h1>{lines}<p>지금 가입하면 {_e(rng.choice(SPAM_WORDS))} 100% 지급!!!</p></body></html>"
        ).encode()

    def _foreign(self) -> tuple[str, str, int, list[tuple[str, str]], bytes, str]:
        gen = self.foreign
        lang = self.rng.choice(["en", "en", "de"])
        art = gen.article(lang)
        gen.recent[lang].append(art)
        site = self.rng.choice(gen.sites[lang])
        page = render_article(site, art, gen._related(lang), gen.rng)
        url = f"https://{site.host}/{lang}/story-{self.rng.randrange(10**6)}/"
        return "foreign", url, 200, [("Content-Type", "text/html; charset=utf-8")], page.encode(), "text/html"


def captures(pages: int, seed: int) -> tuple[str, Any]:
    """(source of the sentences, the capture iterator) for a Korean crawl of `pages` captures."""
    source, sentences = korean_sentences()
    return source, KoreanCrawlGenerator(sentences, seed).captures(pages)
