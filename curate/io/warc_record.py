"""One WARC record -> a document row, a rejected row (with its reason) or a skip (not a document), and the columns
of those rows. See curate.io.warc for what is a document and how damage is accounted for.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from curate.io.base import open_input
from curate.io.warc_frame import Damaged
from curate.schema import ID, SOURCE, TEXT, URL

log = logging.getLogger("curate.io")

HTML = "html"
DATE = "date"
CONTENT_TYPE = "content_type"
CHARSET = "charset"
CRAWL = "crawl"

WARC_SCHEMA = pa.schema(
    [
        (ID, pa.string()),
        (TEXT, pa.string()),  # set for WET conversion records, which carry text; null for HTML records
        (URL, pa.string()),
        (SOURCE, pa.string()),
        (HTML, pa.binary()),  # raw payload bytes, HTTP transfer/content encodings removed; null for WET text
        (DATE, pa.string()),  # WARC-Date, ISO 8601
        (CONTENT_TYPE, pa.string()),  # payload MIME type, e.g. text/html
        (CHARSET, pa.string()),  # charset declared in the HTTP Content-Type header, if any
        (CRAWL, pa.string()),  # e.g. CC-MAIN-2024-22, from the path or the warcinfo record's isPartOf
    ]
)

# The record types WARC 1.1 defines (section 6); any other is a damaged header.
_WARC_TYPES = {"warcinfo", "response", "resource", "request", "metadata", "revisit", "conversion", "continuation"}
# An absolute URI starts with a scheme (RFC 3986 section 3.1).
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
# type/subtype, each an RFC 9110 token
_MIME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")


@dataclass(frozen=True)
class Documents:
    """Which records are documents, and each record as a row: WarcReader's record_types, content_types, statuses
    and max_payload_bytes, normalised (lower case, integers)."""

    record_types: frozenset[str]
    content_types: frozenset[str]
    statuses: frozenset[int]
    max_payload_bytes: int

    def convert(
        self, record: Any, rel: str, offset: int | None, n: int, skipped: Counter[str], arc: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """("doc" | "reject" | "skip", row) for one record (a skip tallied in `skipped`; `arc`: the record comes
        from an ARC file); Damaged where what follows it in the file cannot be trusted."""
        headers = record.rec_headers
        if record.format == "warc" and not (
            headers.get_header("WARC-Type") and (headers.get_header("Content-Length") or "").strip().isdigit()
        ):
            # without these warcio cannot know where the record ends (it takes a garbled length for 0): what
            # follows is unreliable
            raise Damaged("corrupt_record", offset)
        rec_type = (record.rec_type or "").lower()
        if record.format == "warc" and rec_type not in _WARC_TYPES:
            # not a type WARC defines: a damaged header, which hides whether the record was a document
            url = clean_uri(headers.get_header("WARC-Target-URI"))
            return "reject", {ID: record_id(record, rel, offset, n, arc), URL: url, "reason": "corrupt_record"}
        if rec_type not in self.record_types:
            skipped[rec_type or "untyped"] += 1
            return "skip", {}
        url = clean_uri(headers.get_header("WARC-Target-URI"))
        date = headers.get_header("WARC-Date")
        base: dict[str, Any] = {ID: record_id(record, rel, offset, n, arc), URL: url, DATE: date}
        if rec_type == "conversion":
            mime, charset = "text/plain", "utf-8"
        else:
            http = record.http_headers if record.http_headers is not None else None
            declared = http.get_header("Content-Type") if http is not None else None
            mime, charset = parse_content_type(declared)
            identified = headers.get_header("WARC-Identified-Payload-Type")
            if identified:
                mime = parse_content_type(identified)[0]
            if http is not None and rec_type == "response" and not re.fullmatch(r"\d{3}", http.get_statuscode() or ""):
                # a status line that is not one hides whether the page was a document
                return "reject", {**base, "reason": "corrupt_record"}
            if http is not None and self.statuses and rec_type == "response":
                status = http.get_statuscode()
                if not (status or "").isdigit() or int(status) not in self.statuses:
                    skipped[f"status_{status or 'none'}"] += 1
                    return "skip", {}
            if mime is None or mime == "application/octet-stream" or not _MIME.fullmatch(mime):
                mime = None  # decided by sniffing the payload below (also a type garbled past parsing)
            elif mime not in self.content_types:
                skipped["content_type"] += 1
                return "skip", {}
        base.update({CONTENT_TYPE: mime, CHARSET: charset})
        if url is None or not _SCHEME.match(url):
            return "reject", {**base, "reason": "corrupt_record"}  # no absolute URI: a garbled header
        try:
            payload = record.content_stream().read(self.max_payload_bytes + 1)
        except Exception as e:  # a payload warcio cannot decode (broken chunking, gzip, deflate, brotli)
            log.debug("%s: undecodable payload of %s: %s", rel, url, e)
            raise Damaged("corrupt_payload", offset) from e
        if rec_type == "response" and record.http_headers is None and payload.startswith(b"HTTP/"):
            # warcio parses HTTP headers for http(s) URIs only: a garbled scheme left them in the payload
            return "reject", {**base, "reason": "corrupt_record"}
        if len(payload) > self.max_payload_bytes:
            return "reject", {**base, "reason": "payload_too_large"}
        # Drain what the decoders left (e.g. bytes after a terminal chunk), so a shortfall means the file ended
        try:
            while record.raw_stream.read(1 << 16):
                pass
        except Exception as e:
            raise Damaged("corrupt_payload", offset) from e
        short = getattr(record.raw_stream, "limit", 0)
        if short and not headers.get_header("WARC-Truncated"):
            # the file ended inside the record: Content-Length promised more than there is
            return "reject", {**base, "reason": "truncated_record"}
        if mime is None and rec_type != "conversion":
            if not looks_like_html(payload):
                skipped["content_type"] += 1
                return "skip", {}
            base[CONTENT_TYPE] = "text/html"
        if not payload.strip():
            return "reject", {**base, "reason": "empty_payload"}
        if rec_type == "conversion":
            return "doc", {**base, TEXT: payload.decode("utf-8", errors="replace")}
        return "doc", {**base, HTML: payload}


def record_id(record: Any, rel: str, offset: int | None, n: int, arc: bool = False) -> str:
    """WARC-Record-ID, else (and for every record of an ARC file) the record's place in the file."""
    rid = record.rec_headers.get_header("WARC-Record-ID")
    # warcio converts an ARC record to WARC headers with a random WARC-Record-ID (uuid4), and then calls its format
    # "warc": a document's id would change from run to run, and resume, dedup and joins name documents by id
    if not rid or arc:
        rid = f"{rel}@{offset}" if offset is not None else f"{rel}#{n}"
    return str(rid)


