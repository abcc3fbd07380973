"""Reading the checkpoint a phase hands to the next: committed shards only, each verified against its SHA-256."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from curate.errors import InputError
from curate.io.base import Reader, ReadUnit


@dataclass(kw_only=True)
class CheckpointReader(Reader):
    """Shards committed by an earlier phase of this run (not a user-facing input format)."""

    format = "checkpoint"

    path: str | list[str] = ""
    shards: list[dict[str, Any]] = field(default_factory=list)  # {url, key, sha256, bytes}
    stored_schema: Any = None

    def files(self) -> list[str]:
        return [s["url"] for s in self.shards]

    def units(self) -> list[ReadUnit]:
        return [ReadUnit(s["url"], s["key"], s["bytes"], options=s["sha256"]) for s in self.shards]

    def schema(self) -> pa.Schema:
        return self.stored_schema

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        fs, path = url_to_fs(unit.path)
        try:
            data = fs.cat_file(path)
        except OSError as e:
            raise InputError(f"checkpoint shard {unit.path} cannot be read: {e}", hint=_HINT) from e
        if hashlib.sha256(data).hexdigest() != unit.options:
            raise InputError(
                f"checkpoint shard {unit.path} is damaged (its SHA-256 does not match the commit)", hint=_HINT
            )
        pf = pq.ParquetFile(io.BytesIO(data))
        for rb in pf.iter_batches(batch_size=self.batch_rows):
            yield pa.Table.from_batches([rb])


_HINT = "the run's output was changed while it was unfinished; rerun with --overwrite to start over"
