"""Exact deduplication: of identical normalised text, or of identical URLs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curate.stage import KEY_COLUMN, GroupFilter
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
    """Dedup by URL (scheme, case of host, trailing slash and fragment ignored); keeps the longest text.

    As datatrove's UrlDedup with its default priority (longer documents win); ties go to the smallest id."""

    name = "url_dedup"
    reasons = ("duplicate_url",)
    input_columns = ("url", "text")

    def key_batch(self, batch: pa.Table) -> pa.Array:
        return pa.array([_url_key(u) for u in batch.column("url").to_pylist()], pa.string())

    def rank_batch(self, batch: pa.Table) -> dict[str, pa.Array]:
        return {"__len__": pc.utf8_length(pc.fill_null(batch.column("text"), ""))}

    def reject_group(self, batch: pa.Table) -> list[str | None]:
        return _first_per_key(batch, [("__len__", "descending"), ("id", "ascending")], "duplicate_url")


def _url_key(url: str | None) -> str | None:
    if not url:
        return None  # documents without a URL are never URL-duplicates of each other
    u = url.strip().split("#", 1)[0]
    if "://" in u:
        u = u.split("://", 1)[1]
    host, _, path = u.partition("/")
    return f"{host.lower()}/{path.rstrip('/')}"
