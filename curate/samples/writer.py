"""The sample crawl as a WARC file: per-record gzip, warcinfo then request / response / metadata per capture."""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from curate.samples.generator import CrawlGenerator

# Bump when the generator's output changes, so cached crawls are regenerated.
VERSION = 3
CRAWL_NAME = "CURATE-SAMPLE-2024-22"


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _record(
    rec_type: str,
    headers: list[tuple[str, str]],
    block: bytes,
    level: int,
    payload: bytes | None = None,
) -> bytes:
    """One WARC/1.0 record as its own gzip member (what Common Crawl writes, and what lets readers split files)."""
    head = [("WARC-Type", rec_type), *headers, ("Content-Length", str(len(block)))]
    if payload is not None:
        head.append(("WARC-Payload-Digest", _digest(payload)))
    head.append(("WARC-Block-Digest", _digest(block)))
    raw = ("WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n").encode("utf-8") + block + b"\r\n\r\n"
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(raw) + c.flush()


def _chunked(body: bytes, rng: random.Random) -> bytes:
    out = []
    i = 0
    while i < len(body):
        n = rng.randint(500, 4000)
        piece = body[i : i + n]
        out.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        i += n
    return b"".join(out) + b"0\r\n\r\n"


def write_sample_crawl(
    out: str | Path, pages: int, seed: int = 0, level: int = 6, captures: Iterable[Any] | None = None
) -> Counter[str]:
    """Write the sample crawl to `out` (a .warc.gz), or the given `captures` (the Korean crawl's); returns the
    number of captures of each kind."""
    stream = CrawlGenerator(seed).captures(pages) if captures is None else captures
    rng = random.Random(seed + 1)  # record metadata: does not disturb the text stream
    counts: Counter[str] = Counter()
    start = 1716000000  # 2024-05-18
    info_id = f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"
    with open(out, "wb") as fh:
        _write_warcinfo(fh, Path(out).name, info_id, start, pages, seed, level)
        for i, (kind, url, status, http_headers, body, identified) in enumerate(stream):
            counts[kind] += 1
            date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i * 2 + rng.randint(0, 1)))
            ids = [f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>" for _ in range(3)]
            ip = f"{rng.randint(11, 220)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            extra: list[tuple[str, str]] = []
            if body and kind != "non_html" and rng.random() < 0.05:
                body = gzip.compress(body, mtime=0)
                extra.append(("Content-Encoding", "gzip"))
            if body and rng.random() < 0.03:
                body = _chunked(body, rng)
                extra.append(("Transfer-Encoding", "chunked"))
            else:
                extra.append(("Content-Length", str(len(body))))
            reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}[status]
            http = (
                f"HTTP/1.1 {status} {reason}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in [("Date", date), ("Server", "nginx"), *http_headers, *extra])
                + "\r\n"
            ).encode("latin-1", errors="replace")
            host = url.split("/")[2]
            request = (
                f"GET /{url.split('/', 3)[3] if url.count('/') >= 3 else ''} HTTP/1.1\r\nHost: {host}\r\n"
                "User-Agent: CCBot/2.0 (https://commoncrawl.org/faq/)\r\nAccept: text/html,*/*;q=0.8\r\n"
                "Accept-Encoding: gzip\r\nConnection: Keep-Alive\r\n\r\n"
            ).encode()
            common = [("WARC-Date", date), ("WARC-Warcinfo-ID", info_id), ("WARC-IP-Address", ip)]
            fh.write(
                _record(
                    "request",
                    [
                        ("WARC-Record-ID", ids[0]),
                        ("Content-Type", "application/http; msgtype=request"),
                        *common,
                        ("WARC-Target-URI", url),
                    ],
                    request,
                    level,
                )
            )
            resp_headers = [
                ("WARC-Record-ID", ids[1]),
                ("Content-Type", "application/http; msgtype=response"),
                *common,
                ("WARC-Concurrent-To", ids[0]),
                ("WARC-Target-URI", url),
            ]
            if rng.random() < 0.8:  # newer crawls set it; older ones leave the type to the HTTP header
                resp_headers.append(("WARC-Identified-Payload-Type", identified))
            fh.write(_record("response", resp_headers, http + body, level, payload=body))
            meta = f"fetchTimeMs: {rng.randint(40, 900)}\r\ncharset-detected: UTF-8\r\n".encode()
            fh.write(
                _record(
                    "metadata",
                    [
                        ("WARC-Record-ID", ids[2]),
                        ("Content-Type", "application/warc-fields"),
                        ("WARC-Date", date),
                        ("WARC-Warcinfo-ID", info_id),
                        ("WARC-Concurrent-To", ids[1]),
                        ("WARC-Target-URI", url),
                    ],
                    meta,
                    level,
                )
            )
    return counts


def _write_warcinfo(fh: BinaryIO, name: str, info_id: str, start: int, pages: int, seed: int, level: int) -> None:
    fields = (
        f"software: curate sample-crawl v{VERSION}\r\nisPartOf: {CRAWL_NAME}\r\n"
        f"description: synthetic sample crawl, {pages} captures, seed {seed}\r\n"
        "format: WARC File Format 1.0\r\nconformsTo: https://iipc.github.io/warc-specifications/\r\n"
    ).encode()
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    headers = [
        ("WARC-Date", date),
        ("WARC-Filename", name),
        ("WARC-Record-ID", info_id),
        ("Content-Type", "application/warc-fields"),
    ]
    fh.write(_record("warcinfo", headers, fields, level))
