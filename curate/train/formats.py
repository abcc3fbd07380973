"""Token shards for other trainers: `curate tokenize --format megatron | datatrove | litdata`.

Every non-empty document of the input becomes one sequence of token ids:

    [BOS] + tokenizer.encode(text) + [EOS]

EOS (the tokenizer's end-of-text token, as in curate's own shards) always follows a document; BOS comes first only
with `bos=` (`--bos`): the tokenizer's begin-of-text token, or its EOS token where it has none (GPT-2's layout, as
Hugging Face's GPT-2 tokenizer does). Documents with empty text are skipped, as in curate's own shards. There is no
train/validation split: Megatron, nanotron and litdata make their own.

Formats (each shard holds whole documents, at most `shard_tokens` tokens unless one document alone is longer):

- megatron: Megatron-LM's indexed dataset, `<prefix>.bin` (token ids, uint16 below a vocabulary of 65,500 else
  int32, as megatron's preprocess_data.py picks) and `<prefix>.idx` (header `MMIDIDX\\x00\\x00`, version 1, dtype
  code, sequence count, document count, int32 sequence lengths, int64 byte pointers, int64 document indices), one
  sequence per document: what `megatron.core.datasets.indexed_dataset.IndexedDataset(prefix)` reads. The prefixes
  are listed in tokens.json (`data_path`), ready for `--data-path`.
- datatrove: what datatrove's `DocumentTokenizer` writes and nanotron's datatrove loader
  (`datatrove.utils.dataset.DatatroveFolderDataset`) reads: `<name>.ds` (uint16 token ids, uint32 above a
  vocabulary of 65,536), `<name>.ds.index` (uint64 end offset, in tokens, of every document) and `<name>.ds.metadata`
  (`<tokenizer>|<token size>`, token count, rounded count).
- litdata: litdata "optimized" chunks that `litdata.StreamingDataset(OUT)` reads, written with litdata's own
  `BinaryWriter`: one chunk per shard, one item per document (a 1-D numpy array of token ids), and litdata's
  index.json over all chunks.

With a shuffle seed, the documents of every input file are shuffled (datatrove's DocumentTokenizer also shuffles
within a file) and the input files' order in tokens.json and litdata's index.json is shuffled too: `doc_order` and
`unit_order` give the orders. Each input file is a unit: `<key>.json`, written last, marks it done, so a rerun
skips the files already tokenized with the same settings (and rebuilds those whose input or settings changed).
`<key>.docs.parquet` keeps every document's id, token count (special tokens included), shard and row in the shard.
tokens.json, written at the end, lists the shards in reading order with their document and token counts, and
`text_tokens`: the documents' tokens without the special ones, which is what a pipeline run with the same tokenizer
(`output.tokenizer`) counts in stats.json (`written_tokens`).

An input with no documents gives a valid empty output: tokens.json with no shards; for datatrove one empty .ds
(its reader then has length 0); for litdata an index.json with no chunks (litdata's StreamingDataset refuses to open
an empty dataset); for megatron no .bin/.idx pair (IndexedDataset cannot map an empty .bin).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import time
import uuid
from itertools import chain
from typing import Any, Literal

import numpy as np

from curate.errors import ConfigError, InputError, require
from curate.train.data import input_files, iter_docs
from curate.train.shards import run_files, token_dtype
from curate.train.tokenizer import Tokenizer

log = logging.getLogger("curate.train")

FORMATS = ("curate", "megatron", "datatrove", "litdata")
EXTERNAL = ("megatron", "datatrove", "litdata")
MANIFEST = "tokens.json"
VERSION = 1
# Shards of 2^28 tokens (512 MiB of uint16) for Megatron and datatrove; litdata streams chunks, so smaller ones.
DEFAULT_SHARD_TOKENS = {"megatron": 1 << 28, "datatrove": 1 << 28, "litdata": 1 << 25}
# Begin-of-text tokens by the names tokenizers give them, tried in order.
BOS_CANDIDATES = ("<|begin_of_text|>", "<s>", "<bos>", "[BOS]", "<|startoftext|>", "<BOS>")

MEGATRON_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {"uint16": 8, "int32": 4}
# what a unit writes: <key>.json, <key>.docs.parquet and its shards' files (<key> is <10 hex digits>-<stem>)
_UNIT_FILE = re.compile(r"^[0-9a-f]{10}-.*\.(bin|idx|ds|ds\.index|ds\.metadata|json|docs\.parquet)$")


def megatron_dtype(vocab_size: int) -> np.dtype:
    """megatron.core's DType.optimal_dtype: uint16 below 65,500 tokens, else int32."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def datatrove_dtype(vocab_size: int) -> np.dtype:
    """datatrove's token_size: 2 bytes unless the vocabulary is larger than 65,536."""
    return np.dtype(np.uint16) if vocab_size <= (1 << 16) else np.dtype(np.uint32)


