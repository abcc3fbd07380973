"""JSON Lines input (optionally .gz/.zst/.bz2/.xz): one document per line, fields mapped to the core columns.

Damage stays with the record. The file is read as bytes and split into lines here, and each line is decoded on its
own, so a byte that is not UTF-8 costs its line (`invalid_utf8`, or kept with U+FFFD under
`on_invalid_utf8: replace`), never the rest of the file. Compressed files are decoded member by member with the
codec's incremental decompressor, so a cut or corrupt stream keeps every line before the damage and counts the
damage as one rejection (`truncated_file`, `corrupt_file`). Other rejections: `invalid_json`, `not_an_object`,
`missing_text`, `invalid_text`, `invalid_id`, `line_too_large`, `unreadable_file`.
"""

from __future__ import annotations

import bz2
import json
import logging
import lzma
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
from fsspec.utils import infer_compression

from curate.errors import InputError
from curate.io.base import Reader, ReadUnit, open_input
from curate.io.parquet import common_root, relative_key
from curate.schema import CORE_SCHEMA, ID, SOURCE, TEXT, URL, reject_rows

log = logging.getLogger("curate.io")

# Bytes asked of a plain file per read.
_READ_BYTES = 1 << 20
# Compressed bytes fed to a decompressor per call: its output is lost when the call fails (a CRC that does not
# match, a corrupt block), so this bounds what the damage costs beyond its own line.
_RAW_BYTES = 64 << 10
# Bytes of lines per batch before it is handed on early (lines vary from a few bytes to many MB).
_BATCH_BYTES = 64 << 20
_BOM = "\ufeff"
_SURROGATES = re.compile("[\ud800-\udfff]")
UTF8_POLICIES = ("reject", "replace")


@dataclass(kw_only=True)
class JsonlReader(Reader):
    """JSON Lines files; `columns` maps a core column to the field holding it, e.g. {text: content}."""

    format = "jsonl"
    extensions = (".jsonl", ".json", ".ndjson", ".jsonl.zst", ".jsonl.bz2", ".jsonl.xz")

    columns: dict[str, str] = field(default_factory=dict)
    # Other fields carried to the output as string columns (JSON-encoded when not strings).
    keep_fields: list[str] = field(default_factory=list)
    # A line holding bytes that are not UTF-8: `reject` it (invalid_utf8), or `replace` them with U+FFFD and keep
    # it (counted as replaced_invalid_utf8). Rejecting is the default: a mis-decoded page is poor pretraining text.
    on_invalid_utf8: str = "reject"
    # A longer line is rejected as line_too_large without being held in memory.
    max_line_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        bad = set(self.columns) - {ID, TEXT, URL, SOURCE}
        if bad:
            raise InputError(f"input.columns may map only id, text, url, source; got {sorted(bad)}")
        if self.on_invalid_utf8 not in UTF8_POLICIES:
            raise InputError(f"input.on_invalid_utf8 must be reject or replace, not {self.on_invalid_utf8!r}")
        if self.max_line_bytes < 1:
            raise InputError("input.max_line_bytes must be at least 1")

    def units(self) -> list[ReadUnit]:
        files = self.files()
        root = common_root(files)
        return [ReadUnit(u.path, relative_key(u.path, root), u.size_bytes) for u in super().units()]

    def schema(self) -> pa.Schema:
        extra = [(name, pa.string()) for name in self.keep_fields if name not in CORE_SCHEMA.names]
        return pa.schema(list(CORE_SCHEMA) + extra)

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        out = _Batches(self, unit, self.schema())
        try:
            chunks = _chunks(unit.path)
        except (OSError, ValueError) as e:
            log.warning("cannot open %s: %s", unit.path, e)
            out.reject({ID: unit.key}, "unreadable_file")
            yield from out.flush()
            return
        names = {core: self.columns.get(core, core) for core in (ID, TEXT, URL, SOURCE)}
        replace = self.on_invalid_utf8 == "replace"
        max_bytes = self.max_line_bytes
        line_no = 0
        try:
            for lines in _lines(chunks, max_bytes):
                if lines is None:
                    line_no += 1
                    out.reject(None, "line_too_large", line_no)
                    continue
                for raw in lines:
                    line_no += 1
                    if len(raw) > max_bytes:
                        out.reject(None, "line_too_large", line_no)
                        continue
                    bad_utf8 = False
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        text, bad_utf8 = raw.decode("utf-8", errors="replace"), True
                    try:
                        obj = json.loads(text)
                    except (ValueError, RecursionError):
                        obj = _parse_slow(text)
                        if obj is _BLANK:
                            continue
                    row, reason = self._row(obj, names, unit, line_no)
                    if bad_utf8:
                        if replace:
                            self.count("replaced_invalid_utf8")
                        else:
                            reason = "invalid_utf8"  # the bytes come first: the line is not even text
                    if reason:
                        out.reject(row, reason, line_no)
                        if out.full():
                            yield from out.flush()
                    elif out.add(row, len(raw)):
                        yield from out.flush()
        except _Damaged as e:
            # A cut or corrupt stream: the lines before are kept; the damage is one rejected record, named after
            # the line it starts in (a cut line is part of the damage, not an invalid_json of its own).
            log.warning("%s: %s after line %d: %s", unit.path, e.reason, line_no, e.__cause__ or e)
            out.reject(None, e.reason, line_no + 1)
        yield from out.flush()

    def _row(self, obj: Any, names: dict[str, str], unit: ReadUnit, line_no: int) -> tuple[dict[str, Any], str]:
        """The row of one parsed line, and "" or the reason it is rejected (the row then holds what was read)."""
        if type(obj) is not dict:
            return {}, "invalid_json" if obj is _INVALID else "not_an_object"
        reason = ""
        doc_id = obj.get(names[ID])
        if type(doc_id) is not str or not doc_id:
            if doc_id is None or doc_id == "":
                doc_id = f"{unit.key}:{line_no}"
            elif type(doc_id) is int:
                doc_id = str(doc_id)
            else:
                # str() of a float, a boolean or an object is not a faithful id (1e16, key order): say so
                reason = "invalid_id"
                doc_id = f"{unit.key}:{line_no}"
        text = obj.get(names[TEXT])
        if type(text) is not str:
            reason = reason or ("missing_text" if text is None else "invalid_text")
            text = None
        url = obj.get(names[URL])
        source = obj.get(names[SOURCE])
        row = {
            ID: doc_id,
            TEXT: text,
            URL: url if url is None or type(url) is str else json.dumps(url),
            SOURCE: unit.path if source is None else source if type(source) is str else json.dumps(source),
        }
        for name in self.keep_fields:
            row[name] = _as_str(obj.get(name))
        return row, reason


