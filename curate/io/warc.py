"""WARC, ARC and WET input (Common Crawl and other web archives), read with warcio, streaming record by record.

What is a document: a record whose type is in `record_types` (default: `response`, and WET `conversion`), and,
for responses, whose HTTP status is in `statuses` and whose payload MIME type is in `content_types`. Every other
record (request, metadata, revisit, warcinfo, an image, a 404) is not a document: it is skipped before counting,
as datatrove's WarcReader does, and tallied in the reader's debug log. Every document is accounted for: it is
emitted, or rejected at stage `input` with a named reason (`payload_too_large`, `empty_payload`,
`truncated_record`, `corrupt_record`, ...). Damage that hides whether a record was a document (a broken header, a
truncated gzip member) is counted as one rejected record, so a corrupt crawl never loses documents silently; the
records before it are kept and reading goes on at the next intact gzip member.

A file that is empty or not a web archive is one rejected placeholder row (`empty_file`, `not_warc`), like an
unreadable Parquet file. Per-record gzip files larger than `split_bytes` are read by several tasks: each task
takes the records whose gzip member starts in its byte range, so a multi-GB WARC never sits in memory and is read
in parallel.
"""

from __future__ import annotations

import io
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
from fsspec.core import url_to_fs

from curate.errors import InputError, MissingDependency
from curate.io.base import Reader, ReadUnit, open_input
from curate.io.parquet import common_root, relative_key
from curate.schema import ID, SOURCE, TEXT, URL, reject_rows

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

_GZIP_MAGIC = b"\x1f\x8b\x08"
# The record types WARC 1.1 defines (section 6); any other is a damaged header.
_WARC_TYPES = {"warcinfo", "response", "resource", "request", "metadata", "revisit", "conversion", "continuation"}
# An absolute URI starts with a scheme (RFC 3986 section 3.1).
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
# type/subtype, each an RFC 9110 token
_MIME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
_CRAWL_IN_PATH = re.compile(r"CC-MAIN-\d{4}-\d{2}")
_PLAIN_RECORD = re.compile(rb"(?:^|\n)(WARC/\d\.\d+\r?\n)")
_SCAN_CHUNK = 1 << 20
# Payload bytes per batch before it is handed on early (HTML pages vary from 1 KB to many MB).
_BATCH_BYTES = 64 << 20
# Object stores and local files can be read from an offset cheaply; a plain HTTP server may not support ranges.
_SPLITTABLE_PROTOCOLS = {"file", "local", "s3", "s3a", "gs", "gcs", "abfs", "az", "adl", "hdfs"}


class _SingleStream(Exception):
    """The file is one gzip stream around many records; it must be read front to back."""


