"""Exact deduplication: of identical normalised text, or of identical URLs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError, StageError
from curate.stage import KEY_COLUMN, GroupFilter, StageColumns
from curate.text import normalize_for_hash


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def _first_per_key(batch: pa.Table, order: list[tuple[str, str]], reason: str) -> list[str | None]:
    """Keep the first row of each key group under `order` (deterministic: ties broken by id)."""
    idx = pa.array(range(batch.num_rows), pa.int64())
    t = batch.select([KEY_COLUMN, *[c for c, _ in order if c != KEY_COLUMN]]).append_column("__row__", idx)
    sorted_idx = pc.sort_indices(t, sort_keys=[(KEY_COLUMN, "ascending"), *order]).to_pylist()
    keys = batch.column(KEY_COLUMN).to_pylist()
    reasons: list[str | None] = [None] * batch.num_rows
    previous = object()
    for i in sorted_idx:
        k = keys[i]
        if k == previous and k is not None:
            reasons[i] = reason
        previous = k
    return reasons


@dataclass(kw_only=True)
class ExactDedup(GroupFilter):
    """Exact dedup of identical text (case, Unicode form and whitespace normalised); keeps the smallest id."""

    name = "exact_dedup"
    reasons = ("duplicate_text",)
    # Compare NFKC, case-folded, whitespace-collapsed text; false compares the raw text.
    normalize: bool = True

    def key_batch(self, batch: pa.Table) -> pa.Array:
        texts = batch.column("text").to_pylist()
        norm = normalize_for_hash if self.normalize else (lambda s: s)
        return pa.array([_hash64(norm(t or "")) for t in texts], pa.int64())

    def reject_group(self, batch: pa.Table) -> list[str | None]:
        return _first_per_key(batch, [("id", "ascending")], "duplicate_text")


@dataclass(kw_only=True)
class UrlDedup(GroupFilter):
    """Dedup by URL (scheme, case of host, trailing slash and fragment ignored); keeps the longest text, or the
    newest capture (`keep: newest`).

    `keep: longest` is datatrove's UrlDedup with its default priority (longer documents win); ties go to the
    smallest id. `keep: newest` keeps the latest capture date in `date_column` (the WARC reader's `date`, from
    WARC-Date), as LLaMA 3 does ("we keep the most recent version for pages corresponding to each URL"); a missing
    or unreadable date counts as the oldest, and ties go to the longest text, then the smallest id."""

    name = "url_dedup"
    reasons = ("duplicate_url",)
    input_columns = ("url", "text")
    # Which document of a URL stays: "longest" (the longest text) or "newest" (the latest date in date_column).
    keep: Literal["longest", "newest"] = "longest"
    # The capture date keep: newest reads: ISO 8601 strings (the WARC reader's `date`), a timestamp or a date column.
    date_column: str = "date"

    def __post_init__(self) -> None:
        if self.keep not in ("longest", "newest"):  # the YAML check catches this first; Python callers too
            raise ConfigError(
                f"url_dedup: keep must be 'longest' or 'newest', not {self.keep!r}",
                hint="newest keeps the latest capture date, longest the longest text",
            )
        if self.keep == "newest" and not self.date_column:
            raise ConfigError("url_dedup: keep: newest needs a date_column", hint="the WARC reader writes `date`")

    def columns(self) -> StageColumns:
        if self.keep == "newest":
            return super().columns()._replace(input=(*self.input_columns, self.date_column))
        return super().columns()

    def key_batch(self, batch: pa.Table) -> pa.Array:
        return pa.array([_url_key(u) for u in batch.column("url").to_pylist()], pa.string())

    def rank_batch(self, batch: pa.Table) -> dict[str, pa.Array]:
        ranks = {"__len__": pc.utf8_length(pc.fill_null(batch.column("text"), ""))}
        if self.keep == "newest":
            ranks["__date__"] = _epoch_micros(batch.column(self.date_column), self.date_column)
        return ranks

    def reject_group(self, batch: pa.Table) -> list[str | None]:
        order = [("__len__", "descending"), ("id", "ascending")]
        if self.keep == "newest":
            order.insert(0, ("__date__", "descending"))
        return _first_per_key(batch, order, "duplicate_url")


_OLDEST = -(2**63)  # the rank of a missing or unreadable date: older than any


def _epoch_micros(column: pa.ChunkedArray | pa.Array, name: str) -> pa.Array:
    """Microseconds since 1970 (UTC) per value, _OLDEST where missing or unreadable: from ISO 8601 strings
    (2024-04-25T16:27:54Z, fractions and offsets allowed; no offset means UTC; also the 14 digits of an ARC date),
    timestamps (naive ones as UTC), dates, or integers taken as they are."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        micros = pc.cast(pc.cast(column, pa.timestamp("us", tz=getattr(t, "tz", None))), pa.int64())
        return pc.fill_null(micros, _OLDEST)
    if pa.types.is_integer(t):
        return pc.fill_null(pc.cast(column, pa.int64()), _OLDEST)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.array([_parse_date(v) for v in column.to_pylist()], pa.int64())
    raise StageError(
        f"url_dedup: date_column '{name}' holds {t}, not dates",
        hint="name a column of ISO 8601 strings (the WARC reader's `date`) or timestamps",
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _parse_date(value: str | None) -> int:
    if not value:
        return _OLDEST
    s = value.strip()
    try:
        if len(s) == 14 and s.isdigit():  # an ARC file's archive date, YYYYMMDDhhmmss
            d = datetime.strptime(s, "%Y%m%d%H%M%S")
        else:
            d = datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s)
    except ValueError:
        return _OLDEST
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    delta = d - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _url_key(url: str | None) -> str | None:
    if not url:
        return None  # documents without a URL are never URL-duplicates of each other
    u = url.strip().split("#", 1)[0]
    if "://" in u:
        u = u.split("://", 1)[1]
    host, _, path = u.partition("/")
    return f"{host.lower()}/{path.rstrip('/')}"
