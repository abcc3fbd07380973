"""Token-distribution KL divergence against the corpus (LLaMA 3, Dubey et al. 2024, "The Llama 3 Herd of Models",
section 3.1.1: "we use a token-distribution Kullback-Leibler divergence to filter out documents containing excessive
numbers of outlier tokens compared to the training corpus distribution"). The paper gives neither the tokens, the
smoothing nor a threshold; this module states its choices:

- tokens: maximal runs of letters and digits (`[^\\W_]+`, Unicode), lower-cased, so "Hello, World!" is
  [hello, world]. Each token is hashed (XXH3-64 of its UTF-8, seed 0) into one of `buckets` buckets (2^20 by default),
  so the corpus distribution has a fixed size however large the vocabulary;
- the corpus distribution Q: the token count of every bucket summed over all live documents (one global pass), or
  read from a Parquet file (`distribution:`) that an earlier run wrote (`write_distribution:`), e.g. from a large or
  a reference corpus. Additive (Lidstone) smoothing: q_b = (C_b + alpha) / (N + alpha * B), alpha = `smoothing`,
  N = the corpus's tokens, B = buckets; Q counts every document, the scored one included;
- a document's distribution P: its own bucket frequencies, p_b = c_b / n;
- the score: KL(P || Q) = sum_b p_b ln(p_b / q_b), in nats, over the buckets the document uses. It is the cross
  entropy of the document under the corpus unigram model minus the document's own entropy: high when the document's
  tokens are rare in the corpus (random strings, base64, foreign scripts) or when a few rare tokens dominate it.

Every document gets the column `token_kl` (null when it has no token); with `max_kl` a document scoring above it is
rejected as `token_kl_outlier`. Integer counts and per-document arithmetic: the same scores on any runner and batching.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from curate.errors import ConfigError, InputError
from curate.stage import Docs, GlobalStage

OUTLIER = "token_kl_outlier"
COLUMN = "token_kl"
DEFAULT_BUCKETS = 1 << 20
# The distribution's rows: one per bucket with a non-zero count.
COUNTS = pa.schema([("bucket", pa.int32()), ("count", pa.int64())])
# Written into the Parquet schema of a distribution file, checked when one is read.
META_KEY = b"curate.token_kl"
TOKENS_VERSION = "lower-alnum-runs/xxh3_64/v1"

_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """The tokens of a text: maximal runs of letters and digits, lower-cased."""
    return _TOKEN.findall(text.lower())


def token_buckets(text: str, buckets: int) -> np.ndarray:
    """The bucket of every token of a text (int64), in order."""
    digest = xxhash.xxh3_64_intdigest
    return np.fromiter((digest(t.encode("utf-8")) % buckets for t in tokens(text)), np.int64)


def log_q(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """ln q_b for every bucket from the corpus counts C_b: ln((C_b + alpha) / (N + alpha * B))."""
    counts = np.asarray(counts, np.float64)
    return np.log(counts + smoothing) - math.log(float(counts.sum()) + smoothing * len(counts))


def kl_divergence(ids: np.ndarray, logq: np.ndarray) -> float | None:
    """KL(P || Q) in nats for one document's token buckets `ids` (None without tokens)."""
    if len(ids) == 0:
        return None
    uniq, c = np.unique(ids, return_counts=True)
    p = c / len(ids)
    return float(np.sum(p * (np.log(p) - logq[uniq])))


def dense_counts(table: pa.Table, buckets: int) -> np.ndarray:
    """A COUNTS table (any row order, a bucket possibly on several rows) -> the count of every bucket."""
    out = np.zeros(buckets, np.int64)
    if table.num_rows:
        b = table.column("bucket").to_numpy(zero_copy_only=False).astype(np.int64)
        if b.min() < 0 or b.max() >= buckets:
            raise InputError(f"token_kl: distribution has bucket {int(b.max())} outside 0..{buckets - 1}")
        np.add.at(out, b, table.column("count").to_numpy(zero_copy_only=False).astype(np.int64))
    return out


def sparse_counts(counts: np.ndarray) -> pa.Table:
    """The count of every bucket -> a COUNTS table of the non-zero ones, by bucket, with the file's metadata."""
    nz = np.flatnonzero(counts)
    meta = {META_KEY: json.dumps({"buckets": len(counts), "tokens": TOKENS_VERSION}).encode()}
    return pa.Table.from_arrays(
        [pa.array(nz.astype(np.int32), pa.int32()), pa.array(counts[nz], pa.int64())],
        schema=COUNTS.with_metadata(meta),
    )


