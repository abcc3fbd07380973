"""The synthetic sample crawl: a realistic mix of pages, deterministic, readable by warcio and by curate."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from warcio.archiveiterator import ArchiveIterator

from curate.errors import InputError
from curate.samples import materialize, parse_sample, write_sample_crawl


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))


def test_parse_sample_paths():
    assert parse_sample("sample:crawl") == ("crawl", {"pages": 2000, "seed": 0})
    assert parse_sample("sample:crawl?pages=10&seed=3") == ("crawl", {"pages": 10, "seed": 3})
    for bad in ("sample:nope", "sample:crawl?pages=x", "sample:crawl?size=3", "sample:crawl?pages=0"):
        with pytest.raises(InputError):
            parse_sample(bad)


def test_sample_crawl_is_valid_warc_with_the_promised_mix(tmp_path):
    out = tmp_path / "s.warc.gz"
    counts = write_sample_crawl(out, 600, seed=1)
    assert sum(counts.values()) == 600
    for kind in ("article", "near_duplicate", "exact_duplicate", "spam", "short", "non_html", "redirect"):
        assert counts[kind] > 0, kind
    types, langs, statuses, mimes, encodings = Counter(), Counter(), Counter(), Counter(), Counter()
    with open(out, "rb") as fh:
        for r in ArchiveIterator(fh, check_digests=True):
            types[r.rec_type] += 1
            assert not r.digest_checker.problems
            if r.rec_type != "response":
                continue
            statuses[r.http_headers.get_statuscode()] += 1
            mimes[r.http_headers.get_header("Content-Type").split(";")[0]] += 1
            encodings[
                r.http_headers.get_header("Content-Encoding") or r.http_headers.get_header("Transfer-Encoding")
            ] += 1
            body = r.content_stream().read()
            m = re.search(rb'<html lang="(\w+)"', body)
            if m:
                langs[m.group(1).decode()] += 1
    assert types == Counter({"request": 600, "response": 600, "metadata": 600, "warcinfo": 1})
    assert {"200", "301", "404"} <= set(statuses)
    assert {"text/html", "image/jpeg", "application/pdf", "text/css"} & set(mimes) >= {"text/html"}
    assert len(set(mimes)) >= 4
    assert {"en", "de", "fr", "es"} <= set(langs)
    assert encodings["gzip"] > 0 and encodings["chunked"] > 0


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for d in "abc":
        (tmp_path / d).mkdir()
    a, b, c = (tmp_path / d / "s.warc.gz" for d in "abc")  # the file name is part of the warcinfo record
    write_sample_crawl(a, 80, seed=5)
    write_sample_crawl(b, 80, seed=5)
    write_sample_crawl(c, 80, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_materialize_generates_once_and_reuses(tmp_path):
    path = materialize("sample:crawl?pages=50")
    assert path.startswith(str(tmp_path / "cache"))
    mtime = __import__("os").stat(path).st_mtime_ns
    assert materialize("sample:crawl?pages=50") == path
    assert __import__("os").stat(path).st_mtime_ns == mtime
    assert materialize("sample:crawl?pages=51") != path


def test_reader_on_the_sample_crawl_counts_documents_and_encodings(tmp_path):
    from curate.io.warc import WarcReader

    reader = WarcReader(path="sample:crawl?pages=400&seed=2")
    rows = [row for u in reader.units() for t in reader.read(u) for row in t.to_pylist()]
    assert all(r.get("__reason__") is None for r in rows)
    assert all(r["content_type"] == "text/html" and r["html"] for r in rows)
    assert {r["charset"] for r in rows} >= {"utf-8", "windows-1252", None}
    assert {r["crawl"] for r in rows} == {"CURATE-SAMPLE-2024-22"}
    assert 300 < len(rows) < 400  # non-HTML, 404 and redirect captures are not documents


def test_cli_writes_a_sample_crawl(tmp_path, capsys):
    from curate.cli import main

    out = tmp_path / "cli.warc.gz"
    assert main(["sample-crawl", str(out), "--pages", "30", "--seed", "1"]) == 0
    assert out.stat().st_size > 10_000
    assert "30 captures" in capsys.readouterr().out


@pytest.mark.e2e
def test_extract_pipeline_on_the_sample_crawl_local(tmp_path):
    import curate

    stats = curate.run(
        "extract.yaml",
        runner="local",
        input="sample:crawl?pages=300",
        output=str(tmp_path / "out"),
    )
    assert stats["conserved"]
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["url"]["reasons"].get("banned_word", 0) > 0  # spam on banned hosts
    assert by_id["extract"]["kept"] > 0.9 * by_id["extract"]["docs_in"]
    import pyarrow.parquet as pq

    kept = pq.read_table(tmp_path / "out" / "data")
    assert "html" not in kept.column_names and "text" in kept.column_names
    texts = kept.column("text").to_pylist()
    # boilerplate stays out, except on the old table layouts where trafilatura keeps the footer row
    leaked = sum("We use cookies" in t or "All rights reserved" in t for t in texts)
    assert leaked < 0.15 * len(texts)


@pytest.mark.e2e
def test_extract_pipeline_on_ray_keeps_what_local_keeps(tmp_path, ray_session):
    import pyarrow.parquet as pq

    import curate

    common = {"input": "sample:crawl?pages=200&seed=3", "overrides": ["stages.extract.deduplicate=false"]}
    local = curate.run("extract.yaml", runner="local", output=str(tmp_path / "local"), **common)
    ray = curate.run("extract.yaml", runner="ray", output=str(tmp_path / "ray"), **common)
    assert ray["conserved"] and ray["output_docs"] == local["output_docs"]
    ids = lambda p: sorted(pq.read_table(p / "data").column("id").to_pylist())  # noqa: E731
    assert ids(tmp_path / "ray") == ids(tmp_path / "local")
