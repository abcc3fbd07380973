"""JSON Lines input (optionally .gz/.zst/.bz2): one document per line, fields mapped to the core columns."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from curate.errors import InputError
from curate.io.base import Reader, ReadUnit, open_input
from curate.io.parquet import common_root, relative_key
from curate.schema import CORE_SCHEMA, ID, SOURCE, TEXT, URL, conform, reject_rows

log = logging.getLogger("curate.io")


@dataclass(kw_only=True)
class JsonlReader(Reader):
    """JSON Lines files; `columns` maps a core column to the field holding it, e.g. {text: content}."""

    format = "jsonl"
    extensions = (".jsonl", ".json", ".ndjson", ".jsonl.zst")

    columns: dict[str, str] = field(default_factory=dict)
    # Other fields carried to the output as string columns (JSON-encoded when not strings).
    keep_fields: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        bad = set(self.columns) - {ID, TEXT, URL, SOURCE}
        if bad:
            raise InputError(f"input.columns may map only id, text, url, source; got {sorted(bad)}")

    def units(self) -> list[ReadUnit]:
        files = self.files()
        root = common_root(files)
        return [ReadUnit(u.path, relative_key(u.path, root), u.size_bytes) for u in super().units()]

    def schema(self) -> pa.Schema:
        extra = [(name, pa.string()) for name in self.keep_fields if name not in CORE_SCHEMA.names]
        return pa.schema(list(CORE_SCHEMA) + extra)

    def read(self, unit: ReadUnit) -> Iterator[pa.Table]:
        schema = self.schema()
        names = {core: self.columns.get(core, core) for core in (ID, TEXT, URL, SOURCE)}
        rows: list[dict[str, Any]] = []
        bad: list[tuple[str, str]] = []
        line_no = 0
        try:
            with open_input(unit.path, "rt") as fh:
                for line_no, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    row, reason = self._row(line, names, unit, line_no)
                    if reason:
                        bad.append((f"{unit.key}:{line_no}", reason))
                    else:
                        rows.append(row)
                    if len(rows) >= self.batch_rows:
                        yield pa.Table.from_pylist(rows, schema=schema)
                        rows = []
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
            # A truncated or corrupt compressed file: what came before is kept; the rest is one rejected record.
            log.warning("unreadable JSONL %s after line %d: %s", unit.path, line_no, e)
            bad.append((f"{unit.key}:{line_no + 1}", "unreadable_jsonl"))
        if rows:
            yield pa.Table.from_pylist(rows, schema=schema)
        if bad:
            ids, reasons = zip(*bad)
            placeholder = pa.table({ID: list(ids), SOURCE: [unit.path] * len(ids)})
            yield reject_rows(conform(placeholder, schema), list(reasons))

    def _row(self, line: str, names: dict[str, str], unit: ReadUnit, line_no: int) -> tuple[dict[str, Any], str]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return {}, "invalid_json"
        if not isinstance(obj, dict):
            return {}, "invalid_json"
        text = obj.get(names[TEXT])
        if not isinstance(text, str):
            return {}, "missing_text"
        doc_id = obj.get(names[ID])
        row: dict[str, Any] = {
            ID: str(doc_id) if doc_id is not None else f"{unit.key}:{line_no}",
            TEXT: text,
            URL: _str_or_none(obj.get(names[URL])),
            SOURCE: _str_or_none(obj.get(names[SOURCE])) or unit.path,
        }
        for name in self.keep_fields:
            value = obj.get(name)
            row[name] = value if value is None or isinstance(value, str) else json.dumps(value)
        return row, ""


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
