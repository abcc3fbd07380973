"""The extraction stages: charset decoding, boilerplate removal, reasons, the per-document time limit."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from pages import ARTICLE, BROKEN, batch, big_page, extract_article

from curate_filters.extraction.extractors import Deadline, ExtractionTimeout, Resiliparse, Trafilatura, decode_html


@pytest.fixture(scope="module")
def traf() -> Trafilatura:
    stage = Trafilatura(deduplicate=False)
    stage.setup()
    return stage


def test_decode_declared_meta_undeclared_and_lying_charsets():
    page = "<html><head>{}</head><body><p>Grüße aus Köln, Straße, Maß und Öl: ärgerlich schön.</p></body></html>"
    cp = page.format("").encode("cp1252")
    assert decode_html(cp, "windows-1252") == (page.format(""), "declared")
    meta = page.format('<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">').encode("cp1252")
    assert decode_html(meta, None)[1] == "meta" and "Grüße" in decode_html(meta, None)[0]
    text, how = decode_html(cp, None)  # nothing declared: not UTF-8, so detection
    assert how == "detected" and "Straße" in text
    utf8 = page.format("").encode()
    assert decode_html(utf8, "iso-8859-1") == (page.format(""), "utf8")  # the header lies: UTF-8 wins
    assert decode_html(b"\xef\xbb\xbf<p>x</p>", None)[1] == "bom"
    sjis = "<html><body><p>日本語のページです。東京の天気は晴れ。</p></body></html>".encode("shift_jis")
    assert "東京" in decode_html(sjis, "shift_jis")[0]


def test_extracts_main_text_and_drops_boilerplate_and_html(traf):
    extract_article(traf)


def test_non_utf8_page_declared_only_in_meta(traf):
    page = ARTICLE.format(meta="windows-1252").encode("cp1252")
    out, reasons = traf.map_batch(batch([page]))
    assert reasons == [None]
    assert "Bürgermeisterin" in out.column("text")[0].as_py()
    assert traf.__dict__.get("_counters", {}).get("charset_meta", 0) >= 1


def test_reasons_for_pages_without_text(traf):
    nav_only = b"<html><head><title>x</title></head><body><script>var a = 1;</script></body></html>"
    garbage = b"\x00\x01\x02 binary junk \xff\xfe"
    out, reasons = traf.map_batch(batch([nav_only, garbage, b"   "]))
    assert reasons[0] == "empty_text"
    assert reasons[1] in ("extraction_failed", "empty_text")
    assert reasons[2] in ("extraction_failed", "empty_text")
    assert out.column("text").null_count == 3


def test_text_records_pass_through(traf):
    out, reasons = traf.map_batch(batch([None, None], texts=["Already text from a WET file.", None]))
    assert out.column("text").to_pylist()[0] == "Already text from a WET file."
    assert reasons == [None, "no_html"]


def test_favour_precision_is_fineweb_default():
    assert Trafilatura().favour_precision is True
    assert Trafilatura().include_comments is False
    from curate.errors import ConfigError

    with pytest.raises(ConfigError):
        Trafilatura(favour_precision=True, favour_recall=True)


PAGE = b"<html><body><p>x</p></body></html>"
STUCK = b"<html><body><p>stuck</p></body></html>"


class Slow(Trafilatura):
    """An extractor stuck in a pure-Python loop on pages that say 'stuck'; other pages extract at once.

    The loop gives up after a minute (so that a broken time limit fails the test instead of hanging it) and then
    returns text that no assertion accepts."""

    def extract(self, html, url):
        if "stuck" not in html:
            return "the next page"
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            sum(range(1000))
        return "never interrupted"


def _extract(stage, pages):
    out, reasons = stage.map_batch(batch(pages))
    return out.column("text").to_pylist(), reasons


def test_a_stuck_page_is_rejected_by_the_time_limit_in_the_main_thread():
    stage = Slow(timeout=0.2)
    _base_setup(stage)
    texts, reasons = _extract(stage, [STUCK, PAGE, STUCK, PAGE])
    # each stuck page is cut off and rejected; the worker goes on with the next page in the same batch
    assert reasons == ["extraction_timeout", None, "extraction_timeout", None]
    assert texts == [None, "the next page", None, "the next page"]
    assert stage._deadline.mode == "signal"


def test_the_time_limit_works_outside_the_main_thread_too():
    stage = Slow(timeout=0.2)
    _base_setup(stage)
    result = {}

    def run():
        result["texts"], result["reasons"] = _extract(stage, [STUCK, PAGE])

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert result["reasons"] == ["extraction_timeout", None]
    assert result["texts"] == [None, "the next page"]
    assert stage._deadline.mode == "thread"


def _base_setup(stage):
    from curate_filters.extraction.extractors import HtmlExtractor

    HtmlExtractor.setup(stage)


def test_deadline_does_not_fire_after_disarm():
    d = Deadline()
    d.arm(0.05)
    d.disarm()
    time.sleep(0.1)  # an alarm left armed would raise here
    d.arm(0.05)
    with pytest.raises(ExtractionTimeout):
        while True:
            sum(range(100))
    d.disarm()


def test_resiliparse_stage():
    pytest.importorskip("resiliparse")
    stage = Resiliparse()
    stage.setup()
    out, reasons = stage.map_batch(batch([ARTICLE.format(meta="utf-8").encode()]))
    assert reasons == [None]
    assert "neuen Haushalt" in out.column("text")[0].as_py()


def test_whirlwind_page_close_to_common_crawls_own_wet_text(corpus, traf):
    """Same page, our extraction vs Common Crawl's WET text: most of our words appear in the WET."""
    from curate.io.warc import WarcReader

    def rows(path):
        r = WarcReader(path=str(path))
        return [row for u in r.units() for t in r.read(u) for row in t.to_pylist()]

    warc = rows(corpus / "warc-cc2024-whirlwind" / "whirlwind.warc.gz")
    wet = rows(corpus / "warc-cc2024-whirlwind" / "whirlwind.warc.wet.gz")
    out, reasons = traf.map_batch(pa.Table.from_pylist(warc))
    assert reasons == [None]
    ours = set(out.column("text")[0].as_py().split())
    theirs = set(wet[0]["text"].split())
    assert len(ours & theirs) / len(ours) > 0.8


