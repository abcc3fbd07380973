"""Deterministic sampling, up-sampling, token budgets and mixtures: a document's fate is a hash of (seed, id), never a
random stream in reading order, so the same document gets the same decision on any runner, any number of workers
and any batch size. Also the token counts that token-weighted stages share (a local tokenizer.json, or words)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError, StageError
from curate.run.sink import COPIES
from curate.stage import Docs, Filter, GlobalStage, Mapper
from curate_filters.heuristics.common import texts

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


# -- up-sampling, token budgets and mixtures -----------------------------------------------------------------------


def _number(value: float | str, what: str) -> float:
    """A count that YAML may hand over as a string ('2e9' is a string to YAML 1.1)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise ConfigError(f"{what} must be a non-negative number, not {value!r}")
    return out


def _copies_of(batch: pa.Table) -> np.ndarray:
    """How many times each document is written so far (the COPIES column, 1 where absent or null)."""
    if COPIES not in batch.column_names:
        return np.ones(batch.num_rows, np.int64)
    return pc.fill_null(batch.column(COPIES), 1).to_numpy(zero_copy_only=False).astype(np.int64)


class Repeat(Mapper):
    """Up-sample chosen buckets: a document whose `column` value is named in `times` is written that many times
    (FineWeb-Edu's and DCLM's repetition of their best buckets), the extra ones as copies with derived ids
    `<id>#2`, `<id>#3` ... Copies are counted apart in stats.json (`copies`), never as input documents.

    Sets the int column `copies` (multiplying one an earlier stage set); a document in no named bucket keeps 1."""

    name = "repeat"
    output_columns = {COPIES: pa.int32()}
    # The bucket column (score_buckets' `bucket`, `source`, any column); its values are compared as strings.
    column: str = "bucket"
    # Bucket value -> times written (1 = once, as without the stage).
    times: dict[str, int] | dict[int, int]

    def __post_init__(self) -> None:
        self.input_columns = ("id", self.column)  # type: ignore[misc]  # named in YAML: checked per instance
        self._times = {str(k): int(v) for k, v in self.times.items()}
        bad = {k: v for k, v in self._times.items() if v < 1}
        if bad:
            raise ConfigError(f"repeat: times must be at least 1 (reject documents with a filter instead): {bad}")

    def map_batch(self, batch: pa.Table) -> pa.Table:
        values = batch.column(self.column).to_pylist()
        times = np.array([self._times.get(str(v), 1) if v is not None else 1 for v in values], np.int64)
        copies = _copies_of(batch) * times
        self.count("copies", int((copies - _copies_of(batch)).sum()))
        arr = pa.array(copies, pa.int32())
        idx = batch.schema.get_field_index(COPIES)
        return batch.set_column(idx, COPIES, arr) if idx >= 0 else batch.append_column(COPIES, arr)