def read_distribution(path: str, buckets: int) -> np.ndarray:
    """The bucket counts of a distribution written by `write_distribution:` (a folder of Parquet parts, one file,
    a glob or a URL); its `buckets` must equal the stage's."""
    from curate.io.base import expand_paths

    parts = [pq.read_table(p) for p in expand_paths(path, (".parquet",))]
    for t in parts:
        if "bucket" not in t.column_names or "count" not in t.column_names:
            raise InputError(f"token_kl: {path} is not a token distribution (it needs columns bucket, count)")
        meta = (t.schema.metadata or {}).get(META_KEY)
        if meta is not None:
            info = json.loads(meta)
            if info.get("buckets") != buckets or info.get("tokens") != TOKENS_VERSION:
                raise ConfigError(
                    f"token_kl: distribution {path} was written with buckets: {info.get('buckets')} and tokens "
                    f"{info.get('tokens')!r}; this stage has buckets: {buckets} and tokens {TOKENS_VERSION!r}",
                    hint=f"set buckets: {info.get('buckets')}, or write the distribution again",
                )
    table = pa.concat_tables([t.select(["bucket", "count"]).cast(COUNTS) for t in parts]) if parts else None
    return dense_counts(table if table is not None else COUNTS.empty_table(), buckets)


# -- the steps of the global pass (module level: they pickle by reference) -------------------------------------------


class BatchCounts:
    """A batch of documents -> the token count of every bucket it uses (schema COUNTS)."""

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        ids = [token_buckets(t or "", self.buckets) for t in texts]
        allb = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        if not len(allb):
            return COUNTS.empty_table()
        uniq, c = np.unique(allb, return_counts=True)
        return pa.Table.from_arrays([pa.array(uniq.astype(np.int32)), pa.array(c.astype(np.int64))], schema=COUNTS)


def sum_counts(t: pa.Table) -> pa.Table:
    """Whole bucket groups -> one row per bucket with its summed count."""
    if t.num_rows == 0:
        return COUNTS.empty_table()
    g = t.group_by("bucket", use_threads=False).aggregate([("count", "sum")])
    return pa.Table.from_arrays([g.column("bucket"), g.column("count_sum")], schema=COUNTS)


class Score:
    """The documents -> the same rows with `token_kl` and a `reason` (token_kl_outlier above max_kl)."""

    def __init__(self, logq: np.ndarray, max_kl: float | None, min_tokens: int) -> None:
        self.logq = logq
        self.max_kl = max_kl
        self.min_tokens = min_tokens

    def __call__(self, body: pa.Table) -> pa.Table:
        buckets = len(self.logq)
        scores: list[float | None] = []
        reasons: list[str | None] = []
        for text in body.column("text").to_pylist():
            ids = token_buckets(text or "", buckets)
            kl = kl_divergence(ids, self.logq)
            scores.append(kl)
            out = self.max_kl is not None and kl is not None and len(ids) >= self.min_tokens and kl > self.max_kl
            reasons.append(OUTLIER if out else None)
        body = body.append_column(COLUMN, pa.array(scores, pa.float64()))
        return body.append_column("reason", pa.array(reasons, pa.string()))


def count_rows(batch: pa.Table) -> pa.Table:
    return pa.table({"n": pa.array([batch.num_rows], pa.int64())})