def placeholder(rel: str, reason: str, offset: int | None = None, n: int | None = None) -> dict[str, Any]:
    """A rejected row for damage that hides the record's identity: named by file and byte offset."""
    rid = rel if offset is None and n is None else f"{rel}@{offset}" if offset is not None else f"{rel}#{n}"
    return {ID: rid, "reason": reason}


def clean_uri(uri: str | None) -> str | None:
    if not uri:
        return None
    uri = uri.strip()
    if uri.startswith("<") and uri.endswith(">"):  # WARC/1.0 examples wrap URIs in angle brackets
        uri = uri[1:-1]
    return uri or None


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """("text/html", "iso-8859-1") from "text/html; charset=ISO-8859-1"."""
    if not value:
        return None, None
    parts = value.split(";")
    mime = parts[0].strip().lower() or None
    charset = None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip("\"'").lower() or None
    return mime, charset


_HTML_START = re.compile(rb"<\s*(?:!doctype\s+html|html|head|body|meta|title)\b", re.IGNORECASE)


def looks_like_html(payload: bytes) -> bool:
    """MIME sniffing for records that declare no type: an HTML tag near the start."""
    return bool(_HTML_START.search(payload[:2048]))


def warcinfo_part_of(path: str) -> str | None:
    """isPartOf from the warcinfo record at the start of a WARC file (Common Crawl sets the crawl name there)."""
    try:
        from warcio.archiveiterator import ArchiveIterator

        # the record opens the file: a small first request, not a remote file's default read-ahead (s3fs: 50 MiB)
        with open_input(path, compression=None, block_size=256 << 10) as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "warcinfo":
                    return None
                body = record.content_stream().read(1 << 16).decode("utf-8", errors="replace")
                for line in body.splitlines():
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "ispartof" and value.strip():
                        return value.strip()
                return None
    except Exception:
        return None
    return None