def format_dtype(fmt: str, vocab_size: int) -> np.dtype:
    if fmt == "megatron":
        return megatron_dtype(vocab_size)
    if fmt == "datatrove":
        return datatrove_dtype(vocab_size)
    return token_dtype(vocab_size)


def resolve_bos(tok: Tokenizer, bos: str | None) -> int | None:
    """The BOS id: None without `bos`; "auto" takes the first of BOS_CANDIDATES, else the EOS token; else a name."""
    if not bos:
        return None
    if bos != "auto":
        i = tok.tok.token_to_id(bos)  # type: ignore[attr-defined]
        if i is None:
            raise ConfigError(f"the tokenizer has no token '{bos}' to put before each document")
        return int(i)
    for name in BOS_CANDIDATES:
        i = tok.tok.token_to_id(name)  # type: ignore[attr-defined]
        if i is not None:
            return int(i)
    return tok.eos_id


def _seed_words(seed: int, key: str) -> list[int]:
    return [seed, int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)]


def doc_order(n: int, seed: int | None, key: str) -> np.ndarray:
    """The order in which a unit's n documents are written: input order, or a permutation seeded by seed and key."""
    if seed is None:
        return np.arange(n)
    return np.random.default_rng(_seed_words(seed, key)).permutation(n)


def unit_order(keys: list[str], seed: int | None) -> list[int]:
    """The order of the units (input files) in tokens.json and litdata's index.json."""
    if seed is None:
        return list(range(len(keys)))
    return [int(i) for i in np.random.default_rng([seed, len(keys)]).permutation(len(keys))]


def unit_key(src: str) -> str:
    stem = os.path.basename(src).split(".")[0][:40]
    return f"{hashlib.sha1(os.path.abspath(src).encode()).hexdigest()[:10]}-{stem}"


def _fingerprint(src: str, settings: dict[str, Any]) -> dict[str, Any]:
    st = os.stat(src)
    return {
        "version": VERSION,
        "source": os.path.abspath(src),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        **settings,
    }


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{os.path.join(os.path.dirname(path), '.tmp-')}{uuid.uuid4().hex}.json"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def _tmp(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, f".tmp-{uuid.uuid4().hex}-{name}")