# -- the stage -------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class TokenKL(GlobalStage):
    """Score every document by the KL divergence of its token distribution from the corpus's (LLaMA 3, section
    3.1.1) and reject outliers: documents made of tokens the corpus rarely uses (random strings, encoded data).

    Tokens are lower-cased runs of letters and digits hashed into `buckets` buckets; the corpus distribution Q is
    counted over all live documents in one global pass, or read from `distribution` (written by an earlier run's
    `write_distribution`), with additive smoothing `smoothing`. The column `token_kl` (KL(P || Q) in nats, null for
    a document without tokens) is written on every document, rejected ones included; with `max_kl`, a document of at
    least `min_tokens` tokens scoring above it is rejected as `token_kl_outlier`. Counters: corpus_tokens,
    corpus_buckets (non-zero), scored.
    """

    name = "token_kl"
    input_columns = ("id", "text")
    output_columns: ClassVar[dict[str, pa.DataType]] = {COLUMN: pa.float64()}
    rejected_columns: ClassVar[dict[str, pa.DataType]] = {COLUMN: pa.float64()}  # rejected rows keep their score
    reasons = (OUTLIER,)

    # Reject documents whose KL(P || Q) in nats is above this; null: only write the column (study it first: the
    # score falls as a document's own entropy grows). On Gutenberg paragraphs with the defaults, prose scores 2-6,
    # index pages up to 8.3, random strings and base64 8.8-10.6.
    max_kl: float | None = None
    # Documents with fewer tokens are scored but never rejected (a short text's P is too coarse to judge).
    min_tokens: int = 20
    # Number of hash buckets of the distribution (its size: 12 bytes per non-empty bucket on disk).
    buckets: int = DEFAULT_BUCKETS
    # Additive smoothing alpha of Q: q_b = (C_b + alpha) / (N + alpha * buckets). Keep alpha * buckets well below
    # the corpus's tokens, or Q is mostly smoothing.
    smoothing: float = 0.5
    # Read Q from this Parquet distribution (a folder, file, glob or URL) instead of counting the corpus.
    distribution: str | None = None
    # Also write Q (the counts, with the buckets in the schema metadata) to this folder, committed with the run.
    write_distribution: str | None = None

    def __post_init__(self) -> None:
        if self.max_kl is not None and (isinstance(self.max_kl, bool) or not self.max_kl >= 0):
            raise ConfigError(f"token_kl: max_kl must be a number >= 0 (nats), got {self.max_kl!r}",
                              hint="or null to only write the token_kl column")  # fmt: skip
        if isinstance(self.min_tokens, bool) or not isinstance(self.min_tokens, int) or self.min_tokens < 0:
            raise ConfigError(f"token_kl: min_tokens must be an integer >= 0, got {self.min_tokens!r}")
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, int) or not 1 <= self.buckets <= 1 << 31:
            raise ConfigError(f"token_kl: buckets must be an integer from 1 to 2^31, got {self.buckets!r}",
                              hint="2^20 (1048576), the default, suits most corpora")  # fmt: skip
        if isinstance(self.smoothing, bool) or not self.smoothing > 0 or math.isinf(self.smoothing):
            raise ConfigError(
                f"token_kl: smoothing must be a number > 0, got {self.smoothing!r}",
                hint="0.5 adds half a count to every bucket; 0 would make unseen tokens infinite",
            )
        if self.distribution is not None and self.write_distribution is not None:
            raise ConfigError(
                "token_kl: give distribution (read Q) or write_distribution (write the Q counted here), not both",
                hint="a distribution read from a file is already written",
            )
        for key in ("distribution", "write_distribution"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"token_kl: {key} must be a path, got {value!r}")

    def preflight(self) -> None:
        if self.distribution is not None:
            from curate.io.base import expand_paths

            expand_paths(self.distribution, (".parquet",))  # InputError naming it when absent

    def corpus_counts(self, docs: Docs) -> np.ndarray:
        """Q's counts: read from `distribution`, or counted over the live documents."""
        if self.distribution is not None:
            return read_distribution(self.distribution, self.buckets)
        table = docs.derive(BatchCounts(self.buckets)).group_by("bucket", sum_counts).collect()
        return dense_counts(table, self.buckets)

    def apply_global(self, docs: Docs) -> Docs:
        counts = self.corpus_counts(docs)
        if self.write_distribution is not None:
            docs.write_side("distribution", docs.table(sparse_counts(counts)), self.write_distribution)
        self.count("corpus_tokens", int(counts.sum()))
        self.count("corpus_buckets", int(np.count_nonzero(counts)))
        return docs.map_batches(Score(log_q(counts, self.smoothing), self.max_kl, self.min_tokens))


def scores(texts: list[str], *, buckets: int = DEFAULT_BUCKETS, smoothing: float = 0.5) -> list[float | None]:
    """token_kl of each text against the distribution of `texts` themselves (the stage's global pass in memory):
    for studying thresholds on a sample."""
    batch = pa.table({"text": pa.array(texts, pa.string())})
    counts = dense_counts(sum_counts(BatchCounts(buckets)(batch)), buckets)
    out = Score(log_q(counts, smoothing), None, 0)(batch)
    return out.column(COLUMN).to_pylist()
