"""`curate report`: OUT/report.html on a real run over the sample crawl — self-contained, every image embedded,
decodable and linked from the contents, the funnel equal to stats.json — and rendered by a real headless browser
(Debian's chromium) without console errors. The runs are shared with tests/report/test_inspect.py
(conftest.py's sample_runs)."""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import chromium, chromium_command

from curate.report import plots

pytestmark = pytest.mark.e2e


class _Page(HTMLParser):
    """The parts of the report a test checks: images, links, ids, the funnel table's rows, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.rows: list[dict[str, str]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "figure":
            self._figure = a.get("id")
        if tag == "img":
            self.images.append({**a, "figure": self._figure or ""})
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "tr" and "data-stage" in a:
            self.rows.append(a)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_run_with_report_says_where_the_output_and_the_report_are(sample_runs):
    lines = sample_runs["A_lines"]
    assert lines[-2].startswith(f"output: {sample_runs['A']}/data")
    assert lines[-1] == f"report: {sample_runs['A']}/report.html"
    assert (sample_runs["A"] / "report.html").is_file()


@pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed")
def test_every_image_is_embedded_decodes_and_is_linked_from_the_contents(sample_runs):
    page = _parse(sample_runs["A"] / "report.html")
    assert len(page.images) >= 6  # funnel, rejections, time, languages, length, language_score (+ clusters)
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,"), img["src"][:40]
        width, height = _png_size(base64.b64decode(img["src"].split(",", 1)[1], validate=True))
        assert width > 100 and height > 50
        assert img["alt"] and img["figure"], img.get("id")
        assert f"#{img['figure']}" in page.links, f"figure {img['figure']} is not in the contents"
    for href in page.links:
        assert href.startswith("#") and href[1:] in page.ids, f"link to nothing: {href}"
    # self-contained: nothing to fetch
    for tag, attrs in page.tags:
        assert tag != "link", attrs
        assert not (tag == "script" and attrs.get("src")), attrs
        assert attrs.get("src", "data:").split(":")[0] not in ("http", "https", "file"), attrs


def test_the_funnel_and_the_rejections_equal_stats_json(sample_runs):
    stats = json.loads((sample_runs["A"] / "stats.json").read_text())
    page = _parse(sample_runs["A"] / "report.html")
    funnel = [r for r in page.rows if "data-docs-in" in r]
    assert [r["data-stage"] for r in funnel] == [s["id"] for s in stats["stages"]]
    for row, s in zip(funnel, stats["stages"]):
        for key in ("docs_in", "kept", "rejected", "words_in", "words_out", "bytes_in", "bytes_out"):
            assert int(row[f"data-{key.replace('_', '-')}"]) == s[key], (s["id"], key)
    reasons = {(r["data-stage"], r["data-reason"]): int(r["data-docs"]) for r in page.rows if "data-reason" in r}
    assert reasons == {(s["id"], k): v for s in stats["stages"] for k, v in s["reasons"].items()}
    assert sum(reasons.values()) == stats["rejected_docs"] > 0


def test_scores_duplicates_and_examples_are_shown(sample_runs):
    text = (sample_runs["A"] / "report.html").read_text()
    stats = json.loads((sample_runs["A"] / "stats.json").read_text())
    page = _parse(sample_runs["A"] / "report.html")
    if plots.available():
        assert "fig-score-language_score" in page.ids
        assert "lang.language_threshold = 0.65" in text
        assert "fig-length" in page.ids
    dedup = next(s for s in stats["stages"] if s["id"] == "dedup")
    if dedup["rejected"]:
        assert "duplicates" in page.ids and "duplicate of " in text
    for s in stats["stages"]:
        for reason in s["reasons"]:
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", reason)
            assert f"ex-{s['id']}-{slug}" in page.ids
    assert "The distributions below use" in text and "(all of them)" in text


def test_a_large_output_is_sampled_and_says_so(sample_runs, tmp_path):
    from curate.report.html import build_report
    from curate.report.output import RunOutput

    html = build_report(RunOutput.open(str(sample_runs["A"])), max_rows=40, examples=1)
    assert "at most 40 rows read" in html
    m = re.search(r"use ([\d,]+) of ([\d,]+) kept documents and ([\d,]+) of ([\d,]+) rejected", html)
    assert m and int(m.group(1).replace(",", "")) + int(m.group(3).replace(",", "")) <= 40 + 8  # one row per shard


def test_without_matplotlib_the_report_says_so_and_keeps_its_tables(sample_runs, monkeypatch):
    from curate.report.html import build_report
    from curate.report.output import RunOutput

    monkeypatch.setattr(plots, "available", lambda: False)
    html = build_report(RunOutput.open(str(sample_runs["A"])))
    assert 'id="no-matplotlib"' in html and "matplotlib is not installed" in html
    assert "<img" not in html
    assert 'id="funnel-table"' in html and 'id="rejections-table"' in html


@pytest.mark.skipif(chromium() is None, reason="no chromium (apt-get install chromium)")
@pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed")
def test_the_report_renders_in_a_headless_browser_without_console_errors(sample_runs, tmp_path):
    report = sample_runs["A"] / "report.html"
    url = report.resolve().as_uri()
    browser = chromium_command(tmp_path / "profile")
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the page's own script counts the images that decoded in the browser, and logs a console error for any other
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:500]
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(1))
    broken = re.search(r'data-images-broken="(\d+)"', body.group(1))
    assert loaded and broken, body.group(0)
    assert int(loaded.group(1)) == len(_parse(report).images) > 0
    assert int(broken.group(1)) == 0
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [*browser, "--window-size=1200,1600", f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert _png_size(shot.read_bytes()) == (1200, 1600)
    assert not [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