def pack(encs: list[list[int]], bos_id: int | None, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of each encoded document with BOS (if any) before and EOS after, packed: (tokens, lengths)."""
    n = len(encs)
    raw = np.fromiter((len(e) for e in encs), dtype=np.int64, count=n)
    extra = 1 + (bos_id is not None)
    lens = raw + extra
    out = np.empty(int(lens.sum()), dtype=np.int64)
    ends = np.cumsum(lens)
    out[ends - 1] = eos_id
    starts = ends - lens
    if bos_id is not None:
        out[starts] = bos_id
    body = np.fromiter(chain.from_iterable(encs), dtype=np.int64, count=int(raw.sum()))
    # position of each body token: its document's start (+1 after BOS) plus its rank inside the document
    doc = np.repeat(np.arange(n), raw)
    first = np.cumsum(raw) - raw
    pos = starts[doc] + (extra - 1) + (np.arange(len(body)) - first[doc])
    out[pos] = body
    return out, lens


# --- writers: one shard of whole documents, `tokens` packed with `lens` per document -----------------------------


def _write_megatron(out_dir: str, name: str, tokens: np.ndarray, lens: np.ndarray, dtype: np.dtype) -> list[str]:
    """<name>.bin and <name>.idx exactly as megatron.core's IndexedDatasetBuilder (one sequence per document)."""
    n = len(lens)
    tb, ti = _tmp(out_dir, "bin"), _tmp(out_dir, "idx")
    tokens.astype(dtype.newbyteorder("<")).tofile(tb)
    pointers = np.zeros(n, dtype="<i8")
    if n:
        pointers[1:] = np.cumsum(lens[:-1]) * dtype.itemsize
    with open(ti, "wb") as fh:
        fh.write(MEGATRON_HEADER)
        fh.write(struct.pack("<Q", 1))
        fh.write(struct.pack("<B", MEGATRON_DTYPE_CODES[dtype.name]))
        fh.write(struct.pack("<Q", n))  # sequences
        fh.write(struct.pack("<Q", n + 1))  # document indices: 0, 1, ..., n
        fh.write(lens.astype("<i4").tobytes())
        fh.write(pointers.tobytes())
        fh.write(np.arange(n + 1, dtype="<i8").tobytes())
    os.replace(tb, os.path.join(out_dir, f"{name}.bin"))
    os.replace(ti, os.path.join(out_dir, f"{name}.idx"))
    return [f"{name}.bin", f"{name}.idx"]


def _metric(n: int) -> str:
    """humanize.metric(n, unit="T"), which datatrove writes into .ds.metadata."""
    try:
        import humanize

        return str(humanize.metric(n, unit="T"))
    except ImportError:
        return f"{n} T"


def _write_datatrove(
    out_dir: str, name: str, tokens: np.ndarray, lens: np.ndarray, dtype: np.dtype, tokenizer_name: str
) -> list[str]:
    """<name>.ds, <name>.ds.index and <name>.ds.metadata as datatrove's TokenizedFile writes them."""
    ds = f"{name}.ds"
    t_ds, t_ix, t_md = _tmp(out_dir, "ds"), _tmp(out_dir, "index"), _tmp(out_dir, "metadata")
    tokens.astype(dtype.newbyteorder("<")).tofile(t_ds)
    np.cumsum(lens, dtype=np.int64).astype("<u8").tofile(t_ix)
    with open(t_md, "w", encoding="utf-8") as fh:
        fh.write(
            "\n".join([f"{tokenizer_name.replace('|', '_')}|{dtype.itemsize}", str(len(tokens)), _metric(len(tokens))])
        )
    os.replace(t_ds, os.path.join(out_dir, ds))
    os.replace(t_ix, os.path.join(out_dir, f"{ds}.index"))
    os.replace(t_md, os.path.join(out_dir, f"{ds}.metadata"))
    return [ds, f"{ds}.index", f"{ds}.metadata"]


def _litdata_writer():  # noqa: ANN202 - the class, imported lazily
    return require("litdata.streaming.writer", "litdata", "formats", what="--format litdata").BinaryWriter


def _write_litdata(
    out_dir: str, name: str, tokens: np.ndarray, lens: np.ndarray, dtype: np.dtype
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """One litdata chunk (one item per document) written by litdata's BinaryWriter; its chunk entry and config."""
    BinaryWriter = _litdata_writer()
    work = _tmp(out_dir, "litdata")
    os.makedirs(work)
    try:
        # one chunk per shard: a chunk_bytes limit no shard reaches
        writer = BinaryWriter(work, chunk_bytes=max(1 << 62, 2 * tokens.nbytes))
        ends = np.cumsum(lens)
        for i, (a, b) in enumerate(zip(ends - lens, ends)):
            writer.add_item(i, tokens[a:b].astype(dtype))
        writer.done()
        with open(os.path.join(work, f"{writer.rank}.index.json"), encoding="utf-8") as fh:
            index = json.load(fh)
        (chunk,) = index["chunks"]
        file = f"{name}.bin"
        os.replace(os.path.join(work, chunk["filename"]), os.path.join(out_dir, file))
        chunk["filename"] = file
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [file], chunk, index["config"]


# --- one unit: an input file ---------------------------------------------------------------------------------------


def tokenize_unit(
    src: str,
    tokenizer_json: str,
    eos_token: str,
    bos_id: int | None,
    fmt: str,
    out_dir: str,
    shard_tokens: int,
    shuffle_seed: int | None,
    text_column: str,
    tokenizer_name: str,
) -> dict[str, Any]:
    """Tokenize one input file into shards of `fmt`; <key>.docs.parquet, then <key>.json (written last) mark it done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tok = Tokenizer.from_str(tokenizer_json, eos_token)
    dtype = format_dtype(fmt, tok.vocab_size)
    key = unit_key(src)
    settings = _settings(tok, bos_id, fmt, shard_tokens, shuffle_seed, text_column)
    meta: dict[str, Any] = {"key": key, **_fingerprint(src, settings)}
    doc_ids: list[str] = []
    parts: list[np.ndarray] = []
    part_lens: list[np.ndarray] = []
    for ids, texts in iter_docs(src, text_column):
        keep = [(i, t) for i, t in zip(ids, texts) if t]
        if not keep:
            continue
        encs = tok.encode_batch([t for _, t in keep])
        packed, lens = pack(encs, bos_id, tok.eos_id)
        doc_ids += [i for i, _ in keep]
        parts.append(packed.astype(dtype))
        part_lens.append(lens)
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    lens = np.concatenate(part_lens) if part_lens else np.zeros(0, dtype=np.int64)
    n = len(lens)
    starts = np.cumsum(lens) - lens
    order = doc_order(n, shuffle_seed, key)

    # shards: whole documents in order, a new one when the next document would pass shard_tokens
    groups: list[list[int]] = []
    size = 0
    for d in order.tolist():
        if not groups or (size and size + int(lens[d]) > shard_tokens):
            groups.append([])
            size = 0
        groups[-1].append(d)
        size += int(lens[d])

    shards: list[dict[str, Any]] = []
    doc_shard = np.empty(n, dtype=object)
    doc_row = np.zeros(n, dtype=np.int64)
    for k, docs in enumerate(groups):
        name = f"{key}-{k:05d}"
        idx = np.asarray(docs, dtype=np.int64)
        glens = lens[idx]
        if shuffle_seed is None:  # input order: one contiguous slice
            chunk = tokens[int(starts[idx[0]]) : int(starts[idx[-1]] + lens[idx[-1]])]
        else:
            chunk = np.concatenate([tokens[int(starts[d]) : int(starts[d] + lens[d])] for d in docs])
        entry: dict[str, Any] = {"docs": len(docs), "tokens": int(glens.sum())}
        if fmt == "megatron":
            entry["files"] = _write_megatron(out_dir, name, chunk, glens, dtype)
            entry["path"] = name
        elif fmt == "datatrove":
            entry["files"] = _write_datatrove(out_dir, name, chunk, glens, dtype, tokenizer_name)
            entry["path"] = f"{name}.ds"
        else:
            files, litchunk, config = _write_litdata(out_dir, name, chunk, glens, dtype)
            entry["files"], entry["path"], entry["litdata_chunk"] = files, files[0], litchunk
            # the writer ran with a chunk_bytes limit no shard reaches; the config says what bounds the chunks
            meta["litdata_config"] = {**config, "chunk_bytes": shard_tokens * dtype.itemsize}
        shards.append(entry)
        doc_shard[idx] = entry["path"]
        doc_row[idx] = np.arange(len(docs))

    docs_file = f"{key}.docs.parquet"
    table = pa.table(
        {
            "id": pa.array(doc_ids, pa.string()),
            "tokens": pa.array(lens, pa.int64()),
            "shard": pa.array(doc_shard.tolist(), pa.string()).dictionary_encode(),
            "row": pa.array(doc_row, pa.int64()),
        }
    )
    tmp = _tmp(out_dir, "parquet")
    pq.write_table(table, tmp)
    os.replace(tmp, os.path.join(out_dir, docs_file))
    meta.update({"docs": n, "tokens": int(lens.sum()), "dtype": dtype.name, "shards": shards, "doc_index": docs_file})
    _write_json(os.path.join(out_dir, f"{key}.json"), meta)
    return meta


def _settings(
    tok: Tokenizer, bos_id: int | None, fmt: str, shard_tokens: int, shuffle_seed: int | None, text_column: str
) -> dict[str, Any]:
    return {
        "format": fmt,
        "tokenizer": tok.fingerprint,
        "bos_id": bos_id,
        "eos_id": tok.eos_id,
        "shard_tokens": shard_tokens,
        "shuffle_seed": shuffle_seed,
        "text_column": text_column,
    }


def _expected_size(fmt: str, file: str, shard: dict[str, Any], itemsize: int) -> int | None:
    if (fmt == "megatron" and file.endswith(".bin")) or (fmt == "datatrove" and file.endswith(".ds")):
        return shard["tokens"] * itemsize
    if file.endswith(".ds.index"):
        return shard["docs"] * 8
    if fmt == "litdata":
        return int(shard["litdata_chunk"]["chunk_bytes"])
    return None


def _done(out_dir: str, src: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The unit's metadata if it was built from this very file with these settings and its files are all there."""
    try:
        with open(os.path.join(out_dir, f"{unit_key(src)}.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    if any(meta.get(k) != v for k, v in _fingerprint(src, settings).items()):
        return None
    itemsize = np.dtype(meta.get("dtype", "uint16")).itemsize
    if not os.path.exists(os.path.join(out_dir, meta.get("doc_index", "?"))):
        return None
    for shard in meta.get("shards", []):
        for f in shard["files"]:
            path = os.path.join(out_dir, f)
            want = _expected_size(settings["format"], f, shard, itemsize)
            if not os.path.exists(path) or (want is not None and os.path.getsize(path) != want):
                return None
    return meta


def _check_out_dir(out_dir: str, fmt: str) -> None:
    """Refuse to mix formats in one directory."""
    mine = os.path.join(out_dir, MANIFEST)
    if os.path.exists(mine):
        try:
            with open(mine, encoding="utf-8") as fh:
                old = json.load(fh).get("format")
        except (OSError, json.JSONDecodeError):
            old = None
        if old and old != fmt:
            raise InputError(
                f"'{out_dir}' holds {old} token shards, not {fmt}", hint="write each format to its own directory"
            )
    idx = os.path.join(out_dir, "index.json")
    if os.path.exists(idx):
        try:
            with open(idx, encoding="utf-8") as fh:
                other = "curate" if "units" in json.load(fh) else "litdata"
        except (OSError, json.JSONDecodeError):
            other = "other"
        if other != fmt:
            raise InputError(
                f"'{out_dir}' holds {other} token shards (index.json), not {fmt}",
                hint="write each format to its own directory",
            )


def build_formatted(
    data: str | list[str],
    tok: Tokenizer,
    out_dir: str,
    fmt: Literal["megatron", "datatrove", "litdata"],
    *,
    bos: str | None = None,
    shard_tokens: int | None = None,
    shuffle_seed: int | None = None,
    text_column: str = "text",
    tokenizer_name: str | None = None,
    parallel: Literal["auto", "ray", "local"] = "auto",
    address: str | None = None,
) -> dict[str, Any]:
    """Tokenize every document file of `data` into out_dir in `fmt`, skipping files already done; returns tokens.json.

    On a Ray cluster, out_dir and the input must be on a filesystem every node mounts at the same path."""
    if fmt not in EXTERNAL:
        raise ConfigError(f"unknown token format '{fmt}' (choose from {', '.join(EXTERNAL)})")
    shard_tokens = shard_tokens or DEFAULT_SHARD_TOKENS[fmt]
    if shard_tokens < 1:
        raise ConfigError(f"--shard-tokens must be positive, not {shard_tokens}")
    if fmt == "litdata":
        _litdata_writer()  # fail before any work if litdata is missing
    os.makedirs(out_dir, exist_ok=True)
    _check_out_dir(out_dir, fmt)
    bos_id = resolve_bos(tok, bos)
    tokenizer_name = tokenizer_name or os.path.join(out_dir, "tokenizer.json")
    settings = _settings(tok, bos_id, fmt, shard_tokens, shuffle_seed, text_column)
    files = input_files(data)  # a finished output that kept no documents gives none
    metas: dict[str, dict[str, Any]] = {}
    todo = []
    for f in files:
        meta = _done(out_dir, f, settings)
        if meta is None:
            todo.append(f)
        else:
            metas[f] = meta
    if metas:
        log.info("%s shards: %d of %d files already done in %s", fmt, len(metas), len(files), out_dir)
    args = (tok.to_str(), tok.eos_token, bos_id, fmt, out_dir, shard_tokens, shuffle_seed, text_column, tokenizer_name)
    metas.update(run_files(tokenize_unit, todo, args, parallel, address))  # as curate's own shards

    units = [metas[f] for f in files]
    units = [units[i] for i in unit_order([u["key"] for u in units], shuffle_seed)]
    shards = [s for u in units for s in u["shards"]]
    dtype = format_dtype(fmt, tok.vocab_size)
    keep = {MANIFEST, "tokenizer.json"}
    for u in units:
        keep |= {f"{u['key']}.json", u["doc_index"], *(f for s in u["shards"] for f in s["files"])}

    if fmt == "datatrove" and not shards:  # an empty .ds: DatatroveFolderDataset then reads zero samples
        files_ = _write_datatrove(out_dir, "empty", np.zeros(0, dtype), np.zeros(0, np.int64), dtype, tokenizer_name)
        keep |= set(files_)
    if fmt == "litdata":  # litdata's merged index (BinaryWriter.merge): every chunk, in reading order
        config = next((u["litdata_config"] for u in units if "litdata_config" in u), None)
        _write_json(
            os.path.join(out_dir, "index.json"),
            {"chunks": [s["litdata_chunk"] for s in shards], "config": config, "updated_at": str(time.time())},
        )
        keep.add("index.json")
    for name in os.listdir(out_dir):  # shards of files no longer in the input or rebuilt smaller, temporaries
        path = os.path.join(out_dir, name)
        stale = name not in keep and (_UNIT_FILE.match(name) or name.startswith("empty.ds"))
        if name.startswith(".tmp-") or stale:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    manifest = {
        "format": fmt,
        "version": VERSION,
        "tokenizer": tok.fingerprint,
        "tokenizer_file": tokenizer_name,
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "bos_id": bos_id,
        "eos_id": tok.eos_id,
        "document": ("[BOS] " if bos_id is not None else "") + "tokens [EOS]",
        "shuffle_seed": shuffle_seed,
        "shard_tokens": shard_tokens,
        "docs": sum(u["docs"] for u in units),
        "tokens": sum(u["tokens"] for u in units),
        "shards": [{"path": s["path"], "docs": s["docs"], "tokens": s["tokens"]} for s in shards],
        "units": [
            {
                "key": u["key"],
                "source": u["source"],
                "docs": u["docs"],
                "tokens": u["tokens"],
                "doc_index": u["doc_index"],
            }
            for u in units
        ],
    }
    # the documents' own tokens, special tokens (EOS, and BOS) aside: what stats.json counts with this tokenizer
    manifest["text_tokens"] = manifest["tokens"] - manifest["docs"] * (1 + (bos_id is not None))
    if fmt == "megatron":
        manifest["data_path"] = [os.path.join(os.path.abspath(out_dir), s["path"]) for s in shards]
    _write_json(os.path.join(out_dir, MANIFEST), manifest)
    log.info(
        "%s shards: %s tokens, %s docs in %d shards",
        fmt,
        f"{manifest['tokens']:,}",
        f"{manifest['docs']:,}",
        len(shards),
    )
    return manifest
