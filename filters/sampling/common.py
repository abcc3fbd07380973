"""What the sampling, selection and scoring stages share: a document's hash draw (a hash of (seed, id), never a random
stream in reading order, so the same document gets the same decision on any runner, any number of workers and any
batch size), token counts (a local tokenizer.json, or words), score columns, and the cut of a ranking.

Only the standard stage API and numpy here: quality/ (scoring) imports this module, and nothing here imports quality/.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError, StageError
from curate.stage import COPIES
from curate_filters.heuristics.common import texts

_TWO_53 = float(1 << 53)

# -- hash draws ----------------------------------------------------------------------------------------------------


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


def token_counts(batch: pa.Table, tokenizer: str | None) -> np.ndarray:
    """Tokens per document (int64): encoded with `tokenizer` (a local tokenizer.json, loaded once per process;
    special tokens not counted: what stats.json counts with the pipeline's tokenizer and `curate tokenize` writes
    before each document's EOS), or, with no tokenizer, whitespace-separated words."""
    docs = texts(batch)
    if tokenizer is None:
        return np.fromiter((len(t.split()) for t in docs), np.int64, len(docs))
    from curate.train.tokenizer import count_tokens

    return count_tokens(docs, tokenizer)


def check_tokenizer(tokenizer: str | None) -> None:
    """Fail at validation time on a tokenizer path that is not a file (loading waits for the workers)."""
    if tokenizer is not None and not os.path.isfile(tokenizer):
        raise ConfigError(
            f"tokenizer '{tokenizer}' is not a file",
            hint="give a local tokenizer.json, or leave it null to count words",
        )


def number(value: float | str, what: str) -> float:
    """A count that YAML may hand over as a string ('2e9' is a string to YAML 1.1)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise ConfigError(f"{what} must be a non-negative number, not {value!r}")
    return out


def copies_of(batch: pa.Table) -> np.ndarray:
    """How many times each document is written so far (the COPIES column, 1 where absent or null)."""
    if COPIES not in batch.column_names:
        return np.ones(batch.num_rows, np.int64)
    return pc.fill_null(batch.column(COPIES), 1).to_numpy(zero_copy_only=False).astype(np.int64)


# -- score columns -------------------------------------------------------------------------------------------------


def score_values(batch: pa.Table, column: str) -> np.ndarray:
    """The score column as float64, NaN where null; a non-numeric column is a StageError naming it."""
    col = batch.column(column)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
        raise StageError(f"score column '{column}' holds {col.type}, not numbers", hint="name a numeric column")
    return pc.fill_null(pc.cast(col, pa.float64()), math.nan).to_numpy(zero_copy_only=False)


def check_column_name(name: str, key: str) -> None:
    """A column a stage writes (a score, a bucket) must not be a core or engine column."""
    if not name or name.startswith("__") or name in ("id", "text", "url", "source", "reason"):
        raise ConfigError(f"{key} '{name}' cannot be used for a score (core and engine columns are reserved)")


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """`table` with column `name` replaced by `values`, or added."""
    idx = table.schema.get_field_index(name)
    return table.set_column(idx, name, values) if idx >= 0 else table.append_column(name, values)


# -- the cut of a ranking ------------------------------------------------------------------------------------------


def top_order(score: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Indices from the best document to the worst: higher score first, ties broken by the hash draw."""
    return np.lexsort((tie, -score))


def nearest_prefix(cumulative: np.ndarray, target: float) -> int:
    """The number k of leading documents whose weight (cumulative: running totals) is closest to `target`
    (0 <= k <= n)."""
    n = len(cumulative)
    if n == 0 or target <= 0:
        return 0
    j = int(np.searchsorted(cumulative, target, side="left"))  # cumulative[j] >= target
    if j >= n:
        return n
    below = cumulative[j - 1] if j > 0 else 0.0
    return j if target - below <= cumulative[j] - target else j + 1


def cut_point(score: np.ndarray, tie: np.ndarray, order: np.ndarray, k: int) -> tuple[float, float]:
    """(score, tie) of the last of the k best documents under `order`; with k = 0 one that nothing passes."""
    if k == 0:
        return math.inf, math.inf
    return float(score[order[k - 1]]), float(tie[order[k - 1]])


def above_cut(score: np.ndarray, tie: np.ndarray, cut: tuple[float, float]) -> np.ndarray:
    """True for the documents at or above the cut (cut_point) in the order top_order sorts by; NaN scores fail."""
    with np.errstate(invalid="ignore"):
        return (score > cut[0]) | ((score == cut[0]) & (tie <= cut[1]))