class _Batches:
    """Kept and rejected rows of one unit, handed out as tables of at most batch_rows rows (or _BATCH_BYTES)."""

    def __init__(self, reader: JsonlReader, unit: ReadUnit, schema: pa.Schema) -> None:
        self.reader = reader
        self.unit = unit
        self.schema = schema
        self.rows: list[dict[str, Any]] = []
        self.nbytes = 0
        self.rejected: list[dict[str, Any]] = []
        self.reasons: list[str] = []

    def add(self, row: dict[str, Any], nbytes: int) -> bool:
        """Keep `row`; True when the batch is full."""
        self.rows.append(row)
        self.nbytes += nbytes
        return len(self.rows) >= self.reader.batch_rows or self.nbytes >= _BATCH_BYTES

    def reject(self, row: dict[str, Any] | None, reason: str, line_no: int | None = None) -> None:
        """A rejected line: what could be read of it, or a placeholder named `key:line` (`key` for the file)."""
        if not row:
            row = {ID: self.unit.key if line_no is None else f"{self.unit.key}:{line_no}"}
        row.setdefault(SOURCE, self.unit.path)
        self.rejected.append(row)
        self.reasons.append(reason)

    def full(self) -> bool:
        limit = self.reader.batch_rows
        return len(self.rows) >= limit or self.nbytes >= _BATCH_BYTES or len(self.rejected) >= limit

    def flush(self) -> Iterator[pa.Table]:
        if self.rows:
            rows, self.rows, self.nbytes = self.rows, [], 0
            table = self._kept(rows)
            if table.num_rows:
                yield table
        if self.rejected:
            rows, reasons, self.rejected, self.reasons = self.rejected, self.reasons, [], []
            yield reject_rows(pa.Table.from_pylist([_repaired(r) for r in rows], schema=self.schema), reasons)

    def _kept(self, rows: list[dict[str, Any]]) -> pa.Table:
        try:
            return pa.Table.from_pylist(rows, schema=self.schema)
        except UnicodeEncodeError:
            pass
        # A "\ud800"-style escape left a lone surrogate, which has no UTF-8 form, so pyarrow refused the batch:
        # find the rows that hold one (this path runs only for such a batch).
        good: list[dict[str, Any]] = []
        for row in rows:
            if not any(isinstance(v, str) and _SURROGATES.search(v) for v in row.values()):
                good.append(row)
            elif self.reader.on_invalid_utf8 == "replace":
                good.append(_repaired(row))
                self.reader.count("replaced_invalid_utf8")
            else:
                self.reject(row, "invalid_utf8")
        return pa.Table.from_pylist(good, schema=self.schema)


class _Damaged(Exception):
    """The byte stream cannot go on: `reason` is truncated_file or corrupt_file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_BLANK = object()  # a line holding only whitespace: not a document
_INVALID = object()  # a line that is not JSON


def _parse_slow(text: str) -> Any:
    """A line json.loads refused: blank, led by a byte-order mark (json refuses one), or not JSON."""
    stripped = text.lstrip(_BOM)
    if not stripped.strip():
        return _BLANK
    if stripped is not text:
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            pass
    return _INVALID


def _as_str(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _repaired(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with lone surrogates replaced by U+FFFD, so that it can be stored."""
    return {k: _SURROGATES.sub("\ufffd", v) if isinstance(v, str) else v for k, v in row.items()}


