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

Here: the reader, its read units and its record iteration; one record -> a row in warc_record.py; where records
start and end in the bytes, and resynchronising after damage, in warc_frame.py.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
from fsspec.core import url_to_fs

from curate.errors import InputError, require
from curate.io.base import Reader, ReadUnit, file_size, open_input
from curate.io.parquet import common_root, relative_key
from curate.io.warc_frame import (
    GZIP_MAGIC,
    ArcFixup,
    Damaged,
    Resync,
    SingleStream,
    guarded,
    has_data,
    misframed,
    next_record,
    peek,
    seekable,
    sniff,
    stream_size,
)
from curate.io.warc_record import (
    CRAWL,
    HTML,
    WARC_SCHEMA,
    Documents,
    clean_uri,
    placeholder,
    record_id,
    warcinfo_part_of,
)
from curate.schema import ID, SOURCE, TEXT, URL, reject_rows

log = logging.getLogger("curate.io")

_CRAWL_IN_PATH = re.compile(r"CC-MAIN-\d{4}-\d{2}")
# Payload bytes per batch before it is handed on early (HTML pages vary from 1 KB to many MB).
_BATCH_BYTES = 64 << 20
# Object stores and local files can be read from an offset cheaply; a plain HTTP server may not support ranges.
_SPLITTABLE_PROTOCOLS = {"file", "local", "s3", "s3a", "gs", "gcs", "abfs", "az", "adl", "hdfs"}
# What a unit of a remote file fetches per request (its read-ahead), by the unit's size within these bounds: a unit
# reads its own byte range and little past it, not the filesystem's default read-ahead (s3fs: 50 MiB from wherever
# the unit starts, so 1 MiB units of a 35 MB file would fetch ~17 MB each).
_MIN_RANGE_BYTES = 1 << 20
_MAX_RANGE_BYTES = 16 << 20


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
        self._documents = Documents(
            record_types=frozenset(t.lower() for t in self.record_types),
            content_types=frozenset(t.lower() for t in self.content_types),
            statuses=frozenset(int(s) for s in self.statuses),
            max_payload_bytes=self.max_payload_bytes,
        )
        self._warcinfo: dict[str, str | None] = {}

    # -- the Reader contract ---------------------------------------------------------------------------------

    def schema(self) -> pa.Schema:
        return WARC_SCHEMA

    def units(self) -> list[ReadUnit]:
        files = self.files()
        root = common_root(files)
        sizes = [file_size(f) for f in files]
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
            span = (end - start) if end is not None else _MAX_RANGE_BYTES
            raw = open_input(path, compression=None, block_size=min(max(span, _MIN_RANGE_BYTES), _MAX_RANGE_BYTES))
        except (OSError, ValueError) as e:
            log.warning("cannot open %s: %s", path, e)
            yield "reject", placeholder(rel, "unreadable_file")
            return
        with raw:
            # a later unit of a split file is per-record gzip (units() splits no other); reading the file's head
            # for it would fetch a range it does not need
            gz, head = peek(raw, 512) if start == 0 else (True, b"")
            kind = sniff(gz, head) if start == 0 else "warc_gz"
            if kind in ("empty", "not_warc"):
                if kind == "not_warc":
                    log.warning("%s is not a WARC/ARC file (starts with %r)", path, head[:40])
                yield "reject", placeholder(rel, "empty_file" if kind == "empty" else "not_warc")
                return
            if kind in ("warc_gz", "warc_plain") and seekable(raw):
                emitted = 0
                try:
                    for item in self._members(raw, rel, start, end, kind == "warc_gz", skipped):
                        emitted += 1
                        yield item
                    return
                except SingleStream:
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

        size = stream_size(raw)
        pos: int | None = start if start == 0 else next_record(raw, start - 1, gz, end)
        while pos is not None and (end is None or pos < end):
            raw.seek(pos)
            it = ArchiveIterator(raw, arc2warc=True)
            offset = pos
            try:
                for n, record in enumerate(guarded(it)):
                    offset = it.offset
                    if end is not None and offset >= end:
                        return
                    item = self._documents.convert(record, rel, offset, n, skipped)
                    resync = misframed(it, record, raw, gz, offset)
                    document_typed = (record.rec_type or "").lower() in self._documents.record_types
                    if resync == offset and (item[0] != "skip" or document_typed):
                        # The record's Content-Length is wrong: its payload is not what the record holds (cut
                        # short, or the records after it swallowed), and a document-typed record skipped for what
                        # its payload looked like may have been one. Reject it; read on from the next record.
                        row = {k: v for k, v in item[1].items() if k not in (HTML, TEXT, "reason")}
                        row.setdefault(ID, record_id(record, rel, offset, n))
                        row.setdefault(URL, clean_uri(record.rec_headers.get_header("WARC-Target-URI")))
                        item = ("reject", {**row, "reason": "corrupt_record"})
                    yield item
                    if resync is not None:
                        raise Resync(resync)
                offset = it.offset
                pos = None
                # warcio ends quietly at a gzip member cut short; bytes left over mean a record was lost there
                if size is not None and offset < size and has_data(raw, offset, size):
                    yield "reject", placeholder(rel, "truncated_record", offset)
                    pos = next_record(raw, offset, gz, end)
            except Damaged as e:
                at = it.offset if e.offset is None else e.offset
                yield "reject", placeholder(rel, e.reason, at)
                pos = next_record(raw, at, gz, end)
            except Resync as e:
                pos = next_record(raw, e.offset, gz, end)

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
            stream = ArcFixup(stream)  # type: ignore[assignment]
        it = ArchiveIterator(stream, arc2warc=True)
        n = -1
        try:
            for n, record in enumerate(guarded(it, single_stream_ok=True)):  # noqa: B007
                item = self._documents.convert(record, rel, None, n, skipped, arc=kind.startswith("arc"))
                if item[0] != "skip":
                    if skip > 0:
                        skip -= 1
                        continue
                yield item
            if stream is not raw:
                stream.read(1)  # warcio ends quietly at a cut gzip stream; GzipFile tells
        except Damaged as e:
            yield "reject", placeholder(rel, e.reason, None, n + 1)
        except (OSError, EOFError, zlib.error) as e:  # gzip.GzipFile on a truncated or corrupt stream
            log.warning("%s: unreadable after record %d: %s", rel, n + 1, e)
            yield "reject", placeholder(rel, "truncated_record" if isinstance(e, EOFError) else "corrupt_record")

    def _crawl(self, path: str) -> str | None:
        """The crawl name: CC-MAIN-YYYY-WW when the path shows it, else the warcinfo record's isPartOf."""
        m = _CRAWL_IN_PATH.search(path)
        if m:
            return m.group(0)
        if path not in self._warcinfo:
            self._warcinfo[path] = warcinfo_part_of(path)
        return self._warcinfo[path]


# -- helpers ---------------------------------------------------------------------------------------------------


def _require_warcio() -> None:
    hint = "pip install warcio (a dependency of curate: reinstalling curate brings it)"
    require("warcio", "warcio", "web", what="reading WARC files", hint=hint)


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
        fs, p = url_to_fs(path)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol not in _SPLITTABLE_PROTOCOLS:
            return False
        data = fs.cat_file(p, start=0, end=1 << 20)  # one ranged request on object storage, not a whole file
        if not data.startswith(GZIP_MAGIC):
            return False
        d = zlib.decompressobj(31)
        d.decompress(data, 1 << 16)
        while not d.eof and d.unconsumed_tail:
            d.decompress(d.unconsumed_tail, 1 << 16)
        return d.eof and d.unused_data.startswith(GZIP_MAGIC)
    except Exception:
        return False
