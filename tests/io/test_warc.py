"""The WARC/ARC/WET reader: columns, record selection, and every kind of damage real crawls contain."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import threading
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curate.io.warc import WarcReader
from curate.schema import REASON

PAGE = b"<html><head><title>t</title></head><body><p>Page %d has some words in it.</p></body></html>"


def record(
    i: int,
    *,
    gz: bool = True,
    rec_type: str = "response",
    status: str = "200 OK",
    ctype: str = "text/html; charset=utf-8",
    body: bytes | None = None,
    http_extra: list[tuple[str, str]] | None = None,
    raw_http: bytes | None = None,
) -> bytes:
    """One WARC record written by warcio (its own gzip member when gz)."""
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=gz)
    url = f"http://example.com/{i}"
    headers = {"WARC-Record-ID": f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>", "WARC-Date": "2024-05-18T01:02:03Z"}
    if raw_http is not None:
        rec = w.create_warc_record(
            url, "response", payload=io.BytesIO(raw_http), length=len(raw_http), warc_headers_dict=headers
        )
        rec.rec_headers.replace_header("Content-Type", "application/http; msgtype=response")
    elif rec_type in ("response",):
        hh = StatusAndHeaders(status, [("Content-Type", ctype), *(http_extra or [])], protocol="HTTP/1.1")
        payload = PAGE % i if body is None else body
        rec = w.create_warc_record(
            url, rec_type, payload=io.BytesIO(payload), http_headers=hh, warc_headers_dict=headers
        )
    elif rec_type == "request":
        hh = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.com")], is_http_request=True)
        rec = w.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=hh, warc_headers_dict=headers)
    else:
        payload = body if body is not None else b"fetchTimeMs: 12\r\n"
        rec = w.create_warc_record(
            url, rec_type, payload=io.BytesIO(payload), warc_content_type="text/plain", warc_headers_dict=headers
        )
    w.write_record(rec)
    return buf.getvalue()


def five(gz: bool = True) -> list[bytes]:
    """The 5-record fixture: three HTML responses around a request and a metadata record."""
    return [
        record(0, gz=gz),
        record(1, gz=gz, rec_type="request"),
        record(2, gz=gz),
        record(3, gz=gz, rec_type="metadata"),
        record(4, gz=gz),
    ]


def read_all(path: Path | str, **options) -> tuple[list[dict], list[dict]]:
    """(kept rows, rejected rows) of every unit of a file."""
    reader = WarcReader(path=str(path), **options)
    kept, rejected = [], []
    for unit in reader.units():
        for table in reader.read(unit):
            assert isinstance(table, pa.Table)
            for row in table.to_pylist():
                (rejected if row.get(REASON) else kept).append(row)
    return kept, rejected


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_reads_html_responses_with_their_columns(tmp_path):
    path = write(tmp_path, "CC-MAIN-2024-22-00001.warc.gz", b"".join(five()))
    kept, rejected = read_all(path)
    assert rejected == []
    assert [r["url"] for r in kept] == ["http://example.com/0", "http://example.com/2", "http://example.com/4"]
    first = kept[0]
    assert first["id"] == "<urn:uuid:00000000-0000-4000-8000-000000000000>"
    assert first["html"] == PAGE % 0
    assert first["text"] is None
    assert first["date"] == "2024-05-18T01:02:03Z"
    assert first["content_type"] == "text/html"
    assert first["charset"] == "utf-8"
    assert first["crawl"] == "CC-MAIN-2024-22"
    assert first["source"] == str(path)


def test_plain_and_gzip_warc_read_the_same(tmp_path):
    gz, _ = read_all(write(tmp_path, "a.warc.gz", b"".join(five(gz=True))))
    plain, _ = read_all(write(tmp_path, "a.warc", b"".join(five(gz=False))))
    assert [r["url"] for r in gz] == [r["url"] for r in plain]
    assert [r["html"] for r in gz] == [r["html"] for r in plain]


def test_record_selection_is_configurable(tmp_path):
    recs = [
        record(0),
        record(1, status="404 Not Found"),
        record(2, ctype="image/jpeg", body=b"\xff\xd8\xff"),
        record(3, ctype="application/xhtml+xml"),
        record(4, rec_type="revisit", body=b""),
        record(5, rec_type="resource", body=b"<html><body>resource page</body></html>"),
    ]
    path = write(tmp_path, "sel.warc.gz", b"".join(recs))
    kept, _ = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "3"]
    kept, _ = read_all(path, statuses=[], content_types=["text/html"])
    assert [r["url"][-1] for r in kept] == ["0", "1"]
    kept, _ = read_all(path, record_types=["response", "resource"], content_types=["text/html", "text/plain"])
    assert [r["url"][-1] for r in kept] == ["0", "5"]


def test_truncated_last_gzip_member_keeps_the_records_before_and_counts_the_loss(tmp_path):
    recs = five()
    path = write(tmp_path, "t.warc.gz", b"".join(recs[:4]) + recs[4][: len(recs[4]) // 2])
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "2"]
    assert [r[REASON] for r in rejected] == ["truncated_record"]


def test_truncated_member_in_the_middle_resumes_at_the_next_member(tmp_path):
    recs = [record(i) for i in range(5)]
    path = write(tmp_path, "m.warc.gz", b"".join(recs[:2]) + recs[2][: len(recs[2]) // 2] + b"".join(recs[3:]))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "1", "3", "4"]
    assert len(rejected) == 1 and rejected[0][REASON] in ("corrupt_record", "truncated_record")


@pytest.mark.parametrize(
    "broken",
    [
        gzip.compress(b"GARBAGE LINE\r\nfoo: bar\r\n\r\n"),
        gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: xyz\r\n\r\nhello\r\n\r\n"),
        gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\n\r\n"),  # no Content-Length: where does it end?
    ],
)
def test_record_with_broken_header_is_rejected_and_reading_goes_on(tmp_path, broken):
    recs = [record(i) for i in range(4)]
    path = write(tmp_path, "b.warc.gz", b"".join(recs[:2]) + broken + b"".join(recs[2:]))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "1", "2", "3"]
    assert [r[REASON] for r in rejected] == ["corrupt_record"]


def test_plain_warc_with_broken_record_resynchronises(tmp_path):
    recs = [record(i, gz=False) for i in range(4)]
    path = write(tmp_path, "p.warc", b"".join(recs[:2]) + b"WARC/1.0\r\nbroken\r\n\r\n" + b"".join(recs[2:]))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "1", "2", "3"]
    assert [r[REASON] for r in rejected] == ["corrupt_record"]


def test_plain_warc_cut_inside_a_payload_rejects_that_record(tmp_path):
    recs = [record(i, gz=False) for i in range(3)]
    path = write(tmp_path, "c.warc", b"".join(recs[:2]) + recs[2][:-30])
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "1"]
    assert [(r["url"], r[REASON]) for r in rejected] == [("http://example.com/2", "truncated_record")]


def test_zero_length_and_non_warc_files_are_one_rejection_each(tmp_path):
    _, rejected = read_all(write(tmp_path, "empty.warc.gz", b""))
    assert [r[REASON] for r in rejected] == ["empty_file"]
    _, rejected = read_all(write(tmp_path, "notes.warc", b"these are my notes, not an archive\n" * 10))
    assert [r[REASON] for r in rejected] == ["not_warc"]
    _, rejected = read_all(write(tmp_path, "pic.warc.gz", gzip.compress(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)))
    assert [r[REASON] for r in rejected] == ["not_warc"]


def test_chunked_and_gzip_transfer_encodings_are_decoded(tmp_path):
    body = b"<html><body><p>" + "Grüße aus Köln. ".encode() * 50 + b"</p></body></html>"
    zipped = gzip.compress(body)
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(zipped[i : i + 100]), zipped[i : i + 100]) for i in range(0, len(zipped), 100)
    )
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )
    path = write(tmp_path, "enc.warc.gz", record(0, raw_http=raw))
    kept, rejected = read_all(path)
    assert rejected == []
    assert kept[0]["html"] == body


def test_headers_that_lie_about_encodings_do_not_lose_the_page(tmp_path):
    # Common Crawl 2008/2009: headers say chunked + gzip, the stored body is already decoded
    body = b"<html><body><p>Already decoded body.</p></body></html>"
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
    )
    kept, rejected = read_all(write(tmp_path, "lie.warc.gz", record(0, raw_http=raw)))
    assert rejected == []
    assert kept[0]["html"].strip() == body


def test_non_utf8_payload_is_kept_as_bytes_with_its_declared_charset(tmp_path):
    body = "<html><body><p>Ärger über Öl, Straße und Maß.</p></body></html>".encode("cp1252")
    kept, _ = read_all(write(tmp_path, "l1.warc.gz", record(0, ctype="text/html; charset=ISO-8859-1", body=body)))
    assert kept[0]["html"] == body
    assert kept[0]["charset"] == "iso-8859-1"


def test_a_50mb_page_is_rejected_without_being_held_in_memory(tmp_path):
    big = b"<html><body>" + b"<p>spam spam spam spam</p>" * (50 * 1024 * 1024 // 26) + b"</body></html>"
    data = record(0) + record(1, body=big) + record(2)
    path = write(tmp_path, "big.warc.gz", data)
    del big, data
    tracemalloc.start()
    kept, rejected = read_all(path, max_payload_bytes=1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r["url"][-1] for r in kept] == ["0", "2"]
    assert [(r["url"][-1], r[REASON]) for r in rejected] == [("1", "payload_too_large")]
    # warcio inflates a 16 KB block at a time (up to ~16 MB for this very compressible page): bounded, not 50 MB
    assert peak < 32 << 20, f"peak {peak / 1e6:.0f} MB while reading a 50 MB page"


def test_empty_payload_is_rejected(tmp_path):
    kept, rejected = read_all(write(tmp_path, "e.warc.gz", record(0, body=b"") + record(1)))
    assert [r["url"][-1] for r in kept] == ["1"]
    assert [r[REASON] for r in rejected] == ["empty_payload"]


def test_wet_conversion_records_carry_text(tmp_path):
    text = b"Plain text of a page.\nSecond line."
    path = write(tmp_path, "x.warc.wet.gz", record(0, rec_type="conversion", body=text))
    kept, _ = read_all(path)
    assert kept[0]["text"] == text.decode() and kept[0]["html"] is None


def test_single_gzip_stream_around_all_records(tmp_path):
    path = write(tmp_path, "s.warc.gz", gzip.compress(b"".join(five(gz=False))))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "2", "4"] and rejected == []


def test_truncated_single_gzip_stream_keeps_what_came_before(tmp_path):
    data = gzip.compress(b"".join(five(gz=False)))
    kept, rejected = read_all(write(tmp_path, "st.warc.gz", data[: len(data) * 3 // 4]))
    assert len(kept) >= 1
    assert [r[REASON] for r in rejected] in (["truncated_record"], ["corrupt_record"])


def test_big_file_is_split_into_units_that_read_each_record_once(tmp_path):
    recs = [record(i) for i in range(60)]
    path = write(tmp_path, "big.warc.gz", b"".join(recs))
    whole, _ = read_all(path)
    reader = WarcReader(path=str(path), split_bytes=len(b"".join(recs)) // 7)
    units = reader.units()
    assert len(units) >= 6
    seen = []
    for unit in units:
        for table in reader.read(unit):
            seen += table.column("url").to_pylist()
    assert Counter(seen) == Counter(r["url"] for r in whole)
    assert len(seen) == 60


def test_arc_file_with_common_crawl_2008_quirks(tmp_path):
    # the filedesc record is not followed by a blank line (warcio alone cannot read this)
    version = b"1 0 CommonCrawl\nURL IP-address Archive-date Content-type Archive-length\n"
    out = b"filedesc://x.arc.gz 0.0.0.0 20080601000000 text/plain %d\n" % len(version) + version
    for i in range(3):
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + PAGE % i
        out += b"http://example.com/%d 1.2.3.4 20080601000000 text/html %d\n" % (i, len(http)) + http + b"\n"
    kept, rejected = read_all(write(tmp_path, "x.arc.gz", gzip.compress(out)))
    assert [r["url"] for r in kept] == [f"http://example.com/{i}" for i in range(3)]
    assert kept[1]["html"] == PAGE % 1
    assert kept[0]["date"].startswith("2008-06-01")
    assert len({r["id"] for r in kept}) == 3 and rejected == []
    # warcio gives converted ARC records random ids: curate names them by place, the same on every read
    again, _ = read_all(tmp_path / "x.arc.gz")
    assert [r["id"] for r in kept] == [r["id"] for r in again] == [f"x.arc.gz#{i}" for i in range(1, 4)]


def test_reads_over_http_with_fsspec(tmp_path):
    pytest.importorskip("aiohttp")
    write(tmp_path, "remote.warc.gz", b"".join(five()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/remote.warc.gz"
        kept, rejected = read_all(url)
    finally:
        server.shutdown()
    assert [r["url"][-1] for r in kept] == ["0", "2", "4"] and rejected == []
    assert kept[0]["source"] == url


def test_corrupt_inputs_in_a_pipeline_are_all_accounted_for(tmp_path):
    from curate import config, engine

    recs = [record(i) for i in range(6)]
    d = tmp_path / "crawl"
    d.mkdir()
    write(d, "a.warc.gz", b"".join(recs[:3]) + recs[3][:40])
    write(d, "b.warc.gz", recs[4] + gzip.compress(b"GARBAGE\r\n\r\n") + recs[5])
    write(d, "c.warc.gz", b"")
    write(d, "d.warc", b"not a warc at all\n")
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"name: t\ninput: {{format: warc, path: {d}}}\noutput: {{path: {tmp_path / 'out'}}}\nstages: []\n")
    stats = engine.run(config.load(str(pipe)), runner="local")
    assert stats["conserved"] is True
    assert stats["input_docs"] == 5 + 1 + 1 + 1 + 1  # 5 intact pages, the cut one, the garbage, 2 bad files
    reasons = stats["stages"][0]["reasons"]
    assert reasons == {"truncated_record": 1, "corrupt_record": 1, "empty_file": 1, "not_warc": 1}
    written = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert written["output_docs"] == 5


def _warcio_counts(path: Path, statuses: set[str] | None) -> tuple[int, int]:
    """(responses, HTML documents) as warcio itself sees them: response records; of those, HTML by
    WARC-Identified-Payload-Type or else the HTTP Content-Type, with a non-empty payload, status in `statuses`."""
    from warcio.archiveiterator import ArchiveIterator

    responses = html = 0
    with open(path, "rb") as fh:
        for r in ArchiveIterator(fh, arc2warc=True):
            if r.rec_type == "conversion":
                html += bool(r.content_stream().read().strip())
                continue
            if r.rec_type != "response":
                continue
            responses += 1
            http = r.http_headers
            if http is None or (statuses and http.get_statuscode() not in statuses):
                continue
            mime = r.rec_headers.get_header("WARC-Identified-Payload-Type") or http.get_header("Content-Type") or ""
            if mime.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
                html += 1
    return responses, html


def test_every_corpus_archive_reads_and_matches_warcio(corpus):
    files = sorted(p for p in corpus.glob("*/*.gz") if ".arc" in p.name or ".warc" in p.name)
    assert len(files) >= 14
    for path in files:
        kept, rejected = read_all(path, statuses=[])
        reasons = Counter(r[REASON] for r in rejected)
        assert set(reasons) <= {"empty_payload"}, (path.name, reasons)
        if path.name.endswith(".arc.gz"):
            twin = path.with_name(path.name.replace(".arc.gz", ".warc.gz"))  # the WARC conversion of the same ARC
            _, expected = _warcio_counts(twin, None)
        else:
            _, expected = _warcio_counts(path, None)
        assert len(kept) + len(rejected) == expected, path.name
        kept200, rejected200 = read_all(path)
        if not path.name.endswith(".arc.gz") and ".wet" not in path.name:
            assert len(kept200) + len(rejected200) == _warcio_counts(path, {"200"})[1], path.name


def test_corpus_revisits_and_non_html_are_skipped(corpus):
    kept, rejected = read_all(corpus / "warc-iana2014-pywb" / "iana.warc.gz")
    assert len(kept) + len(rejected) == 16  # 20 HTML responses of 48, 16 with status 200; 123 revisits skipped
    kept, _ = read_all(corpus / "warc-ia2008-aut" / "example.warc.gz")
    assert {r["crawl"] for r in kept} == {"archive.org-shallow"}
    assert all(r["content_type"] in ("text/html", "application/xhtml+xml") for r in kept)


def test_gzip_magic_inside_payloads_does_not_fool_the_splitter(tmp_path):
    # payloads that contain gzip magic bytes: a split boundary must still land on real record starts
    bodies = [b"<html><body>" + zlib.compress(b"x") + b"\x1f\x8b\x08\x00" * 50 + b"</body></html>" for _ in range(20)]
    recs = [record(i, body=b) for i, b in enumerate(bodies)]
    path = write(tmp_path, "magic.warc.gz", b"".join(recs))
    reader = WarcReader(path=str(path), split_bytes=len(b"".join(recs)) // 5)
    urls = [u for unit in reader.units() for t in reader.read(unit) for u in t.column("url").to_pylist()]
    assert sorted(urls) == sorted(f"http://example.com/{i}" for i in range(20))


# -- one bad byte in a record's headers costs that record, never its neighbours (issue 10) -----------------------


def _with_damaged(gz: bool, target: int, old: bytes, new: bytes, n: int = 5) -> bytes:
    """n HTML responses, record `target` with its first `old` replaced by `new` (before compression)."""
    plain = [record(i, gz=False) for i in range(n)]
    assert old in plain[target]
    plain[target] = plain[target].replace(old, new, 1)
    return b"".join(gzip.compress(p) for p in plain) if gz else b"".join(plain)


def _length(i: int) -> bytes:
    rec = record(i, gz=False)
    start = rec.index(b"Content-Length: ") + len(b"Content-Length: ")
    return rec[start : rec.index(b"\r\n", start)]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_a_content_length_too_long_swallows_no_neighbour(tmp_path, gz):
    length = _length(1)
    path = write(tmp_path, "long.warc" + (".gz" if gz else ""), _with_damaged(gz, 1, length, b"9" + length))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "2", "3", "4"]  # plain: records 2-4 were part of record 1
    assert [(r["url"], r[REASON]) for r in rejected] == [
        ("http://example.com/1", "corrupt_record" if not gz else "truncated_record")
    ]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_a_content_length_too_short_rejects_the_record_instead_of_keeping_half(tmp_path, gz):
    length = _length(1)
    short = str(int(length) - 40).encode()
    path = write(tmp_path, "short.warc" + (".gz" if gz else ""), _with_damaged(gz, 1, length, short))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "2", "3", "4"]
    assert all(r["html"] == PAGE % int(r["url"][-1]) for r in kept)
    assert [(r["url"], r[REASON]) for r in rejected] == [("http://example.com/1", "corrupt_record")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Content-Length: 1", b"Content-Length: \xff"),  # warcio reads a garbled length as 0
        (b"WARC-Type: response", b"WARC-Type: respo\xffse"),  # not a WARC type: was it a document?
        (b"HTTP/1.1 200 OK", b"HTTP/1.1 2\xff0 OK"),  # not a status
    ],
    ids=["length", "type", "status"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_a_garbled_header_is_a_rejected_record_not_a_skipped_one(tmp_path, gz, old, new):
    path = write(tmp_path, "g.warc" + (".gz" if gz else ""), _with_damaged(gz, 1, old, new))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "2", "3", "4"]
    assert [r[REASON] for r in rejected] == ["corrupt_record"]


def test_a_garbled_content_type_is_sniffed(tmp_path):
    path = write(tmp_path, "t.warc.gz", _with_damaged(True, 1, b"text/html;", b"text/h\xffml;"))
    kept, rejected = read_all(path)
    assert [r["url"][-1] for r in kept] == ["0", "1", "2", "3", "4"] and not rejected
    assert kept[1]["content_type"] == "text/html"


def test_a_plain_warc_without_blank_lines_between_records_reads_whole(tmp_path):
    recs = [record(i, gz=False) for i in range(4)]
    assert all(r.endswith(b"\r\n\r\n") for r in recs)
    kept, rejected = read_all(write(tmp_path, "tight.warc", b"".join(r[:-4] for r in recs)))
    assert [r["url"][-1] for r in kept] == ["0", "1", "2", "3"] and not rejected


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_any_one_bad_byte_in_a_records_headers_costs_at_most_that_record(tmp_path, gz):
    plain = [record(i, gz=False) for i in range(4)]
    target = plain[1]
    headers_end = target.index(b"\r\n\r\n", target.index(b"\r\n\r\n") + 4) + 4  # WARC and HTTP headers
    path = tmp_path / ("f.warc.gz" if gz else "f.warc")
    for offset in range(headers_end):
        for byte in (b"\xff", b"9", b"\n"):
            if target[offset : offset + 1] == byte:
                continue
            damaged = [*plain[:1], target[:offset] + byte + target[offset + 1 :], *plain[2:]]
            path.write_bytes(b"".join(gzip.compress(p) for p in damaged) if gz else b"".join(damaged))
            kept, rejected = read_all(path)
            where = (offset, byte, target[max(0, offset - 12) : offset + 12])
            # the neighbours are read, intact; the damaged record is kept (its damage may not show), rejected or
            # (a valid-looking other status or type) skipped, and never counted twice
            pages = Counter((r["url"], r["html"]) for r in kept)
            assert all(pages[(f"http://example.com/{i}", PAGE % i)] == 1 for i in (0, 2, 3)), where
            assert len(kept) + len(rejected) <= 4, where


def test_a_small_input_of_few_files_is_split_finer_for_balance(tmp_path, monkeypatch):
    import curate.io.warc as warc

    recs = [record(i) for i in range(80)]
    path = write(tmp_path, "few.warc.gz", b"".join(recs))
    monkeypatch.setattr(warc, "_MIN_SPLIT_BYTES", 1)  # the file is small; in real use the floor is 4 MiB
    units = WarcReader(path=str(path), min_units=8).units()
    assert len(units) >= 8
    assert [u.key for u in units] == [u.key for u in WarcReader(path=str(path), min_units=8).units()]  # stable
    seen = [url for u in units for t in WarcReader(path=str(path)).read(u) for url in t.column("url").to_pylist()]
    assert sorted(seen) == sorted(r["url"] for r in read_all(path)[0])
    assert len(WarcReader(path=str(path), min_units=1).units()) == 1


def test_the_last_units_of_the_input_are_cut_finer(tmp_path, monkeypatch):
    import curate.io.warc as warc

    monkeypatch.setattr(warc, "_MIN_SPLIT_BYTES", 1)
    paths = [write(tmp_path, f"{k}.warc.gz", b"".join(record(i, body=PAGE % i * 40) for i in range(40))) for k in "ab"]
    reader = WarcReader(path=str(tmp_path / "*.warc.gz"), min_units=16)
    units = reader.units()
    with monkeypatch.context() as m:
        m.setattr(warc, "_finer_tail", lambda cuts: None)
        even = reader.units()
    tail = len(even) // 8  # the last eighth of the even units, each cut in four
    assert len(even) >= 16 and len(units) == len(even) + 3 * tail
    assert [u.key for u in units[: -4 * tail]] == [u.key for u in even[:-tail]]
    assert max(u.size_bytes for u in units[-4 * tail :]) * 3 < min(u.size_bytes for u in even)
    assert {u.path for u in units[-4 * tail :]} == {str(paths[1])}
    for path in paths:  # the pieces still tile each file, numbered in order, and every record is read once
        mine = [u for u in units if u.path == str(path)]
        assert sum(u.size_bytes for u in mine) == path.stat().st_size
        assert [u.key for u in mine] == [f"{path.name}#{i}" for i in range(len(mine))]
        assert {u.parts for u in mine} == {len(mine)}
    seen = [url for u in units for t in reader.read(u) for url in t.column("url").to_pylist()]
    assert sorted(seen) == sorted(r["url"] for p in paths for r in read_all(p)[0])
