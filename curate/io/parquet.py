"""Parquet input: row groups streamed in batches, columns mapped to the core ones."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.errors import InputError
from curate.io.base import Reader, ReadUnit, open_input
from curate.schema import CORE_SCHEMA, ID, SOURCE, TEXT, URL, conform, reject_rows

log = logging.getLogger("curate.io")

# Row groups are grouped into units of about this many bytes, so a big file is read by several tasks.
_UNIT_BYTES = 256 << 20


@dataclass(kw_only=True)
class ParquetReader(Reader):
    """Parquet files; `columns` maps a core column to the input's name for it, e.g. {text: content}."""

    format = "parquet"
    extensions = (".parquet",)

    columns: dict[str, str] = field(default_factory=dict)
    # Input columns carried to the output besides the core ones; None carries them all.
    keep_columns: list[str] | None = None
    # A row holding bytes that are not UTF-8 in a string column: `reject` it (invalid_utf8), or `replace` them with
    # U+FFFD and keep it (counted as replaced_invalid_utf8).
    on_invalid_utf8: str = "reject"

    def __post_init__(self) -> None:
        bad = set(self.columns) - {ID, TEXT, URL, SOURCE}
        if bad:
            raise InputError(f"input.columns may map only id, text, url, source; got {sorted(bad)}")
        if self.on_invalid_utf8 not in ("reject", "replace"):
            raise InputError(f"input.on_invalid_utf8 must be reject or replace, not {self.on_invalid_utf8!r}")
        self._schema: pa.Schema | None = None

    def units(self) -> list[ReadUnit]:
        files = self.files()
        root = common_root(files)
        units: list[ReadUnit] = []
        for f in files:
            rel = relative_key(f, root)
            try:
                meta = pq.ParquetFile(open_input(f, compression=None)).metadata
            except Exception:
                # Unreadable: one unit that reports the file as rejected when it is read.
                units.append(ReadUnit(f, rel, 0, options=((), 0, rel)))
                continue
            chunks: list[tuple[tuple[int, ...], int, int]] = []
            groups: list[int] = []
            size = row = start_row = 0
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                if groups and size + rg.total_byte_size > _UNIT_BYTES:
                    chunks.append((tuple(groups), start_row, size))
                    groups, size, start_row = [], 0, row
                groups.append(g)
                size += rg.total_byte_size
                row += rg.num_rows
            if groups or not chunks:
                chunks.append((tuple(groups), start_row, size))
            for i, (gs, first_row, nbytes) in enumerate(chunks):
                key = rel if len(chunks) == 1 else f"{rel}#{i}"
                units.append(ReadUnit(f, key, nbytes, part=i, parts=len(chunks), options=(gs, first_row, rel)))
        return units

    def _source_names(self, names: list[str]) -> dict[str, str]:
        mapping = {core: self.columns.get(core, core) for core in (ID, TEXT, URL, SOURCE)}
        return {core: src for core, src in mapping.items() if src in names}

    def schema(self) -> pa.Schema:
        if self._schema is None:
            file_schema, first, errors = None, "", []
            for first in self.files():
                try:
                    file_schema = pq.read_schema(open_input(first, compression=None))
                    break
                except Exception as e:  # a damaged file is rejected when read; the schema comes from another
                    errors.append(f"{first}: {e}")
            if file_schema is None:
                raise InputError(f"no readable Parquet file in input ({'; '.join(errors[:3])})")
            names = file_schema.names
            found = self._source_names(names)
            if TEXT not in found:
                raise InputError(
                    f"input '{first}' has no '{self.columns.get(TEXT, TEXT)}' column (columns: {', '.join(names)})",
                    hint="map one with input: {columns: {text: <column>}}",
                )
            used = set(found.values())
            fields = list(CORE_SCHEMA)
            extras = [n for n in names if n not in used and n not in CORE_SCHEMA.names]
            if self.keep_columns is not None:
                extras = [n for n in extras if n in self.keep_columns]
            fields += [file_schema.field(n) for n in extras]
            self._schema = pa.schema(fields)
        return self._schema

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        schema = self.schema()
        groups, first_row, rel = unit.options
        try:
            pf = pq.ParquetFile(open_input(unit.path, compression=None))
        except (pa.ArrowException, OSError) as e:
            # no footer, no row count: the file is one rejected record
            log.warning("unreadable Parquet file %s: %s", unit.path, e)
            placeholder = pa.table({ID: [unit.key], SOURCE: [unit.path]})
            yield reject_rows(conform(placeholder, schema), "unreadable_parquet")
            return
        meta = pf.metadata
        row = first_row
        # Row group by row group: damage in one costs its own rows (their number is in the footer), not the file's.
        for g in groups if groups else range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            done = 0
            batches = pf.iter_batches(batch_size=self.batch_rows, row_groups=[g])
            while done < n:
                try:
                    rb = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError) as e:
                    log.warning("%s: row group %d unreadable after %d of its %d rows: %s", unit.path, g, done, n, e)
                    ids = [f"{rel}:{row + i}" for i in range(done, n)]
                    placeholder = pa.table({ID: ids, SOURCE: [unit.path] * len(ids)})
                    yield reject_rows(conform(placeholder, schema), "corrupt_row_group")
                    break
                t = pa.Table.from_batches([rb])
                try:
                    core = self._to_core(t, rel, unit.path, row + done, schema)
                except pa.ArrowException as e:  # a column this file types differently, e.g. a struct id
                    log.warning("%s: rows %d.. of row group %d: %s", unit.path, done, g, e)
                    ids = [f"{rel}:{row + done + i}" for i in range(t.num_rows)]
                    placeholder = pa.table({ID: ids, SOURCE: [unit.path] * len(ids)})
                    core = reject_rows(conform(placeholder, schema), "invalid_column_type")
                    yield core
                else:
                    yield from self._checked(core)
                done += t.num_rows
            row += n

    def _checked(self, t: pa.Table) -> Iterator[pa.Table]:
        """`t`, its rows holding bytes that are not UTF-8 in a string column rejected (invalid_utf8) or repaired
        with U+FFFD (on_invalid_utf8: replace). Parquet readers do not check: such a string would break a stage
        or be written on as it is."""
        bad = None
        for i, f in enumerate(t.schema):
            if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
                continue
            col = t.column(i)
            try:
                col.validate(full=True)
                continue
            except pa.ArrowInvalid:
                pass
            # this batch holds a bad value: find its rows and repair them (this path runs only for such a batch)
            raw = col.cast(pa.large_binary() if pa.types.is_large_string(f.type) else pa.binary()).to_pylist()
            fixed: list[str | None] = []
            mask: list[bool] = []
            for v in raw:
                try:
                    fixed.append(None if v is None else v.decode("utf-8"))
                    mask.append(False)
                except UnicodeDecodeError:
                    fixed.append(v.decode("utf-8", errors="replace"))
                    mask.append(True)
            t = t.set_column(i, f, pa.array(fixed, f.type))
            m = pa.array(mask)
            bad = m if bad is None else pc.or_(bad, m)
        if bad is None:
            yield t
            return
        if self.on_invalid_utf8 == "replace":
            self.count("replaced_invalid_utf8", pc.sum(bad).as_py())
            yield t
            return
        kept = t.filter(pc.invert(bad))
        if kept.num_rows:
            yield kept
        yield reject_rows(t.filter(bad), "invalid_utf8")

    def _to_core(self, t: pa.Table, rel: str, path: str, first_row: int, schema: pa.Schema) -> pa.Table:
        found = self._source_names(t.column_names)
        n = t.num_rows
        cols: dict[str, pa.Array | pa.ChunkedArray] = {}
        cols[ID] = (
            _as_string(t.column(found[ID]))
            if ID in found
            else pa.array([f"{rel}:{first_row + i}" for i in range(n)], pa.string())
        )
        cols[TEXT] = _as_string(t.column(found[TEXT])) if TEXT in found else pa.nulls(n, pa.string())
        cols[URL] = _as_string(t.column(found[URL])) if URL in found else pa.nulls(n, pa.string())
        cols[SOURCE] = _as_string(t.column(found[SOURCE])) if SOURCE in found else pa.array([path] * n, pa.string())
        for f in schema:
            if f.name not in cols:
                cols[f.name] = t.column(f.name) if f.name in t.column_names else pa.nulls(n, f.type)
        return pa.table(cols)


def _as_string(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as strings; binary is reinterpreted unchecked (its bad rows are found afterwards, row by row,
    where a cast would refuse the whole batch)."""
    if pa.types.is_binary(col.type):
        return pa.chunked_array([c.view(pa.string()) for c in col.chunks], pa.string())
    if pa.types.is_large_binary(col.type):
        col = pa.chunked_array([c.view(pa.large_string()) for c in col.chunks], pa.large_string())
        return pa.chunked_array([c.cast(pa.string(), safe=False) for c in col.chunks], pa.string())
    return col.cast(pa.string())


def common_root(files: list[str]) -> str:
    if len(files) == 1:
        return os.path.dirname(files[0])
    return os.path.commonpath(files) if all(f.startswith("/") for f in files) else os.path.commonprefix(files)


def relative_key(path: str, root: str) -> str:
    rel = path[len(root) :].lstrip("/") if root and path.startswith(root) else path
    return rel or os.path.basename(path)
