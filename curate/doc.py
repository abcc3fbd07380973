"""Row views over a pyarrow batch, for stages written one document at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from curate.inflight import tracked

_MISSING = object()


class Columns:
    """A batch whose columns are turned into Python lists lazily, once per batch, and only if read."""

    __slots__ = ("table", "_lists", "updates", "num_rows")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.num_rows = table.num_rows
        self._lists: dict[str, list[Any]] = {}
        self.updates: dict[str, list[Any]] = {}

    def column(self, name: str) -> list[Any]:
        if name in self.updates:
            return self.updates[name]
        values = self._lists.get(name)
        if values is None:
            if name not in self.table.column_names:
                raise KeyError(name)
            values = self._lists[name] = self.table.column(name).to_pylist()
        return values

    def has(self, name: str) -> bool:
        return name in self.updates or name in self.table.column_names

    def set(self, name: str, i: int, value: Any) -> None:
        values = self.updates.get(name)
        if values is None:
            if name in self.table.column_names:
                values = list(self.column(name))
            else:
                values = [None] * self.num_rows
            self.updates[name] = values
        values[i] = value

    def docs(self) -> Iterator[Doc]:
        for i in tracked(range(self.num_rows)):
            yield Doc(self, i)


class Doc:
    """One document of a batch: `doc.text`, `doc.id`, `doc.url`, `doc["any_column"]`; mappers may assign."""

    __slots__ = ("_cols", "_i", "_words")

    def __init__(self, cols: Columns, i: int) -> None:
        self._cols = cols
        self._i = i
        self._words: list[str] | None = None

    @classmethod
    def of(cls, **values: Any) -> Doc:
        """A stand-alone document, handy in tests: `Doc.of(text="...", url="...")`."""
        values.setdefault("id", "doc")
        return next(Columns(pa.Table.from_pylist([values])).docs())

    def __getitem__(self, name: str) -> Any:
        return self._cols.column(name)[self._i]

    def __setitem__(self, name: str, value: Any) -> None:
        self._cols.set(name, self._i, value)
        if name == "text":
            self._words = None

    def __contains__(self, name: str) -> bool:
        return self._cols.has(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if self._cols.has(name) else default

    @property
    def id(self) -> str:
        return self["id"]

    @property
    def text(self) -> str:
        return self["text"] or ""

    @text.setter
    def text(self, value: str) -> None:
        self["text"] = value

    @property
    def url(self) -> str | None:
        return self.get("url")

    @property
    def source(self) -> str | None:
        return self.get("source")

    def words(self) -> list[str]:
        """The document's words, split as the document's language wants (see curate.text.split_words)."""
        if self._words is None:
            from curate.text import split_words

            self._words = split_words(self.text, self.get("language"))
        return self._words

    def __repr__(self) -> str:
        text = self.text
        return f"Doc(id={self.id!r}, text={text[:40] + '...' if len(text) > 40 else text!r})"
