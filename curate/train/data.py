"""Documents for the trainer: a curated output (OUT/data via its manifest), Parquet, JSONL or text files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator

import pyarrow.parquet as pq

from curate.errors import InputError
from curate.io.base import expand_paths, open_input

log = logging.getLogger("curate.train")

EXTENSIONS = (".parquet", ".jsonl", ".json", ".txt")


def input_files(path: str | list[str]) -> list[str]:
    """The document files behind `path`: a curated output's kept shards, or Parquet/JSONL/text files."""
    paths = [path] if isinstance(path, str) else list(path)
    out: list[str] = []
    for p in paths:
        manifest = os.path.join(p, "manifest.json")
        # a curate output: its data/ folder, or (when it kept nothing) no data/ folder but its manifest
        if os.path.isdir(p) and (os.path.isdir(os.path.join(p, "data")) or os.path.exists(manifest)):
            if not os.path.exists(os.path.join(p, "_SUCCESS")):
                raise InputError(
                    f"'{p}' is an unfinished curate output (no _SUCCESS)",
                    hint="let the pipeline run finish (curate run resumes it), or point at finished output",
                )
            if os.path.exists(manifest):
                with open(manifest, encoding="utf-8") as fh:
                    shards = json.load(fh).get("shards", [])
                # the manifest, not a directory listing, says which shards belong to the output; an output that
                # kept no document has none, and is an empty input (each command says what that means for it)
                kept = sorted(os.path.join(p, s["path"]) for s in shards if _kept(s))
                if not kept:
                    log.warning("curate output '%s' kept no documents", p)
                out += kept
                continue
            p = os.path.join(p, "data")
        out += expand_paths(p, EXTENSIONS)
    return out


def _kept(shard: dict) -> bool:
    """A manifest entry for a kept-documents shard (OUT/data/...), not a rejected one."""
    return shard.get("kind") != "rejected" and str(shard.get("path", "")).startswith("data/")


def iter_docs(path: str, text_column: str = "text", batch_rows: int = 1000) -> Iterator[tuple[list[str], list[str]]]:
    """(ids, texts) in batches. Ids default to file:row; a .txt file is one document."""
    name = os.path.basename(path)
    if path.endswith(".parquet"):
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        if text_column not in names:
            raise InputError(f"'{path}' has no column '{text_column}' (columns: {', '.join(names)})")
        cols = [text_column] + (["id"] if "id" in names else [])
        row = 0
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            texts = [t or "" for t in batch.column(text_column).to_pylist()]
            if "id" in names:
                ids = [str(i) for i in batch.column("id").to_pylist()]
            else:
                ids = [f"{name}:{row + i}" for i in range(len(texts))]
            row += len(texts)
            yield ids, texts
    elif path.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        ids, texts = [], []
        with open_input(path, "rt") as fh:
            for row, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{row + 1}: not JSON: {e}") from e
                texts.append(str(rec.get(text_column) or ""))
                ids.append(str(rec.get("id", f"{name}:{row}")))
                if len(texts) >= batch_rows:
                    yield ids, texts
                    ids, texts = [], []
        if texts:
            yield ids, texts
    else:
        with open_input(path, "rt") as fh:
            yield [name], [fh.read()]


def is_val(doc_id: str, val_fraction: float) -> bool:
    """Whether a document is held out: a hash of its id, so a document is held out in every output that has it."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")
    return h < val_fraction * 2**64


def iter_texts(
    files: list[str], split: str = "all", val_fraction: float = 0.0, text_column: str = "text"
) -> Iterator[str]:
    """Texts of the files in order; split 'train' or 'val' keeps one side of the held-out split."""
    for f in files:
        for ids, texts in iter_docs(f, text_column):
            for i, t in zip(ids, texts):
                if split == "all" or (is_val(i, val_fraction) == (split == "val")):
                    yield t
