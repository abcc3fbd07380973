"""WARC framing: where records start and end in a file's bytes, and what warcio's iterator does at damage.

Sniffing a file (per-record gzip, one gzip stream, plain; WARC or ARC), finding the next record after a byte
offset (a gzip member that decompresses to `WARC/`, or a `WARC/x.y` line), telling whether a record ends where its
Content-Length says, and the exceptions the reader resynchronises on (curate.io.warc reads with them).
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

GZIP_MAGIC = b"\x1f\x8b\x08"
_PLAIN_RECORD = re.compile(rb"(?:^|\n)(WARC/\d\.\d+\r?\n)")
_SCAN_CHUNK = 1 << 20


class SingleStream(Exception):
    """The file is one gzip stream around many records; it must be read front to back."""


class Resync(Exception):
    """Read on from the first record that starts after byte `offset` (what came before is accounted for)."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class Damaged(Exception):
    """Reading cannot go on from here; `reason` names why and `offset` where (None: resynchronising is not
    possible, the rest of the unit is rejected)."""

    def __init__(self, reason: str, offset: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def guarded(it: Any, single_stream_ok: bool = False) -> Iterator[Any]:
    """warcio's iterator, with its failures turned into Damaged at the record where they happen."""
    while True:
        try:
            record = next(it)
        except StopIteration:
            return
        except SingleStream:
            raise
        except (zlib.error, EOFError) as e:
            raise Damaged("truncated_record" if isinstance(e, EOFError) else "corrupt_record", None) from e
        except Exception as e:  # ArchiveLoadFailed, a header warcio cannot parse, ...
            if not single_stream_ok and "non-chunked gzip" in str(e):
                raise SingleStream() from e
            raise Damaged("corrupt_record", None) from e
        yield record


def misframed(it: Any, record: Any, raw: BinaryIO, gz: bool, offset: int) -> int | None:
    """None when the record ends where the next one begins (or the file ends); else the offset to resynchronise
    after: the record's own (its Content-Length is wrong), or just before a record that follows it without the
    blank lines WARC asks for (warcio would take that record's first line for a blank one)."""
    try:
        while record.raw_stream.read(1 << 16):  # the payload of a skipped record is not read yet
            pass
    except Exception as e:
        raise Damaged("corrupt_record", None) from e
    if gz:
        # inside a gzip member, anything but blank lines after the block means the length was short
        errors = it.err_count
        try:
            it.read_to_end()
        except Exception as e:
            raise Damaged("corrupt_record", None) from e
        return None if it.err_count == errors else offset
    here = raw.tell()
    block_end = here - it.reader.rem_length()
    raw.seek(block_end)
    ahead = raw.read(4096)
    short = getattr(record.raw_stream, "limit", 0)
    inner = next_record(raw, offset, False, None) if short else None
    raw.seek(here)
    if inner is not None:
        return offset  # the file ended inside a block that holds another record: the length was too long
    if not ahead or ahead.startswith((b"\r\n\r\n", b"\n\n")) or not ahead.strip(b"\r\n"):
        return None  # the two newlines WARC puts after a block (what follows them is the next record's business)
    if ahead.startswith(b"WARC/"):
        return block_end - 1  # a writer that leaves them out: the next record starts right here
    return offset


def peek(raw: BinaryIO, n: int) -> tuple[bool, bytes]:
    """(is gzip, the first bytes of the file, decompressed when it is gzip)."""
    try:
        pos = raw.tell()
        head = raw.read(n * 8)
        raw.seek(pos)
    except (OSError, ValueError):
        return False, b""
    if head.startswith(GZIP_MAGIC):
        try:
            return True, zlib.decompressobj(31).decompress(head, n)
        except zlib.error:
            return True, b"\0"
    return False, head[:n]


def sniff(gz: bool, head: bytes) -> str:
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


def seekable(raw: BinaryIO) -> bool:
    try:
        return bool(raw.seekable())
    except (AttributeError, OSError):
        return False


def stream_size(raw: BinaryIO) -> int | None:
    try:
        pos = raw.tell()
        size = raw.seek(0, io.SEEK_END)
        raw.seek(pos)
        return int(size)
    except (OSError, ValueError):
        return None


def has_data(raw: BinaryIO, offset: int, size: int) -> bool:
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


def next_record(raw: BinaryIO, after: int, gz: bool, end: int | None) -> int | None:
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
            i = buf.find(GZIP_MAGIC)
            while i >= 0:
                if end is not None and base + i >= end:
                    return None
                if _member_starts_record(raw, base + i):
                    return base + i
                i = buf.find(GZIP_MAGIC, i + 1)
        else:
            for m in _PLAIN_RECORD.finditer(buf):
                at = base + m.start(1)
                if at > after and (end is None or at < end):
                    return at
        carry = buf[-16:]
        pos += len(chunk)
        raw.seek(pos)
    return None


class ArcFixup(io.RawIOBase):
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
