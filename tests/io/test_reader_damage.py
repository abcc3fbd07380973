"""Damage stays with the record (issue 10, case 1): one bad byte, line, row group or compressed tail costs the
records it touches, counted under a named reason, and every other record is read."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import random
import tracemalloc
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.io import jsonl as jsonl_mod
from curate.io.jsonl import JsonlReader
from curate.io.parquet import ParquetReader
from curate.schema import REASON

BAD_BYTE = b'{"id": "d50", "text": "caf\xe9 au lait"}'


def line(i: int, pad: int = 60) -> bytes:
    """Document `i` as a JSON line, with about `pad` bytes of words that compress like text, not like a pattern."""
    rng = random.Random(i)
    words = " ".join(f"w{rng.randrange(100_000)}" for _ in range(pad // 7))
    return json.dumps({"id": f"d{i}", "text": f"document {i} {words}"}).encode()


def hundred_with_a_bad_byte() -> bytes:
    """The issue's file: 100 JSON lines, line 51 holding one byte that is not UTF-8."""
    lines = [line(i) for i in range(100)]
    lines[50] = BAD_BYTE
    return b"\n".join(lines) + b"\n"


def read(path: Path | str, reader_cls: type = JsonlReader, **options) -> tuple[list[dict], list[dict], dict]:
    """(kept rows, rejected rows, reader counters) of every unit of `path`."""
    reader = reader_cls(path=str(path), **options)
    kept, rejected = [], []
    for unit in reader.units():
        for table in reader.read(unit):
            for row in table.to_pylist():
                (rejected if row.get(REASON) else kept).append(row)
    return kept, rejected, reader.__dict__.get("_counters", {})


def reasons(rejected: list[dict]) -> list[tuple[str, str]]:
    return [(r["id"], r[REASON]) for r in rejected]


# -- JSONL: one line's damage is one rejected line --------------------------------------------------------------


