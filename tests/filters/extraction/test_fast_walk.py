"""fast_extract's compiled walk (filters/extraction/fast/_walk.pyx) against its Python walk (tree._walk): the same blocks,
field by field, on pages made to reach each rule of the walk, and on real pages of the corpus."""

from __future__ import annotations

import dataclasses
import os

import pytest
from lxml import etree
from pages import ARTICLE, BROKEN, big_page

from curate_filters.extraction.extractors import decode_html
from curate_filters.extraction.fast import tree
from curate_filters.extraction.fast.markup import DROP_TAGS
from curate_filters.extraction.fast.tree import parse, segment

compiled = pytest.mark.skipif(
    tree._compiled is None and not os.environ.get("CI"),
    reason="filters/extraction/fast/_walk is not built here (pip install -e . builds it)",
)

PAGES = {
    "article": ARTICLE.format(meta="utf-8"),
    "broken": BROKEN.decode(),
    "big": big_page(300).decode(),
    "hidden": "<html><body><div style='display: none'>hidden by style, a long enough sentence.</div>"
    "<div hidden>hidden by the attribute</div><p aria-hidden='true'>hidden for screen readers</p>"
    "<div class='content' id='main' role='main' itemprop='articleBody' data-x='1'><p>Shown text here.</p></div>"
    "<p style='color: red'>styled but shown</p></body></html>",
    "breaks": "<html><body><p>one<br>two<br/><br>three</p><pre>a<br>  b\n   c</pre><div>x<hr>y</div>"
    "<p>ctrl<br>\x01after a control character</p><p>  <br>  </p></body></html>",
    "links": "<html><body><p>Text <a href='/a'>a link</a> more <a href='/b'>another</a> end.</p>"
    "<amp-box>custom <a href='/c'>link in a custom element</a></amp-box><a href='/d'><div>block in a link</div></a>"
    "<ul><li><a href='/e'>Only a link</a></li><li>no link</li></ul><a href='/f'>link <a>nested</a> tail</a>"
    "</body></html>",
    "tables": "<html><body><table><tr><th>h1</th><th colspan='3'>h2</th></tr><tr><td colspan='x'>a</td>"
    "<td colspan='250'>b</td><td></td></tr><tr><td><table><tr><td>in</td></tr></table></td></tr></table>"
    "<table><caption>cap</caption><tr><td>lone</td></tr></table><tr><td>stray row</td></tr></body></html>",
    "lists": "<html><body><ul><li>one<ul><li>nested<ol><li>deeper</li></ol></li></ul></li><li><p>para</p>"
    "<p>in item</p></li></ul><dl><dt>term</dt><dd>definition</dd></dl></body></html>",
    "text_outside_blocks": "<html>before body<body>body text<div>div</div>after div</body>after body</html>",
    "no_body": "<html><frameset><frame src='a'></frameset></html>",
    "whitespace": "<html><body><p>\u00a0</p><p> \t\r\n </p><div>\u2003em space</div><p>a\u00a0b</p></body></html>",
    "attrs": "<html><body><div class='a&amp;b post' id=''><p>entity in a class</p></div><div class=''>"
    "<p>empty class</p></div><div class='x' class='y' id='z'><p>twice</p></div><section class='MAIN-content'>"
    "<p>upper case class</p></section><article><p>article tag</p></article><main><p>main tag</p></main></body></html>",
    "deep": "<html><body>" + "<div class='wrap'>" * 2000 + "<p>deep text</p>" + "</div>" * 2000 + "</body></html>",
    "non_ascii": "<html><body><h1>Überschrift – ein Titel</h1><p>Ça va? 日本語のテキスト。 Emoji 😀 here.</p>"
    "<div class='café'><p>κείμενο</p></div></body></html>",
    "empty": "<html><body></body></html>",
}


def _both(html: str, monkeypatch) -> tuple[dict, dict]:
    fast = dataclasses.asdict(segment(parse(html)))
    with monkeypatch.context() as m:
        m.setattr(tree, "_compiled", None)
        slow = dataclasses.asdict(segment(parse(html)))
    return fast, slow


@compiled
def test_the_compiled_walk_is_built_and_used():
    # in CI (CI=true) the install must have built it: without, this fails instead of skipping
    assert tree._compiled is not None
    body = parse(PAGES["article"]).find("body")
    etree.strip_elements(body, *DROP_TAGS, with_tail=False)
    assert tree._compiled.walk(body) is not None


@compiled
@pytest.mark.parametrize("name", sorted(PAGES))
def test_compiled_and_python_walks_give_the_same_blocks(name, monkeypatch):
    fast, slow = _both(PAGES[name], monkeypatch)
    assert fast == slow
    if name not in ("empty", "no_body"):
        assert fast["texts"], name  # each page has text: the comparison is not of two empty walks


@compiled
def test_a_page_with_nodes_the_c_walk_leaves_goes_to_the_python_walk(monkeypatch):
    # lxml's default HTML parser keeps comments and processing instructions (tree.parse drops them)
    html = "<html><body><p>one <a href='/x'>link</a><!-- a comment --> two</p><?pi x?><p>three</p></body></html>"
    root = etree.HTML(html)
    body = root.find("body")
    assert tree._compiled.walk(body) is None
    assert body.find(".//a") is not None  # declined before it changed the tree
    fast = dataclasses.asdict(segment(etree.HTML(html)))
    with monkeypatch.context() as m:
        m.setattr(tree, "_compiled", None)
        slow = dataclasses.asdict(segment(etree.HTML(html)))
    assert fast == slow and fast["texts"]


@compiled
@pytest.mark.corpus
def test_the_walks_agree_on_corpus_pages(corpus, monkeypatch):
    from curate_filters.extraction.fast.corpus import all_pages

    pages = all_pages(corpus)[::10]
    assert len(pages) > 100
    differ = []
    for p in pages:
        html = decode_html(p.html, None)
        if not isinstance(html, str) or parse(html) is None:
            continue
        fast, slow = _both(html, monkeypatch)
        if fast != slow:
            differ.append(p.id)
    assert differ == []


def test_without_the_compiled_walk_the_stage_says_so_and_extracts_the_same(monkeypatch, caplog):
    import curate_filters.extraction.fast as fastext
    from curate_filters.extraction.fast import FastExtract

    page = PAGES["article"]
    with_c = FastExtract(timeout=0)
    with_c.setup()
    monkeypatch.setattr(tree, "_compiled", None)
    monkeypatch.setattr(fastext, "_told", False)
    with caplog.at_level("WARNING", logger="curate.fast_extract"):
        without = FastExtract(timeout=0)
        without.setup()
    assert "compiled walk" in caplog.text and "pip install -e ." in caplog.text
    assert without.extract(page, None) == with_c.extract(page, None) and "Stadtrat" in without.extract(page, None)
