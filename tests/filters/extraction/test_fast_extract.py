"""The fast_extract stage (filters/extraction/fast): the robustness cases the trafilatura stage is tested on, its output
layout, its model file, the corpus split it was tuned on, and a quality floor on held-out benchmark pages."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pytest
from pages import ARTICLE, BROKEN, batch, big_page, extract_article

from curate.errors import ConfigError
from curate_filters.extraction.fast import FastExtract
from curate_filters.extraction.fast.corpus import HELD_OUT, TUNE, site_of_url, split_of
from curate_filters.extraction.fast.featurize import feature_names
from curate_filters.extraction.fast.layout import render
from curate_filters.extraction.fast.model import FORMAT, Trees, load_model
from curate_filters.extraction.fast.tree import parse, segment


@pytest.fixture(scope="module")
def fast() -> FastExtract:
    stage = FastExtract()
    stage.setup()
    return stage


def _texts(stage, pages, **kw):
    out, reasons = stage.map_batch(batch(pages, **kw))
    return out.column("text").to_pylist(), reasons


def test_extracts_main_text_and_drops_boilerplate_and_html(fast):
    text = extract_article(fast)
    # one paragraph per line, as trafilatura lays it out
    assert any(line.startswith("Der Stadtrat beschloss am Dienstagabend") for line in text.split("\n"))


def test_non_utf8_page_declared_only_in_meta(fast):
    page = ARTICLE.format(meta="windows-1252").encode("cp1252")
    texts, reasons = _texts(fast, [page])
    assert reasons == [None]
    assert "Bürgermeisterin" in texts[0] and "Ã" not in texts[0]
    assert fast.__dict__.get("_counters", {}).get("charset_meta", 0) >= 1


def test_undeclared_legacy_charset_is_detected(fast):
    page = ARTICLE.replace('<meta charset="{meta}">', "").encode("cp1252")
    texts, reasons = _texts(fast, [page])
    assert reasons == [None]
    assert "Straßen" in texts[0]


def test_broken_markup(fast):
    texts, reasons = _texts(fast, [BROKEN])
    assert reasons == [None]
    assert "never closed" in texts[0] and "stray closing tag" in texts[0]


def test_huge_page(fast):
    page = big_page(12_000)  # about 2 MB of HTML
    assert len(page) > 1_500_000
    stage = FastExtract(timeout=0)
    stage.setup()
    texts, reasons = _texts(stage, [page])
    assert reasons == [None]
    lines = texts[0].split("\n")
    assert lines[-1].startswith("Paragraph 11999 ") and any(line.startswith("Paragraph 0 ") for line in lines)
    assert "Section 7" not in texts[0]


def test_a_page_past_the_time_limit_is_rejected_and_the_next_one_extracts():
    stage = FastExtract(timeout=0.001)
    stage.setup()
    small = ARTICLE.format(meta="utf-8").encode()
    stage.timeout = 30.0
    texts, reasons = _texts(stage, [small])
    assert reasons == [None]
    stage.timeout = 0.001  # a 2 MB page cannot be cut into blocks and scored in a millisecond
    texts, reasons = _texts(stage, [big_page(12_000), small])
    assert reasons[0] == "extraction_timeout" and texts[0] is None
    assert stage._deadline.mode == "signal"


def test_empty_body_and_pages_without_text(fast):
    empty = b"<html><head><title>x</title></head><body></body></html>"
    script_only = (
        b"<html><head><title>x</title></head><body><script>var a = 1;</script><style>p{}</style></body></html>"
    )
    nav_only = b"<html><body><nav><a href='/'>Home</a><a href='/a'>About</a></nav></body></html>"
    garbage = b"\x00\x01\x02 binary junk \xff\xfe"
    texts, reasons = _texts(fast, [empty, script_only, nav_only, garbage, b"   ", b""])
    assert reasons[:3] == ["empty_text", "empty_text", "empty_text"]
    assert reasons[3] in ("extraction_failed", "empty_text")
    assert reasons[4] == reasons[5] == "extraction_failed"
    assert texts == [None] * 6


def test_text_records_pass_through(fast):
    out, reasons = fast.map_batch(batch([None, None], texts=["Already text from a WET file.", None]))
    assert out.column("text").to_pylist()[0] == "Already text from a WET file."
    assert reasons == [None, "no_html"]


def test_pathological_nesting_is_a_named_rejection_or_text_never_a_crash(fast):
    text = "<p>" + "Deep text of the page, a sentence that goes on for a while. " * 5 + "</p>"
    deep = f"<html><body>{'<div>' * 100_000}{text}{'</div>' * 100_000}</body></html>".encode()
    inline = f"<html><body><p>{'<b>' * 50_000}bold{'</b>' * 50_000} tail.</p></body></html>".encode()
    moderate = f"<html><body>{'<div>' * 250}{text}{'</div>' * 250}</body></html>".encode()
    t0 = time.monotonic()
    texts, reasons = _texts(fast, [deep, inline, moderate])
    assert time.monotonic() - t0 < 20  # libxml2 gives up on the depth at once; nothing recurses in Python
    # libxml2 stops building the tree past its depth limit: what it kept is extracted, or the page is empty_text
    assert reasons[0] in (None, "empty_text", "extraction_failed")
    assert reasons[1] in (None, "empty_text", "extraction_failed")
    assert reasons[2] is None and "Deep text of the page" in texts[2]


def test_layout_matches_trafilatura_txt_output():
    html = """<html><body><article><h1>Big title here</h1>
    <p>First paragraph with <a href="#">a link</a> and <b>bold</b> words.</p>
    <p>Second paragraph<br>after a line break.</p>
    <ul><li>item one</li><li>item <i>two</i></li></ul>
    <table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>1</td></tr></table>
    <pre>code line 1
  code line 2</pre>
    <p>Last paragraph with &amp; entity and   lots   of    spaces in it.</p><p>Last paragraph with &amp; entity and lots of spaces in it.</p>
    <p>Big title here</p><p>First paragraph with a link and bold words.</p>
    </article></body></html>"""
    b = segment(parse(html))
    assert render(b, [True] * len(b)) == (
        "Big title here\nFirst paragraph with a link and bold words.\nSecond paragraph\nafter a line break.\n"
        "- item one\n- item two\n| Name | Value | \n|---|---|\n| alpha | 1 | \ncode line 1\n  code line 2\n"
        # a run of one paragraph stays; a repeat of 20+ characters with text between is dropped, a shorter one not
        "Last paragraph with & entity and lots of spaces in it.\nLast paragraph with & entity and lots of spaces in it."
        "\nBig title here"
    )


def test_tables_and_list_items_are_laid_out_as_trafilatura_lays_them_out():
    # trafilatura (handle_table, xmltotxt): a row is one line, everything inside a cell joined into it, empty cells
    # kept and the row padded to the table's widest, '|' in a cell escaped, a nested table's rows lines of their
    # own; a list item is one line with its blocks joined, a <br> inside it a line break, a nested item indented
    html = """<html><body><article>
    <table><tr><td colspan="2"><p>Wide cell</p><p>second paragraph | with a bar</p></td></tr>
    <tr><td>left</td><td><img src="x.png"></td><td>right</td></tr>
    <tr><td><table><tr><td>inner one</td><td>inner two</td></tr></table></td><td></td></tr></table>
    <ul><li><h3>Heading in item</h3><p>and its text</p></li><li>first line<br>second line</li>
    <li>outer<ul><li>nested item</li></ul></li></ul>
    </article></body></html>"""
    b = segment(parse(html))
    assert render(b, [True] * len(b)) == (
        "| Wide cell second paragraph \\| with a bar |  |  | \n"
        "| left |  | right | \n"
        "|  |  |  | \n"
        "| inner one | inner two | \n"
        "- Heading in item and its text\n"
        "- first line\nsecond line\n"
        "- outer\n"
        "  - nested item"
    )


def test_link_density_and_ancestor_bits_are_recorded():
    html = (
        "<html><body><div class='sidebar'><p><a href='/a'>All the links</a> <a href='/b'>in here</a></p></div>"
        "<div class='entry-content'><p>Plain text with no link at all, long enough to matter.</p></div></body></html>"
    )
    b = segment(parse(html))
    from curate_filters.extraction.fast.markup import BITS

    side, main = 0, 1
    assert b.link_chars[side] >= 0.9 * len(b.texts[side]) and b.link_chars[main] == 0
    assert b.masks[side] >> BITS.index("sidebar") & 1 and not b.masks[main] >> BITS.index("sidebar") & 1
    assert b.masks[main] >> BITS.index("cand0") & 1  # trafilatura's first BODY_XPATH step matches entry-content


def test_vocabulary_scan_gives_the_combined_patterns_bits():
    # the fast matcher must give the bits the model was trained on: those of one finditer over all the patterns
    # (leftmost match, first group in VOCAB order, on from its end), including names where groups overlap
    import random

    from curate_filters.extraction.fast import markup

    def combined(name: str) -> int:
        bits = 0
        for m in markup._VOCAB_RE.finditer(name):
            bits |= markup._VOCAB_BIT[m.lastgroup]
        return bits

    literals = [lit for group in markup._GROUP_LITERALS for lit in group]
    rnd = random.Random(7)
    names = ["newsletter", "main-content", "post-header", "h2", "h7", "ad", "ads-top", "x-ad-y", "bad", "navbar",
             "top-stories", "topstories", "col-md-6", "sidebar-widget-list", "", "-", "entry-content-wrap"]  # fmt: skip
    for _ in range(20_000):
        names.append("".join(rnd.choice(literals + ["-", "_", "1", "x", "s", "a", "h", "b"]) for _ in range(4)))
    assert [markup._scan_mask(n) for n in names] == [combined(n) for n in names]


def test_threshold_is_validated_and_moves_the_cut(fast):
    with pytest.raises(ConfigError):
        FastExtract(threshold=1.5)
    related = "<div class='related-articles'><ul><li><a href='/1'>Mehr aus der Stadt</a></li></ul></div></body>"
    page = ARTICLE.format(meta="utf-8").replace("</body>", related).encode()
    keep_all = FastExtract(threshold=0.0)
    keep_all.setup()
    everything = _texts(keep_all, [page])[0][0]
    assert "Mehr aus der Stadt" in everything and "Mehr aus der Stadt" not in _texts(fast, [page])[0][0]


def test_model_file_is_checked(tmp_path):
    model = load_model()
    assert 0.0 < model.threshold < 1.0 and model.meta["trained_on"].startswith("sites in the tuning split")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ConfigError, match="not a"):
        load_model(bad)
    other = json.loads((load_model.__globals__["MODEL_PATH"]).read_text())
    other["feature_names"] = other["feature_names"][:-1]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(other))
    with pytest.raises(ConfigError, match="other features"):
        load_model(stale)
    with pytest.raises(ConfigError, match="not found"):
        load_model(tmp_path / "missing.json")
    assert other["format"] == FORMAT


def test_oblivious_trees_match_catboost():
    catboost = pytest.importorskip("catboost")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 3] * X[:, 5] > 0.3).astype(int)
    m = catboost.CatBoostClassifier(iterations=30, depth=4, verbose=0, thread_count=1, random_seed=0).fit(X, y)
    trees = Trees.from_json(Trees.from_catboost(m).to_json())
    assert np.abs(trees.proba(X) - m.predict_proba(X)[:, 1]).max() < 1e-5


def test_split_is_by_site_and_fixed():
    assert split_of("example.com") == split_of("example.com")
    assert {split_of(f"site{i}.org") for i in range(20)} == {TUNE, HELD_OUT}
    assert site_of_url("https://www.zeit.de/x") == "zeit.de"
    assert site_of_url("https://web.archive.org/web/2019/https://www.example.org/a") == "example.org"


def test_registered_as_a_stage():
    from curate.config import registry

    assert registry.load("fast_extract") is FastExtract


@pytest.mark.corpus
def test_quality_floor_on_held_out_benchmark_pages(corpus, fast):
    """On 100 benchmark pages of sites it was not tuned on, the shipped model keeps the benchmark's F1 high."""
    from curate_filters.extraction.fast.corpus import prf, snippet_counts, trafilatura_eval

    pages = [p for p in trafilatura_eval(corpus) if p.split == HELD_OUT][:100]
    table = pa.table({"id": [p.id for p in pages], "html": pa.array([p.html for p in pages], pa.binary())})
    out, _ = fast.map_batch(table)
    counts = sum(snippet_counts(t, p) for t, p in zip(out.column("text").to_pylist(), pages))
    assert prf(counts)["f1"] > 0.85


def test_scoring_in_chunks_gives_the_scores_of_one_pass(monkeypatch):
    from curate_filters.extraction.fast import model as fmodel

    trees = load_model().first
    X = np.random.default_rng(1).normal(size=(1300, len(feature_names()))).astype(np.float32)
    chunked = trees.raw(X)  # 1,300 blocks: three chunks of at most CHUNK
    monkeypatch.setattr(fmodel, "CHUNK", 10**9)
    assert np.array_equal(chunked, trees.raw(X))