class _Resync(Exception):
    """Read on from the first record that starts after byte `offset` (what came before is accounted for)."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _Damaged(Exception):
    """Reading cannot go on from here; `reason` names why and `offset` where (None: resynchronising is not
    possible, the rest of the unit is rejected)."""

    def __init__(self, reason: str, offset: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


@dataclass(kw_only=True)
class WarcReader(Reader):
    """WARC / ARC / WET files (.gz per record, whole-file .gz, or plain) via warcio; datatrove's WarcReader."""

    format = "warc"
    extensions = (".warc", ".arc", ".wet")

    # WARC-Type values that can be documents: `response` (HTML pages), `conversion` (WET text); add `resource`
    # for browser-made archives that store pages as resources.
    record_types: list[str] = field(default_factory=lambda: ["response", "conversion"])
    # Payload MIME types kept (WARC-Identified-Payload-Type when the crawler set it, else the HTTP Content-Type).
    content_types: list[str] = field(default_factory=lambda: ["text/html", "application/xhtml+xml"])
    # HTTP statuses kept; empty keeps every status.
    statuses: list[int] = field(default_factory=lambda: [200])
    # A larger payload is rejected as payload_too_large without being held in memory (CC truncates at 1 MiB).
    max_payload_bytes: int = 10 << 20
    # Per-record gzip files larger than this are read by several tasks (0: one task per file).
    split_bytes: int = 256 << 20
    # A small input is split finer, into at least this many read units where its files allow (per-record gzip), so
    # that a few large files do not leave one task running alone at the end. Depends on the input only, so a
    # resumed run (even on another cluster size) finds the same units.
    min_units: int = 32

    def __post_init__(self) -> None:
        if self.max_payload_bytes < 1:
            raise InputError("input.max_payload_bytes must be at least 1")
        self._record_types = {t.lower() for t in self.record_types}
        self._content_types = {t.lower() for t in self.content_types}
        self._statuses = {int(s) for s in self.statuses}
        self._warcinfo: dict[str, str | None] = {}

    # -- the Reader contract ---------------------------------------------------------------------------------

    def schema(self) -> pa.Schema:
        return WARC_SCHEMA

    def units(self) -> list[ReadUnit]:
        files = self.files()
        root = common_root(files)
        sizes = [_file_size(f) for f in files]
        split = self.split_bytes
        if split > 0 and self.min_units > len(files):
            split = min(split, max(_MIN_SPLIT_BYTES, sum(sizes) // self.min_units))
        cuts: list[list[int]] = []  # per file, the byte offsets its units start at, then its size
        for f, size in zip(files, sizes):
            parts = -(-size // split) if split > 0 and size > split and _splittable(f) else 1
            cuts.append([i * size // parts for i in range(parts)] + [size])
        _finer_tail(cuts)
        units: list[ReadUnit] = []
        for f, bounds in zip(files, cuts):
            rel = relative_key(f, root)
            parts = len(bounds) - 1
            for i in range(parts):
                start, end = bounds[i], bounds[i + 1] if i < parts - 1 else None
                key = rel if parts == 1 else f"{rel}#{i}"
                units.append(ReadUnit(f, key, bounds[i + 1] - start, part=i, parts=parts, options=(start, end, rel)))
        return units

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        _require_warcio()
        start, end, rel = unit.options if unit.options else (0, None, unit.key)
        rows: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        nbytes = 0
        skipped: Counter[str] = Counter()
        crawl = self._crawl(unit.path)
        for kind, row in self._records(unit.path, rel, start, end, skipped):
            if kind == "skip":
                continue
            row.setdefault(SOURCE, unit.path)
            row.setdefault(CRAWL, crawl)
            if kind == "doc":
                rows.append(row)
                nbytes += len(row.get(HTML) or b"") + len(row.get(TEXT) or "")
            else:
                rejected.append(row)
            if len(rows) >= self.batch_rows or nbytes >= _BATCH_BYTES:
                yield pa.Table.from_pylist(rows, schema=WARC_SCHEMA)
                rows, nbytes = [], 0
        if rows:
            yield pa.Table.from_pylist(rows, schema=WARC_SCHEMA)
        if rejected:
            reasons = [r.pop("reason") for r in rejected]
            yield reject_rows(pa.Table.from_pylist(rejected, schema=WARC_SCHEMA), reasons)
        if skipped:
            log.debug("%s: skipped non-document records: %s", unit.key, dict(skipped))
            for what, n in skipped.items():
                self.count(f"skipped_{what}", n)  # not documents, but reported: stats.json, input counters

    # -- record iteration ----------------------------------------------------------------------------------

    def _records(
        self, path: str, rel: str, start: int, end: int | None, skipped: Counter[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """("doc" | "reject" | "skip", row) for every record of the unit, in file order."""
        try:
            raw = open_input(path, compression=None)
        except (OSError, ValueError) as e:
            log.warning("cannot open %s: %s", path, e)
            yield "reject", _placeholder(rel, "unreadable_file")
            return
        with raw:
            gz, head = _peek(raw, 512)
            kind = _sniff(gz, head) if start == 0 else "warc_gz"
            if kind in ("empty", "not_warc"):
                if kind == "not_warc":
                    log.warning("%s is not a WARC/ARC file (starts with %r)", path, head[:40])
                yield "reject", _placeholder(rel, "empty_file" if kind == "empty" else "not_warc")
                return
            if kind in ("warc_gz", "warc_plain") and _seekable(raw):
                emitted = 0
                try:
                    for item in self._members(raw, rel, start, end, kind == "warc_gz", skipped):
                        emitted += 1
                        yield item
                    return
                except _SingleStream:
                    # one gzip stream around many records (not the per-record gzip WARC asks for)
                    raw.seek(0)
                    yield from self._stream(raw, rel, "warc_gz", skipped, skip=emitted)
                    return
            yield from self._stream(raw, rel, kind, skipped)

    def _members(
        self, raw: BinaryIO, rel: str, start: int, end: int | None, gz: bool, skipped: Counter[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A seekable per-record-gzip or plain WARC: read from `start`, resynchronising after damage."""
        from warcio.archiveiterator import ArchiveIterator

        size = _stream_size(raw)
        pos: int | None = start if start == 0 else _next_record(raw, start - 1, gz, end)
        while pos is not None and (end is None or pos < end):
            raw.seek(pos)
            it = ArchiveIterator(raw, arc2warc=True)
            offset = pos
            try:
                for n, record in enumerate(_guarded(it)):
                    offset = it.offset
                    if end is not None and offset >= end:
                        return
                    item = self._convert(record, rel, offset, n, skipped)
                    resync = _misframed(it, record, raw, gz, offset)
                    document_typed = (record.rec_type or "").lower() in self._record_types
                    if resync == offset and (item[0] != "skip" or document_typed):
                        # The record's Content-Length is wrong: its payload is not what the record holds (cut
                        # short, or the records after it swallowed), and a document-typed record skipped for what
                        # its payload looked like may have been one. Reject it; read on from the next record.
                        row = {k: v for k, v in item[1].items() if k not in (HTML, TEXT, "reason")}
                        row.setdefault(ID, _record_id(record, rel, offset, n))
                        row.setdefault(URL, _clean_uri(record.rec_headers.get_header("WARC-Target-URI")))
                        item = ("reject", {**row, "reason": "corrupt_record"})
                    yield item
                    if resync is not None:
                        raise _Resync(resync)
                offset = it.offset
                pos = None
                # warcio ends quietly at a gzip member cut short; bytes left over mean a record was lost there
                if size is not None and offset < size and _has_data(raw, offset, size):
                    yield "reject", _placeholder(rel, "truncated_record", offset)
                    pos = _next_record(raw, offset, gz, end)
            except _Damaged as e:
                at = it.offset if e.offset is None else e.offset
                yield "reject", _placeholder(rel, e.reason, at)
                pos = _next_record(raw, at, gz, end)
            except _Resync as e:
                pos = _next_record(raw, e.offset, gz, end)

    def _stream(
        self, raw: BinaryIO, rel: str, kind: str, skipped: Counter[str], skip: int = 0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A file read front to back (a whole-file gzip, an ARC, an unseekable URL): damage ends the unit.
        `skip` records were already emitted by a first attempt."""
        from warcio.archiveiterator import ArchiveIterator

        stream: BinaryIO = raw
        if kind in ("warc_gz", "arc_gz"):
            import gzip

            stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        if kind in ("arc_gz", "arc_plain"):
            stream = _ArcFixup(stream)  # type: ignore[assignment]
        it = ArchiveIterator(stream, arc2warc=True)
        n = -1
        try:
            for n, record in enumerate(_guarded(it, single_stream_ok=True)):  # noqa: B007
                item = self._convert(record, rel, None, n, skipped)
                if item[0] != "skip":
                    if skip > 0:
                        skip -= 1
                        continue
                yield item
            if stream is not raw:
                stream.read(1)  # warcio ends quietly at a cut gzip stream; GzipFile tells
        except _Damaged as e:
            yield "reject", _placeholder(rel, e.reason, None, n + 1)
        except (OSError, EOFError, zlib.error) as e:  # gzip.GzipFile on a truncated or corrupt stream
            log.warning("%s: unreadable after record %d: %s", rel, n + 1, e)
            yield "reject", _placeholder(rel, "truncated_record" if isinstance(e, EOFError) else "corrupt_record")

    # -- one record ----------------------------------------------------------------------------------------

    def _convert(
        self, record: Any, rel: str, offset: int | None, n: int, skipped: Counter[str]
    ) -> tuple[str, dict[str, Any]]:
        headers = record.rec_headers
        if record.format == "warc" and not (
            headers.get_header("WARC-Type") and (headers.get_header("Content-Length") or "").strip().isdigit()
        ):
            # without these warcio cannot know where the record ends (it takes a garbled length for 0): what
            # follows is unreliable
            raise _Damaged("corrupt_record", offset)
        rec_type = (record.rec_type or "").lower()
        if record.format == "warc" and rec_type not in _WARC_TYPES:
            # not a type WARC defines: a damaged header, which hides whether the record was a document
            url = _clean_uri(headers.get_header("WARC-Target-URI"))
            return "reject", {ID: _record_id(record, rel, offset, n), URL: url, "reason": "corrupt_record"}
        if rec_type not in self._record_types:
            skipped[rec_type or "untyped"] += 1
            return "skip", {}
        url = _clean_uri(headers.get_header("WARC-Target-URI"))
        date = headers.get_header("WARC-Date")
        base: dict[str, Any] = {ID: _record_id(record, rel, offset, n), URL: url, DATE: date}
        if rec_type == "conversion":
            mime, charset = "text/plain", "utf-8"
        else:
            http = record.http_headers if record.http_headers is not None else None
            declared = http.get_header("Content-Type") if http is not None else None
            mime, charset = _parse_content_type(declared)
            identified = headers.get_header("WARC-Identified-Payload-Type")
            if identified:
                mime = _parse_content_type(identified)[0]
            if http is not None and rec_type == "response" and not re.fullmatch(r"\d{3}", http.get_statuscode() or ""):
                # a status line that is not one hides whether the page was a document
                return "reject", {**base, "reason": "corrupt_record"}
            if http is not None and self._statuses and rec_type == "response":
                status = http.get_statuscode()
                if not (status or "").isdigit() or int(status) not in self._statuses:
                    skipped[f"status_{status or 'none'}"] += 1
                    return "skip", {}
            if mime is None or mime == "application/octet-stream" or not _MIME.fullmatch(mime):
                mime = None  # decided by sniffing the payload below (also a type garbled past parsing)
            elif mime not in self._content_types:
                skipped["content_type"] += 1
                return "skip", {}
        base.update({CONTENT_TYPE: mime, CHARSET: charset})
        if url is None or not _SCHEME.match(url):
            return "reject", {**base, "reason": "corrupt_record"}  # no absolute URI: a garbled header
        try:
            payload = record.content_stream().read(self.max_payload_bytes + 1)
        except Exception as e:  # a payload warcio cannot decode (broken chunking, gzip, deflate, brotli)
            log.debug("%s: undecodable payload of %s: %s", rel, url, e)
            raise _Damaged("corrupt_payload", offset) from e
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
            raise _Damaged("corrupt_payload", offset) from e
        short = getattr(record.raw_stream, "limit", 0)
        if short and not headers.get_header("WARC-Truncated"):
            # the file ended inside the record: Content-Length promised more than there is
            return "reject", {**base, "reason": "truncated_record"}
        if mime is None and rec_type != "conversion":
            if not _looks_like_html(payload):
                skipped["content_type"] += 1
                return "skip", {}
            base[CONTENT_TYPE] = "text/html"
        if not payload.strip():
            return "reject", {**base, "reason": "empty_payload"}
        if rec_type == "conversion":
            return "doc", {**base, TEXT: payload.decode("utf-8", errors="replace")}
        return "doc", {**base, HTML: payload}

    def _crawl(self, path: str) -> str | None:
        """The crawl name: CC-MAIN-YYYY-WW when the path shows it, else the warcinfo record's isPartOf."""
        m = _CRAWL_IN_PATH.search(path)
        if m:
            return m.group(0)
        if path not in self._warcinfo:
            self._warcinfo[path] = _warcinfo_part_of(path)
        return self._warcinfo[path]


# -- helpers ---------------------------------------------------------------------------------------------------


def _require_warcio() -> None:
    try:
        import warcio  # noqa: F401
    except ImportError as e:
        err = MissingDependency("warcio", "web", what="reading WARC files")
        err.hint = "pip install warcio (a dependency of curate: reinstalling curate brings it)"
        raise err from e


def _guarded(it: Any, single_stream_ok: bool = False) -> Iterator[Any]:
    """warcio's iterator, with its failures turned into _Damaged at the record where they happen."""
    while True:
        try:
            record = next(it)
        except StopIteration:
            return
        except _SingleStream:
            raise
        except (zlib.error, EOFError) as e:
            raise _Damaged("truncated_record" if isinstance(e, EOFError) else "corrupt_record", None) from e
        except Exception as e:  # ArchiveLoadFailed, a header warcio cannot parse, ...
            if not single_stream_ok and "non-chunked gzip" in str(e):
                raise _SingleStream() from e
            raise _Damaged("corrupt_record", None) from e
        yield record


def _record_id(record: Any, rel: str, offset: int | None, n: int) -> str:
    """WARC-Record-ID, else the record's place in the file."""
    rid = record.rec_headers.get_header("WARC-Record-ID")
    if not rid or record.format == "arc2warc":  # warcio invents a random id for ARC records: not stable
        rid = f"{rel}@{offset}" if offset is not None else f"{rel}#{n}"
    return str(rid)


def _misframed(it: Any, record: Any, raw: BinaryIO, gz: bool, offset: int) -> int | None:
    """None when the record ends where the next one begins (or the file ends); else the offset to resynchronise
    after: the record's own (its Content-Length is wrong), or just before a record that follows it without the
    blank lines WARC asks for (warcio would take that record's first line for a blank one)."""
    try:
        while record.raw_stream.read(1 << 16):  # the payload of a skipped record is not read yet
            pass
    except Exception as e:
        raise _Damaged("corrupt_record", None) from e
    if gz:
        # inside a gzip member, anything but blank lines after the block means the length was short
        errors = it.err_count
        try:
            it.read_to_end()
        except Exception as e:
            raise _Damaged("corrupt_record", None) from e
        return None if it.err_count == errors else offset
    here = raw.tell()
    block_end = here - it.reader.rem_length()
    raw.seek(block_end)
    ahead = raw.read(4096)
    short = getattr(record.raw_stream, "limit", 0)
    inner = _next_record(raw, offset, False, None) if short else None
    raw.seek(here)
    if inner is not None:
        return offset  # the file ended inside a block that holds another record: the length was too long
    if not ahead or ahead.startswith((b"\r\n\r\n", b"\n\n")) or not ahead.strip(b"\r\n"):
        return None  # the two newlines WARC puts after a block (what follows them is the next record's business)
    if ahead.startswith(b"WARC/"):
        return block_end - 1  # a writer that leaves them out: the next record starts right here
    return offset


def _placeholder(rel: str, reason: str, offset: int | None = None, n: int | None = None) -> dict[str, Any]:
    """A rejected row for damage that hides the record's identity: named by file and byte offset."""
    rid = rel if offset is None and n is None else f"{rel}@{offset}" if offset is not None else f"{rel}#{n}"
    return {ID: rid, "reason": reason}


def _peek(raw: BinaryIO, n: int) -> tuple[bool, bytes]:
    """(is gzip, the first bytes of the file, decompressed when it is gzip)."""
    try:
        pos = raw.tell()
        head = raw.read(n * 8)
        raw.seek(pos)
    except (OSError, ValueError):
        return False, b""
    if head.startswith(_GZIP_MAGIC):
        try:
            return True, zlib.decompressobj(31).decompress(head, n)
        except zlib.error:
            return True, b"\0"
    return False, head[:n]


def _sniff(gz: bool, head: bytes) -> str:
    """warc_gz, warc_plain, arc_gz, arc_plain, empty or not_warc."""
    if not head and not gz:
        return "empty"
    head = head.lstrip(b"\r\n")
    suffix = "gz" if gz else "plain"
    if head.startswith(b"WARC/"):
        return f"warc_{suffix}"
    if head.startswith(b"filedesc://"):
        return f"arc_{suffix}"
    return "not_warc"


def _seekable(raw: BinaryIO) -> bool:
    try:
        return bool(raw.seekable())
    except (AttributeError, OSError):
        return False


def _stream_size(raw: BinaryIO) -> int | None:
    try:
        pos = raw.tell()
        size = raw.seek(0, io.SEEK_END)
        raw.seek(pos)
        return int(size)
    except (OSError, ValueError):
        return None


def _has_data(raw: BinaryIO, offset: int, size: int) -> bool:
    """Whether anything but padding (newlines, NULs) follows `offset`."""
    raw.seek(offset)
    return bool(raw.read(min(size - offset, 4096)).strip(b"\r\n\0 "))


def _member_starts_record(raw: BinaryIO, at: int) -> bool:
    """Whether the gzip member at `at` decompresses to the start of a WARC record."""
    raw.seek(at)
    data = raw.read(4096)
    try:
        out = zlib.decompressobj(31).decompress(data, 16)
    except zlib.error:
        return False
    return out.startswith(b"WARC/")


def _next_record(raw: BinaryIO, after: int, gz: bool, end: int | None) -> int | None:
    """Offset of the first record that starts after byte `after` and before `end`: a gzip member that
    decompresses to `WARC/`, or in a plain file a `WARC/x.y` line. None when there is none."""
    pos = after + 1
    raw.seek(pos)
    carry = b""
    while end is None or pos - len(carry) < end:
        chunk = raw.read(_SCAN_CHUNK)
        if not chunk:
            return None
        buf = carry + chunk
        base = pos - len(carry)
        if gz:
            i = buf.find(_GZIP_MAGIC)
            while i >= 0:
                if end is not None and base + i >= end:
                    return None
                if _member_starts_record(raw, base + i):
                    return base + i
                i = buf.find(_GZIP_MAGIC, i + 1)
        else:
            for m in _PLAIN_RECORD.finditer(buf):
                at = base + m.start(1)
                if at > after and (end is None or at < end):
                    return at
        carry = buf[-16:]
        pos += len(chunk)
        raw.seek(pos)
    return None


def _clean_uri(uri: str | None) -> str | None:
    if not uri:
        return None
    uri = uri.strip()
    if uri.startswith("<") and uri.endswith(">"):  # WARC/1.0 examples wrap URIs in angle brackets
        uri = uri[1:-1]
    return uri or None


def _parse_content_type(value: str | None) -> tuple[str | None, str | None]:
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


def _looks_like_html(payload: bytes) -> bool:
    """MIME sniffing for records that declare no type: an HTML tag near the start."""
    return bool(_HTML_START.search(payload[:2048]))


def _file_size(path: str) -> int:
    try:
        fs, p = url_to_fs(path)
        return int(fs.size(p) or 0)
    except Exception:
        return 0


# Below this a split costs more (a seek and a resync, a task) than it balances. 35 MB of real pages go in 33 units
# of 1 MiB rather than 10 of 4 MiB, so the last unit a worker runs alone is a quarter the size; 128 units of 256 KiB
# made the FineWeb chain on them 2-3 s slower (bench/README.md, the chain on Ray).
_MIN_SPLIT_BYTES = 1 << 20


# The units that end the input are cut finer (guided self-scheduling): runs go in the order of the units, so
# whichever worker takes one of the last is done soon after the others. Their bytes say little of their cost: on
# the corpus pages a 1 MiB unit took 0.24-3.5 s, and one of the slowest came last (bench/README.md, the chain on Ray).
_TAIL_SHARE = 8  # the last eighth of the units (at least one), if their file is split
_TAIL_PIECES = 4  # each cut in this many, none under a quarter of _MIN_SPLIT_BYTES


def _finer_tail(cuts: list[list[int]]) -> None:
    """Cut the last units of the input (in place; cuts as built in WarcReader.units) into _TAIL_PIECES each."""
    left = max(1, sum(len(c) - 1 for c in cuts) // _TAIL_SHARE)
    for bounds in reversed(cuts):
        if left <= 0 or len(bounds) < 3:  # a file read whole is not splittable, or small
            return
        i = len(bounds) - 2
        while left > 0 and i >= 0:
            lo, hi = bounds[i], bounds[i + 1]
            pieces = min(_TAIL_PIECES, max(1, (hi - lo) // max(1, _MIN_SPLIT_BYTES // _TAIL_PIECES)))
            bounds[i + 1 : i + 1] = [lo + k * (hi - lo) // pieces for k in range(1, pieces)]
            left -= 1
            i -= 1


def _splittable(path: str) -> bool:
    """A per-record gzip file on a store that reads ranges: its first gzip member ends before the file does."""
    try:
        fs, _ = url_to_fs(path)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol not in _SPLITTABLE_PROTOCOLS:
            return False
        with open_input(path, compression=None) as fh:
            data = fh.read(1 << 20)
            if not data.startswith(_GZIP_MAGIC):
                return False
            d = zlib.decompressobj(31)
            d.decompress(data, 1 << 16)
            while not d.eof and d.unconsumed_tail:
                d.decompress(d.unconsumed_tail, 1 << 16)
            return d.eof and d.unused_data.startswith(_GZIP_MAGIC)
    except Exception:
        return False


def _warcinfo_part_of(path: str) -> str | None:
    """isPartOf from the warcinfo record at the start of a WARC file (Common Crawl sets the crawl name there)."""
    try:
        from warcio.archiveiterator import ArchiveIterator

        with open_input(path, compression=None) as fh:
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


class _ArcFixup(io.RawIOBase):
    """An ARC stream with the newline warcio expects after the filedesc record (Common Crawl's 2008-2009 ARCs,
    among others, omit it), so that warcio's ARC parser reads the records that follow."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        header = stream.readline()
        prefix = header
        fields = header.split()
        if header.startswith(b"filedesc://") and fields and fields[-1].isdigit():
            body = stream.read(int(fields[-1]))
            prefix += body
            nxt = stream.read(1)
            prefix += b"\n" + nxt if nxt not in (b"\n", b"") else nxt
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = len(b)
        if self._prefix:
            chunk, self._prefix = self._prefix[:n], self._prefix[n:]
        else:
            chunk = self._stream.read(n)
        b[: len(chunk)] = chunk
        return len(chunk)
