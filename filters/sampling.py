"""Deterministic sampling: a document's fate is a hash of (seed, id), never a random stream in reading order, so the
same document gets the same decision on any runner, any number of workers and any batch size. Also the token
counts that token-weighted stages share (a local tokenizer.json, or a words proxy)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from curate.stage import Filter
from filters._common import texts

_TWO_53 = float(1 << 53)


def uniform(seed: int, ids: Sequence[str | None], salt: str = "") -> np.ndarray:
    """One number in [0, 1) per document: the top 53 bits of blake2b-64 of "<salt><seed>:<id>" (the c4_badwords
    keep_fraction hash when salt is empty). Different salts give independent draws for the same document."""
    out = np.empty(len(ids), np.float64)
    prefix = f"{salt}{seed}:"
    blake = hashlib.blake2b
    for i, doc_id in enumerate(ids):
        h = int.from_bytes(blake(f"{prefix}{doc_id}".encode(), digest_size=8).digest(), "big")
        out[i] = (h >> 11) / _TWO_53
    return out


def batch_ids(batch: pa.Table) -> list[str | None]:
    return batch.column("id").to_pylist()


# -- token counts --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    """A local tokenizer.json, loaded once per worker process."""
    from curate.train.tokenizer import Tokenizer

    return Tokenizer.from_file(path)


def token_counts(batch: pa.Table, tokenizer: str | None) -> np.ndarray:
    """Tokens per document (int64): encoded with `tokenizer` (a local tokenizer.json such as the one `curate train`
    writes; the end-of-document token is not counted), or, with no tokenizer, whitespace-separated words."""
    docs = texts(batch)
    if tokenizer is None:
        return np.fromiter((len(t.split()) for t in docs), np.int64, len(docs))
    encoded = _tokenizer(tokenizer).encode_batch(docs)
    return np.fromiter((len(ids) for ids in encoded), np.int64, len(docs))


def check_tokenizer(tokenizer: str | None) -> None:
    """Fail at validation time on a tokenizer path that is not a file (loading waits for the workers)."""
    import os

    if tokenizer is not None and not os.path.isfile(tokenizer):
        raise ConfigError(
            f"tokenizer '{tokenizer}' is not a file",
            hint="give a local tokenizer.json, or leave it null to count words",
        )


# -- stages --------------------------------------------------------------------------------------------------------


class Sample(Filter):
    """Keep a `rate` share of documents at random, reproducibly: a document is kept when the hash of (seed, id) falls
    below the rate, so a run on one worker or a hundred keeps the same documents. Reason: not_sampled.

    datatrove's SamplerFilter draws from a per-process random stream instead (its choice depends on the
    partitioning); NeMo Curator's sampling on a dataframe likewise."""

    name = "sample"
    input_columns = ("id",)
    # Share of documents to keep, 0..1.
    rate: float
    # Change it for a different (independent) sample of the same documents.
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"sample: rate must be between 0 and 1, not {self.rate}")

    def reject_batch(self, batch: pa.Table) -> pa.Array:
        keep = uniform(self.seed, batch_ids(batch)) < self.rate
        return pa.array(np.where(keep, None, "not_sampled"), pa.string())
