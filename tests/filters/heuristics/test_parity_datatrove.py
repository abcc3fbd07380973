"""Parity with datatrove (the reference implementation, a test-only oracle) on a few real corpus pages:
language ID, C4 (decisions and rewritten text), FineWeb quality, C4 bad words, PII. The full measurement on every
corpus page is bench/parity_datatrove.py; Gopher's parity test is in test_gopher.py."""

from __future__ import annotations

import gzip

import pytest
from stage_util import apply

from curate_filters.annotation.langid import FastTextLangID, default_model_path
from curate_filters.annotation.pii import PII
from curate_filters.heuristics.c4 import BADWORDS_DIR, C4BadWords, C4Quality
from curate_filters.heuristics.fineweb import FineWebQuality


@pytest.fixture(scope="module")
def pages(corpus):
    trafilatura = pytest.importorskip("trafilatura")
    files = sorted((corpus / "html-trafilatura-eval" / "html").glob("*.gz"))[::20][:50]
    texts = []
    for f in files:
        html = gzip.decompress(f.read_bytes()).decode("utf-8", "replace")
        text = trafilatura.extract(html, favor_precision=True, include_comments=False)
        if text:
            texts.append(text)
    assert len(texts) >= 40
    return texts


@pytest.fixture(scope="module")
def dt():
    pytest.importorskip("datatrove")
    pytest.importorskip("spacy")
    import datatrove.pipeline.filters.c4_filters as c4_filters
    import datatrove.utils.lid as lid

    model = default_model_path()
    if model is None:
        pytest.skip("lid.176.ftz not installed")
    saved = (lid.cached_asset_path_or_download, c4_filters.cached_asset_path_or_download)
    lid.cached_asset_path_or_download = lambda *a, **k: str(model)  # no download: the same local model
    c4_filters.cached_asset_path_or_download = lambda url, **k: str(BADWORDS_DIR / f"{url.rsplit('/', 1)[1]}.txt")
    yield
    lid.cached_asset_path_or_download, c4_filters.cached_asset_path_or_download = saved


def _theirs(block, texts):
    from datatrove.data import Document

    out = []
    for t in texts:
        doc = Document(text=t, id="x", metadata={})
        res = block.filter(doc) if hasattr(block, "filter") else (doc.__setattr__("text", block.format(t)) or True)
        kept = res if isinstance(res, bool) else res[0]
        out.append((kept, doc.text, doc.metadata.get("language")))
    return out


def test_language_id_and_fineweb_quality_agree(pages, dt):
    from datatrove.pipeline.filters import FineWebQualityFilter, LanguageFilter

    reasons, _, table = apply(FastTextLangID(languages=["en"]), pages)
    theirs = _theirs(LanguageFilter(languages=["en"]), pages)
    assert [r is None for r in reasons] == [k for k, _, _ in theirs]
    assert table.column("language").to_pylist() == [lang for _, _, lang in theirs]
    reasons, _, _ = apply(FineWebQuality(), pages)
    assert [r is None for r in reasons] == [k for k, _, _ in _theirs(FineWebQualityFilter(), pages)]


@pytest.mark.parametrize("terminal_punct", [True, False])
def test_c4_decisions_and_rewritten_text_agree(pages, dt, terminal_punct):
    from datatrove.pipeline.filters import C4QualityFilter

    reasons, texts, _ = apply(C4Quality(filter_no_terminal_punct=terminal_punct), pages)
    theirs = _theirs(C4QualityFilter(filter_no_terminal_punct=terminal_punct), pages)
    assert [r is None for r in reasons] == [k for k, _, _ in theirs]
    assert [t for t, r in zip(texts, reasons) if r is None] == [t for k, t, _ in theirs if k]


def test_badwords_and_pii_agree(pages, dt):
    from datatrove.pipeline.filters import C4BadWordsFilter
    from datatrove.pipeline.formatters import PIIFormatter

    reasons, _, _ = apply(C4BadWords(), pages)
    assert [r is None for r in reasons] == [k for k, _, _ in _theirs(C4BadWordsFilter(), pages)]
    with_pii = [p + " Contact: someone@example.net, host 8.8.4.4." for p in pages[:10]]
    _, texts, _ = apply(PII(), with_pii)
    assert texts == [t for _, t, _ in _theirs(PIIFormatter(), with_pii)]