def _lines(chunks: Iterator[bytes], max_line_bytes: int) -> Iterator[list[bytes] | None]:
    """Lists of whole lines (newline removed; the last line may lack one); None for one line longer than
    max_line_bytes that spanned reads, which is skipped without being held."""
    head: list[bytes] = []  # the start of a line that goes on in the next chunk
    held = 0
    skipping = False
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if not skipping:
                head.append(chunk)
                held += len(chunk)
                if held > max_line_bytes:
                    head, held, skipping = [], 0, True
            continue
        block = chunk[: cut + 1]
        if skipping:
            block = block[block.find(b"\n") + 1 :]
            skipping = False
            yield None
        elif head:
            head.append(block)
            block = b"".join(head)
        head, held = [chunk[cut + 1 :]], len(chunk) - cut - 1
        lines = block.split(b"\n")
        lines.pop()  # the empty string after the block's last newline
        if lines:
            yield lines
    if skipping:
        yield None
    elif held:
        yield [b"".join(head)]


def _chunks(path: str) -> Iterator[bytes]:
    """The decompressed bytes of `path` in chunks; opens the file before returning (so that opening fails here)."""
    codec = _codec(path)
    if codec in _DECOMPRESSORS or codec is None:
        raw = open_input(path, "rb", compression=None)
        if codec is None:
            return _plain(raw)
        new = _DECOMPRESSORS[codec]()
        if new is not None:
            return _decompressed(raw, new)
        return _arrow_stream(raw, codec)
    return _plain(open_input(path, "rb", compression=codec))  # zip, lz4, snappy: fsspec's own


def _codec(path: str) -> str | None:
    name = path.lower()
    if name.endswith((".zst", ".zstd")):
        return "zstd"
    if name.endswith(".lzma"):
        return "xz"
    return infer_compression(name)


def _plain(raw: BinaryIO) -> Iterator[bytes]:
    with raw:
        while True:
            try:
                chunk = raw.read(_READ_BYTES)
            except Exception as e:  # an I/O error, or a decoder fsspec chose (zip, lz4, snappy) failing
                raise _Damaged("truncated_file" if _is_truncation(e) else "corrupt_file") from e
            if not chunk:
                return
            yield chunk


def _decompressed(raw: BinaryIO, new: Callable[[], Any]) -> Iterator[bytes]:
    """Decode a stream of one or more compressed members (gzip members, bz2 streams, zstd frames, xz streams)
    with the codec's incremental decompressor, so that everything before a cut or a corrupt byte comes out."""
    with raw:
        d = new()
        fed = False  # the current member has begun
        while data := _read(raw):
            while data:
                try:
                    out = d.decompress(data)
                except Exception as e:  # zlib.error, OSError, LZMAError, ZstdError: a byte the codec cannot take
                    raise _Damaged("corrupt_file") from e
                fed = True
                if out:
                    yield out
                if not d.eof:
                    break
                data = d.unused_data.lstrip(b"\0")  # the next member (NUL padding between members is allowed)
                d, fed = new(), False
        if fed and not d.eof:
            raise _Damaged("truncated_file")  # the stream ends before its end marker


def _read(raw: BinaryIO) -> bytes:
    try:
        return raw.read(_RAW_BYTES)
    except OSError as e:
        raise _Damaged("corrupt_file") from e


def _arrow_stream(raw: BinaryIO, codec: str) -> Iterator[bytes]:
    """pyarrow's decoder, when the zstandard module is missing: pyarrow hands out whole buffers only, so a cut
    stream may lose what it held (up to about 1 MiB) before the damage, which is still counted."""
    with raw:
        stream = pa.CompressedInputStream(raw, codec)
        while True:
            try:
                chunk = stream.read(_READ_BYTES)
            except OSError as e:  # "Truncated compressed stream", "ZSTD decompress failed: ..."
                raise _Damaged("truncated_file" if _is_truncation(e) else "corrupt_file") from e
            if not chunk:
                return
            yield chunk


def _zstandard() -> Callable[[], Any] | None:
    try:
        import zstandard
    except ImportError:
        return None
    return lambda: zstandard.ZstdDecompressor().decompressobj()


def _is_truncation(e: BaseException) -> bool:
    return isinstance(e, EOFError) or "truncated" in str(e).lower() or "ended before" in str(e)


# codec -> () -> a factory of incremental decompressors (objects with decompress(), eof and unused_data), or None
_DECOMPRESSORS: dict[str, Callable[[], Callable[[], Any] | None]] = {
    "gzip": lambda: lambda: zlib.decompressobj(31),  # wbits 31: a gzip header and trailer (its CRC is checked)
    "bz2": lambda: bz2.BZ2Decompressor,
    "xz": lambda: lzma.LZMADecompressor,
    "zstd": lambda: _zstandard(),
}