def test_one_invalid_utf8_byte_rejects_its_line_and_keeps_the_other_99(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(hundred_with_a_bad_byte())
    kept, rejected, _ = read(path)
    assert [r["id"] for r in kept] == [f"d{i}" for i in range(100) if i != 50]
    assert reasons(rejected) == [("d50", "invalid_utf8")]
    # the rejected row is the document as far as it could be read, so the rejected shard shows what was lost
    assert rejected[0]["text"] == "caf\ufffd au lait"


def test_invalid_utf8_can_be_replaced_and_is_then_counted(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(hundred_with_a_bad_byte())
    kept, rejected, counters = read(path, on_invalid_utf8="replace")
    assert len(kept) == 100 and not rejected
    assert kept[50]["text"] == "caf\ufffd au lait"
    assert counters == {"replaced_invalid_utf8": 1}


def test_on_invalid_utf8_takes_only_reject_or_replace():
    from curate.errors import InputError

    with pytest.raises(InputError, match="on_invalid_utf8"):
        JsonlReader(path="x.jsonl", on_invalid_utf8="ignore")


def test_a_lone_surrogate_escape_rejects_its_line_not_the_batch(tmp_path):
    # valid JSON, but "\ud800" decodes to a string that has no UTF-8 form: pyarrow refuses the whole batch
    lines = [line(i) for i in range(5)]
    lines[2] = b'{"id": "s", "text": "half a pair \\ud800 here"}'
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    kept, rejected, _ = read(path)
    assert [r["id"] for r in kept] == ["d0", "d1", "d3", "d4"]
    assert reasons(rejected) == [("s", "invalid_utf8")]
    assert rejected[0]["text"] == "half a pair \ufffd here"
    kept, rejected, counters = read(path, on_invalid_utf8="replace")
    assert len(kept) == 5 and kept[2]["text"] == "half a pair \ufffd here" and counters == {"replaced_invalid_utf8": 1}


def test_a_byte_order_mark_does_not_cost_the_first_document(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(line(i) for i in range(3)) + b"\n")
    kept, rejected, _ = read(path)
    assert [r["id"] for r in kept] == ["d0", "d1", "d2"] and not rejected


def test_line_edge_cases_each_cost_exactly_their_line(tmp_path):
    raw = [
        line(0) + b"\r",  # \r\n ending
        b"",  # blank lines are not documents
        b"  \t\r",
        b"[1, 2]",  # valid JSON, not an object
        b'"just a string"',
        b"{not json",
        b'{"id": "nt", "body": "no text field"}',
        b'{"id": "nullt", "text": null}',
        b'{"id": "lt", "text": ["a", "list"]}',
        b'{"id": 7, "text": "an integer id is its decimal string"}',
        b'{"text": "no id: the line gives one"}',
        b'{"id": "", "text": "an empty id is no id"}',
        b'{"id": {"a": 1}, "text": "an object is not an id"}',
        b'{"id": true, "text": "nor is a boolean"}',
        b'{"id": 1.5, "text": "nor a float"}',
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to exhaust the parser's recursion
        b'{"id": "u", "text": "line\xe2\x80\xa8separator and \xc2\x85 next-line inside a string"}',
        line(99),  # the last line has no newline
    ]
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b"\n".join(raw))
    kept, rejected, _ = read(path)
    assert [r["id"] for r in kept] == ["d0", "7", "edge.jsonl:11", "edge.jsonl:12", "u", "d99"]
    assert kept[4]["text"] == "line\u2028separator and \x85 next-line inside a string"
    assert reasons(rejected) == [
        ("edge.jsonl:4", "not_an_object"),
        ("edge.jsonl:5", "not_an_object"),
        ("edge.jsonl:6", "invalid_json"),
        ("nt", "missing_text"),
        ("nullt", "missing_text"),
        ("lt", "invalid_text"),
        ("edge.jsonl:13", "invalid_id"),
        ("edge.jsonl:14", "invalid_id"),
        ("edge.jsonl:15", "invalid_id"),
        ("edge.jsonl:16", "invalid_json"),
    ]


def test_a_huge_line_is_rejected_without_being_held_in_memory(tmp_path):
    big = b'{"id": "big", "text": "' + b"x" * (40 << 20) + b'"}'
    path = tmp_path / "huge.jsonl"
    path.write_bytes(line(0) + b"\n" + big + b"\n" + line(1) + b"\n" + b'{"text": "' + b"y" * 5000 + b'"}\n' + line(2))
    tracemalloc.start()
    try:
        kept, rejected, _ = read(path, max_line_bytes=4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["id"] for r in kept] == ["d0", "d1", "d2"]
    assert reasons(rejected) == [("huge.jsonl:2", "line_too_large"), ("huge.jsonl:4", "line_too_large")]
    assert peak < 16 << 20, f"peak {peak >> 20} MiB for a 40 MiB line"


def _complete_lines(decompressed_prefix: bytes) -> int:
    return decompressed_prefix.count(b"\n")


@pytest.mark.parametrize("codec", ["gz", "zst", "bz2", "xz"])
def test_a_truncated_compressed_file_keeps_every_line_before_the_cut(tmp_path, codec):
    data = b"\n".join(line(i, pad=300) for i in range(4000)) + b"\n"
    if codec == "gz":
        blob = gzip.compress(data)
    elif codec == "zst":
        zstd = pytest.importorskip("zstandard")
        blob = zstd.ZstdCompressor().compress(data)
    elif codec == "bz2":
        blob = bz2.compress(data)
    else:
        blob = lzma.compress(data)
    cut = blob[: len(blob) * 2 // 3]
    # what a decoder can recover from the cut stream, whole lines only
    if codec == "gz":
        recoverable = _complete_lines(zlib.decompressobj(31).decompress(cut))
    elif codec == "zst":
        recoverable = _complete_lines(zstd.ZstdDecompressor().decompressobj().decompress(cut))
    elif codec == "bz2":
        recoverable = _complete_lines(bz2.BZ2Decompressor().decompress(cut))
    else:
        recoverable = _complete_lines(lzma.LZMADecompressor().decompress(cut))
    path = tmp_path / f"cut.jsonl.{codec}"
    path.write_bytes(cut)
    kept, rejected, _ = read(path)
    assert [r["id"] for r in kept] == [f"d{i}" for i in range(recoverable)]
    assert reasons(rejected) == [(f"cut.jsonl.{codec}:{recoverable + 1}", "truncated_file")]


@pytest.mark.parametrize("codec", ["gz", "zst", "bz2", "xz"])
def test_intact_compressed_files_and_concatenated_members_read_whole(tmp_path, codec):
    data = [b"\n".join(line(i) for i in range(k, k + 50)) + b"\n" for k in (0, 50)]
    if codec == "gz":
        blob = gzip.compress(data[0]) + gzip.compress(data[1])
    elif codec == "zst":
        zstd = pytest.importorskip("zstandard")
        blob = zstd.ZstdCompressor().compress(data[0]) + zstd.ZstdCompressor().compress(data[1])
    elif codec == "bz2":
        blob = bz2.compress(data[0]) + bz2.compress(data[1])
    else:
        blob = lzma.compress(data[0]) + lzma.compress(data[1])
    path = tmp_path / f"two.jsonl.{codec}"
    path.write_bytes(blob)
    kept, rejected, _ = read(path)
    assert [r["id"] for r in kept] == [f"d{i}" for i in range(100)] and not rejected


def test_zstd_without_the_zstandard_module_is_read_with_pyarrow(tmp_path, monkeypatch):
    data = b"\n".join(line(i) for i in range(100)) + b"\n"
    path = tmp_path / "a.jsonl.zst"
    path.write_bytes(pa.compress(data, "zstd", asbytes=True))
    monkeypatch.setattr(jsonl_mod, "_zstandard", lambda: None)
    kept, rejected, _ = read(path)
    assert len(kept) == 100 and not rejected
    cut = tmp_path / "cut.jsonl.zst"
    blob = pa.compress(b"\n".join(line(i, pad=300) for i in range(4000)) + b"\n", "zstd", asbytes=True)
    cut.write_bytes(blob[: len(blob) // 2])
    kept, rejected, _ = read(cut)
    # pyarrow's stream hands out whole buffers only: what it held at the cut is lost, but the cut is named
    assert [r["id"] for r in kept] == [f"d{i}" for i in range(len(kept))]
    assert [r[REASON] for r in rejected] == ["truncated_file"]


def test_a_corrupt_byte_in_a_gzip_stream_keeps_what_came_before(tmp_path):
    data = b"\n".join(line(i, pad=300) for i in range(4000)) + b"\n"
    blob = bytearray(gzip.compress(data, compresslevel=1))
    for k in range(len(blob) // 2, len(blob) // 2 + 64):
        blob[k] ^= 0x5A
    path = tmp_path / "flip.jsonl.gz"
    path.write_bytes(bytes(blob))
    kept, rejected, _ = read(path)
    ids = [r["id"] for r in kept]
    assert len(ids) > 1000 and ids[:1000] == [f"d{i}" for i in range(1000)]
    # the bytes decoded past the flip are garbage: their lines are rejected, not kept as documents
    original = {json.loads(x)["id"]: json.loads(x)["text"] for x in data.splitlines()}
    assert all(original.get(r["id"]) == r["text"] for r in kept)
    assert [r[REASON] for r in rejected].count("corrupt_file") == 1 and rejected[-1][REASON] == "corrupt_file"


def test_a_file_that_cannot_be_opened_is_one_rejection(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(line(0) + b"\n")
    (tmp_path / "in" / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")  # listed, but cannot be opened
    kept, rejected, _ = read(tmp_path / "in")
    assert [r["id"] for r in kept] == ["d0"] and reasons(rejected) == [("gone.jsonl", "unreadable_file")]


# -- the whole pipeline: conservation with the bad line counted ---------------------------------------------------

PIPE = """
name: damage
input: {format: jsonl, path: in.jsonl}
output: {path: out}
engine: {batch_rows: 10, progress_seconds: 0}
stages: []
"""


def _pipeline_run(tmp_path: Path, monkeypatch, runner: str) -> dict:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_bytes(hundred_with_a_bad_byte())
    write_pipeline(tmp_path / "p.yaml", PIPE)
    stats = engine.run(config.load("p.yaml"), runner=runner)
    assert stats["input_docs"] == 100 and stats["conserved"]
    assert stats["output_docs"] == 99 and stats["rejected_docs"] == 1
    assert stats["input_docs"] == stats["output_docs"] + stats["rejected_docs"]
    assert stats["stages"][0]["reasons"] == {"invalid_utf8": 1}
    kept = sorted(pq.read_table(tmp_path / "out" / "data").column("id").to_pylist())
    assert kept == sorted(f"d{i}" for i in range(100) if i != 50)
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "input")
    assert rejected.column("id").to_pylist() == ["d50"]
    return stats


def test_the_bad_byte_file_through_the_local_runner(tmp_path, monkeypatch):
    _pipeline_run(tmp_path, monkeypatch, "local")


@pytest.mark.ray
def test_the_bad_byte_file_through_the_ray_runner(tmp_path, monkeypatch, ray_session):
    _pipeline_run(tmp_path, monkeypatch, "ray")


# -- Parquet: a damaged row group costs its own rows, counted from the footer -------------------------------------


def _five_row_groups(path: Path) -> None:
    t = pa.table({"id": [f"p{i}" for i in range(50)], "text": [f"text of document {i} " * 5 for i in range(50)]})
    pq.write_table(t, path, row_group_size=10)


def test_a_damaged_row_group_costs_its_rows_and_no_others(tmp_path):
    path = tmp_path / "rg.parquet"
    _five_row_groups(path)
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(2).column(1)  # the text column of rows 20..29
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    blob = bytearray(path.read_bytes())
    blob[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(blob))
    kept, rejected, _ = read(path, ParquetReader)
    assert [r["id"] for r in kept] == [f"p{i}" for i in range(50) if not 20 <= i < 30]
    assert reasons(rejected) == [(f"rg.parquet:{i}", "corrupt_row_group") for i in range(20, 30)]


def test_a_parquet_file_whose_footer_is_destroyed_is_one_rejection(tmp_path):
    (tmp_path / "in").mkdir()
    _five_row_groups(tmp_path / "in" / "a.parquet")
    path = tmp_path / "in" / "nofooter.parquet"
    _five_row_groups(path)
    blob = bytearray(path.read_bytes())
    blob[-200:-4] = b"\0" * 196  # the footer (its length and the trailing PAR1 magic survive)
    path.write_bytes(bytes(blob))
    kept, rejected, _ = read(tmp_path / "in", ParquetReader)
    assert len(kept) == 50 and reasons(rejected) == [("nofooter.parquet", "unreadable_parquet")]


def test_invalid_utf8_in_a_parquet_string_column_rejects_that_row(tmp_path):
    path = tmp_path / "u.parquet"
    t = pa.table({"id": ["a", "b", "c"], "text": ["first caf\u00e9", "second cafe", "third cafe"]})
    pq.write_table(t, path, compression="none", use_dictionary=False)
    path.write_bytes(path.read_bytes().replace(b"second cafe", b"second caf\xe9"))
    kept, rejected, _ = read(path, ParquetReader)
    assert [r["id"] for r in kept] == ["a", "c"]
    assert reasons(rejected) == [("b", "invalid_utf8")] and rejected[0]["text"] == "second caf\ufffd"
    kept, rejected, counters = read(path, ParquetReader, on_invalid_utf8="replace")
    assert [r["text"] for r in kept] == ["first caf\u00e9", "second caf\ufffd", "third cafe"] and not rejected
    assert counters == {"replaced_invalid_utf8": 1}


def test_a_binary_text_column_is_decoded_row_by_row(tmp_path):
    path = tmp_path / "b.parquet"
    t = pa.table({"id": ["a", "b"], "text": pa.array([b"caf\xc3\xa9", b"caf\xe9"], pa.binary())})
    pq.write_table(t, path)
    kept, rejected, _ = read(path, ParquetReader)
    assert [(r["id"], r["text"]) for r in kept] == [("a", "caf\u00e9")]
    assert reasons(rejected) == [("b", "invalid_utf8")]


def test_on_invalid_utf8_replace_from_the_pipeline_file_keeps_all_100_and_counts_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_bytes(hundred_with_a_bad_byte())
    write_pipeline(tmp_path / "p.yaml", PIPE)
    stats = engine.run(config.load("p.yaml", ["input.on_invalid_utf8=replace"]), runner="local")
    assert stats["input_docs"] == stats["output_docs"] == 100 and stats["conserved"]
    assert stats["stages"][0]["counters"] == {"replaced_invalid_utf8": 1}