def test_one_deadline_serves_main_and_other_threads_in_turn():
    d = Deadline()
    seen = []

    def stuck():
        d.arm(0.05)
        try:
            while True:
                sum(range(100))
        except ExtractionTimeout:
            seen.append(d.mode)
        finally:
            d.disarm()

    stuck()
    t = threading.Thread(target=stuck)
    t.start()
    t.join(5)
    stuck()
    assert seen == ["signal", "thread", "signal"]


# -- robustness cases (the fast_extract stage has the same in tests/filters/extraction/test_fast_extract.py) -------------------------


def test_broken_markup(traf):
    out, reasons = traf.map_batch(batch([BROKEN]))
    assert reasons == [None]
    text = out.column("text")[0].as_py()
    assert "never closed" in text and "stray closing tag" in text


def test_huge_page():
    stage = Trafilatura(deduplicate=False, timeout=0)
    stage.setup()
    out, reasons = stage.map_batch(batch([big_page(12_000)]))  # about 2 MB of HTML
    assert reasons == [None]
    text = out.column("text")[0].as_py()
    assert "Paragraph 11999 " in text and "Paragraph 0 " in text and "Section 7" not in text


def test_empty_body(traf):
    empty = b"<html><head><title>x</title></head><body></body></html>"
    out, reasons = traf.map_batch(batch([empty, b"<html><body>   </body></html>"]))
    assert reasons[0] in ("empty_text", "extraction_failed") and reasons[1] in ("empty_text", "extraction_failed")
    assert out.column("text").null_count == 2


def test_pathological_nesting_is_a_named_rejection_never_a_crash():
    stage = Trafilatura(deduplicate=False, timeout=5.0)
    stage.setup()
    text = "<p>" + "Deep text of the page, a sentence that goes on for a while. " * 5 + "</p>"
    deep = f"<html><body>{'<div>' * 5_000}{text}{'</div>' * 5_000}</body></html>".encode()
    inline = f"<html><body><p>{'<b>' * 50_000}bold{'</b>' * 50_000} tail.</p></body></html>".encode()
    out, reasons = stage.map_batch(batch([deep, inline]))
    # libxml2 stops past its depth limit; trafilatura then finds nothing (or runs out of time): a reason, no error
    assert set(reasons) <= {None, "empty_text", "extraction_failed", "extraction_timeout"}


def test_deduplicate_counts_repeats_within_a_page_so_output_does_not_depend_on_what_ran_before():
    para = "<p>Paragraph number {} of a long article about the sea, its coasts and boats, written plainly.</p>"
    promo = (
        "<p>Subscribe to our newsletter to receive the best stories of the week in your inbox every Sunday morning.</p>"
    )
    page = "<html><body><article>" + "".join(para.format(i) + promo for i in range(5)) + "</article></body></html>"
    per_page = Trafilatura(deduplicate=True, timeout=0)
    per_page.setup()
    texts = [per_page.extract(page, None) for _ in range(4)]
    assert len(set(texts)) == 1  # the fourth copy of the page extracts as the first did
    assert texts[0].count("Subscribe") == 3  # trafilatura's rule: a segment seen more than twice is dropped
    off = Trafilatura(deduplicate=False, timeout=0)
    off.setup()
    assert off.extract(page, None).count("Subscribe") == 5
    worker = Trafilatura(deduplicate="worker", timeout=0)  # datatrove's behaviour: one cache for the process
    worker.setup()
    assert len({worker.extract(page, None) for _ in range(4)}) > 1  # later copies lose what earlier ones had
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="deduplicate"):
        Trafilatura(deduplicate="yes")