class TokenBudget(GlobalStage):
    """Keep documents until `tokens` tokens: in the order of a hash of (seed, id) (a uniform sample of that many
    tokens, the same on any runner), or by a numeric column, highest first (`order_by: quality_score`). The kept
    documents hold at most `tokens` tokens. Reason: over_token_budget.

    Tokens are counted with `tokenizer` (a local tokenizer.json, e.g. the one `curate train` writes) or as words;
    a document written k times (`copies`) counts k times. Counters: total_tokens, kept_tokens, kept_docs."""

    name = "token_budget"
    tokens: float | str
    tokenizer: str | None = None
    order_by: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._budget = _number(self.tokens, "token_budget: tokens")
        self.input_columns = ("id", "text") + ((self.order_by,) if self.order_by else ())  # type: ignore[misc]
        check_tokenizer(self.tokenizer)

    def _keys(self, body: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(score, tie) per document: higher first, then the hash draw (score 0 without order_by)."""
        from curate_filters.quality.score import score_values

        tie = uniform(self.seed, batch_ids(body), salt="budget:")
        if self.order_by is None:
            return np.zeros(body.num_rows), tie
        s = score_values(body, self.order_by)
        return np.where(np.isnan(s), -np.inf, s), tie  # documents without a score come last

    def apply_global(self, docs: Docs) -> Docs:
        def rows(body: pa.Table) -> pa.Table:
            score, tie = self._keys(body)
            w = token_counts(body, self.tokenizer) * _copies_of(body)
            return pa.table({"score": score, "tie": tie, "tokens": w.astype(np.float64)})

        table = docs.derive(rows).collect()
        score = table.column("score").to_numpy() if table.num_rows else np.zeros(0)
        tie = table.column("tie").to_numpy() if table.num_rows else np.zeros(0)
        tokens = table.column("tokens").to_numpy() if table.num_rows else np.zeros(0)
        order = np.lexsort((tie, -score))
        cumulative = np.cumsum(tokens[order])
        k = int(np.searchsorted(cumulative, self._budget, side="right"))  # at most the budget
        cut = (float(score[order[k - 1]]), float(tie[order[k - 1]])) if k else (math.inf, math.inf)
        self.count("total_tokens", int(cumulative[-1]) if len(cumulative) else 0)
        self.count("kept_tokens", int(cumulative[k - 1]) if k else 0)
        self.count("kept_docs", k)

        def decide(body: pa.Table) -> pa.Table:
            s, t = self._keys(body)
            keep = (s > cut[0]) | ((s == cut[0]) & (t <= cut[1]))
            return body.append_column("reason", pa.array(np.where(keep, None, "over_token_budget"), pa.string()))

        return docs.map_batches(decide)


class Mix(GlobalStage):
    """A token-weighted mixture: each group of documents (by `by`: the input source, a bucket, any column) gives
    its `weights` share of `tokens` tokens (`tokens: 2e9, weights: {web: 0.7, books: 0.3}`). A group with fewer
    tokens than its share is repeated (whole epochs, then a hash-chosen part of the next), at most `max_epochs`
    times; when a share would need more, the whole budget shrinks until it fits, so the weights hold and the
    realised total is stated. A group with more is sampled by a hash of (seed, id). Deterministic on any runner.

    Sets `copies` (a document an earlier `repeat` wrote k times counts, and is chosen, as k times its tokens);
    reasons: not_selected, not_in_mix (a group without a weight). Counters per group g:
    tokens:g and epochs:g (realised), target_tokens:g, available_tokens:g, docs:g; budget_scale (1 when the
    budget fit)."""

    name = "mix"
    output_columns = {COPIES: pa.int32()}
    tokens: float | str
    weights: dict[str, float]
    by: str = "source"
    # Times a group's documents may be seen at most (DCLM, Muennighoff et al. 2023: up to 4 epochs cost little).
    max_epochs: float = 4.0
    tokenizer: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._budget = _number(self.tokens, "mix: tokens")
        if not self.weights or any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ConfigError(f"mix: weights must be non-negative with a positive sum: {self.weights}")
        if self.max_epochs <= 0:
            raise ConfigError(f"mix: max_epochs must be positive, not {self.max_epochs}")
        total = sum(self.weights.values())
        self._share = {str(g): w / total for g, w in self.weights.items()}  # weights need not sum to 1
        self.input_columns = ("id", "text", self.by)  # type: ignore[misc]
        check_tokenizer(self.tokenizer)

    def _groups(self, body: pa.Table) -> list[str | None]:
        return [None if v is None else str(v) for v in body.column(self.by).to_pylist()]

    def plan(self, groups: np.ndarray, tie: np.ndarray, tokens: np.ndarray) -> dict[str, tuple[int, float]]:
        """Per group: (whole epochs every document gets, the hash draw at or below which it gets one more)."""
        available = {g: float(tokens[groups == g].sum()) for g in self._share}
        empty = [g for g, w in self._share.items() if w > 0 and available[g] == 0]
        if empty:
            raise StageError(f"mix: no tokens in group(s) {', '.join(map(repr, empty))} of '{self.by}'")
        target = {g: w * self._budget for g, w in self._share.items()}
        scale = min([1.0] + [self.max_epochs * available[g] / t for g, t in target.items() if t > 0])
        self.count("budget_scale", scale)  # type: ignore[arg-type]  # a float figure in stats.json
        out: dict[str, tuple[int, float]] = {}
        for g in self._share:
            want = target[g] * scale
            mine = groups == g
            t, w = tie[mine], tokens[mine]
            order = np.argsort(t, kind="mergesort")
            full = int(want // available[g]) if available[g] else 0
            rest = want - full * available[g]
            k = _nearest(np.cumsum(w[order]), rest)
            cut = float(t[order[k - 1]]) if k else -1.0
            out[g] = (full, cut)
            realised = full * available[g] + (float(np.cumsum(w[order])[k - 1]) if k else 0.0)
            self.count(f"target_tokens:{g}", int(round(target[g])))
            self.count(f"available_tokens:{g}", int(available[g]))
            self.count(f"tokens:{g}", int(realised))
            self.count(f"epochs:{g}", round(realised / available[g], 6) if available[g] else 0.0)  # type: ignore[arg-type]
            self.count(f"docs:{g}", int(mine.sum()) if full else k)
        return out

    def apply_global(self, docs: Docs) -> Docs:
        def rows(body: pa.Table) -> pa.Table:
            groups = self._groups(body)
            tie = uniform(self.seed, batch_ids(body), salt="mix:")
            tokens = token_counts(body, self.tokenizer) * _copies_of(body)  # a repeated document counts k times
            return pa.table({"group": pa.array(groups, pa.string()), "tie": tie, "tokens": tokens})

        table = docs.derive(rows).collect()
        groups = np.array(table.column("group").to_pylist() if table.num_rows else [], object)
        tie = table.column("tie").to_numpy() if table.num_rows else np.zeros(0)
        tokens = table.column("tokens").to_numpy().astype(np.float64) if table.num_rows else np.zeros(0)
        plan = self.plan(groups, tie, tokens)

        def decide(body: pa.Table) -> pa.Table:
            t = uniform(self.seed, batch_ids(body), salt="mix:")
            prior = _copies_of(body)
            copies = np.zeros(body.num_rows, np.int64)
            reason = np.full(body.num_rows, None, object)
            for i, g in enumerate(self._groups(body)):
                if g not in plan:
                    reason[i] = "not_in_mix"
                    continue
                full, cut = plan[g]
                copies[i] = prior[i] * (full + (t[i] <= cut))
                if copies[i] == 0:
                    reason[i] = "not_selected"
            idx = body.schema.get_field_index(COPIES)
            arr = pa.array(np.maximum(copies, 1), pa.int32())
            body = body.set_column(idx, COPIES, arr) if idx >= 0 else body.append_column(COPIES, arr)
            return body.append_column("reason", pa.array(reason, pa.string()))

        return docs.map_batches(decide)


def _nearest(cumulative: np.ndarray, target: float) -> int:
    """The number k of leading documents whose tokens come closest to `target` (0 <= k <= n)."""
    n = len(cumulative)
    if n == 0 or target <= 0:
        return 0
    j = int(np.searchsorted(cumulative, target, side="left"))
    if j >= n:
        return n
    below = cumulative[j - 1] if j > 0 else 0.0
    return j if target - below <= cumulative[j] - target else j + 1
