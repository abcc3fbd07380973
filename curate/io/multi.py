"""Several named inputs read as one: `input: [{name: web, format: warc, ...}, {name: books, format: jsonl, ...}]`.

Each source keeps its own reader; the read units are all of theirs, keyed `<name>:<unit key>` (so resume and
per-unit accounting work as for one input), batches are conformed to the union of the sources' columns, and every
document's `source` column holds its source's name (what `mix` weights by)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from curate.errors import InputError
from curate.io.base import Reader, ReadUnit
from curate.schema import CORE_SCHEMA, SOURCE, conform

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


@dataclass(kw_only=True)
class MultiReader(Reader):
    """Named sources, each with its own reader; `source` is the name."""

    format = "multi"

    path: str | list[str] = ""
    names: list[str] = field(default_factory=list)
    readers: list[Any] = field(default_factory=list)  # Reader per name

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.readers):
            raise InputError("a multi-source input needs one reader per name")
        bad = [n for n in self.names if not _NAME.match(n)]
        if bad:
            raise InputError(f"input source name {bad[0]!r} must be a name like 'web' or 'books'")
        dup = sorted({n for n in self.names if self.names.count(n) > 1})
        if dup:
            raise InputError(f"input source name '{dup[0]}' is used twice")
        self._schema: pa.Schema | None = None

    def files(self) -> list[str]:
        return [f for r in self.readers for f in r.files()]

    def units(self) -> list[ReadUnit]:
        out = []
        for i, (name, reader) in enumerate(zip(self.names, self.readers)):
            for u in reader.units():
                out.append(ReadUnit(u.path, f"{name}:{u.key}", u.size_bytes, u.part, u.parts, options=(i, u)))
        return out

    def schema(self) -> pa.Schema:
        """The core columns, then every other column of any source (a name with two types is an InputError)."""
        if self._schema is None:
            fields: dict[str, pa.Field] = {f.name: f for f in CORE_SCHEMA}
            for name, reader in zip(self.names, self.readers):
                for f in reader.schema():
                    known = fields.get(f.name)
                    if known is None:
                        fields[f.name] = f
                    elif known.type != f.type and f.name not in CORE_SCHEMA.names:
                        raise InputError(
                            f"input source '{name}' has column '{f.name}' of type {f.type}, another source {known.type}"
                        )
            self._schema = pa.schema(list(fields.values()))
        return self._schema

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        i, inner = unit.options
        name, reader = self.names[i], self.readers[i]
        schema = self.schema()
        reader.take_counts()
        try:
            for batch in reader.read(inner):
                batch = conform(batch, _with_reserved_fields(schema, batch))
                idx = batch.schema.get_field_index(SOURCE)
                yield batch.set_column(idx, SOURCE, pa.array([name] * batch.num_rows, pa.string()))
        finally:
            # the source reader's counters (request records skipped, ...) are this reader's
            for counter, n in reader.take_counts().items():
                self.count(counter, n)


def _with_reserved_fields(schema: pa.Schema, batch: pa.Table) -> pa.Schema:
    """`schema` plus the engine columns a reader may already have set (rejected records: __reason__...)."""
    extra = [batch.schema.field(n) for n in batch.column_names if n.startswith("__") and n not in schema.names]
    return pa.schema(list(schema) + extra) if extra else schema
