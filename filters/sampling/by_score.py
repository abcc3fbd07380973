"""Selection by a score column, global stages: the top fraction of documents or tokens (`score_top`), and buckets from
cut points or percentiles (`score_buckets`). They work on any numeric column, so that re-selecting needs no
re-scoring (NeMo Curator's split): the scores come from quality/ (a classifier, perplexity) or from the input.

- `score_top`: the top fraction of documents or of tokens by a score, the cut computed over all documents (DCLM).
- `score_buckets`: a bucket column from cut points or (token-weighted, per-language) percentiles: Nemotron-CC's
  quality bins (Su et al. 2024), CCNet's head/middle/tail perplexity buckets (Wenzek et al. 2020).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from curate.stage import Docs, GlobalStage, StageColumns
from curate_filters.sampling.common import (
    above_cut,
    batch_ids,
    check_column_name,
    check_tokenizer,
    cut_point,
    nearest_prefix,
    score_values,
    set_column,
    token_counts,
    top_order,
    uniform,
)


class ScoreTop(GlobalStage):
    """Keep the top `keep_top` fraction of documents, or of tokens (`weight: tokens`), by a numeric column. The cut
    is computed over every document (or over a `sample_fraction` hash sample of them), ties broken by a hash of
    (seed, id); the cut it chose goes into stats.json (counters cut_score, cut_rank, and the weights).

    A global stage: the scores of all live documents come to the driver (about 24 bytes each; a sample for more
    than a few hundred million). Reasons: below_top_cut, missing_score."""

    name = "score_top"
    counts_tokens: ClassVar[bool] = True  # with the pipeline's tokenizer (output.tokenizer) unless it names one
    reasons = ("below_top_cut", "missing_score")
    column: str = "quality_score"
    # Share to keep, 0..1: of documents (weight: docs) or of tokens (weight: tokens).
    keep_top: float
    weight: Literal["docs", "tokens"] = "docs"
    # Local tokenizer.json for weight: tokens; null: the pipeline's (output.tokenizer), else whitespace words.
    tokenizer: str | None = None
    # Estimate the cut from this hash sample of the documents (e.g. 0.01) instead of all of them.
    sample_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_top <= 1.0:
            raise ConfigError(f"score_top: keep_top must be between 0 and 1, not {self.keep_top}")
        if self.sample_fraction is not None and not 0.0 < self.sample_fraction <= 1.0:
            raise ConfigError(f"score_top: sample_fraction must be in (0, 1], not {self.sample_fraction}")
        check_tokenizer(self.tokenizer)

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", "text", self.column))

    def _weights(self, batch: pa.Table) -> np.ndarray:
        if self.weight == "docs":
            return np.ones(batch.num_rows, np.float64)
        return token_counts(batch, self.tokenizer).astype(np.float64)

    def apply_global(self, docs: Docs) -> Docs:
        column, seed, fraction = self.column, self.seed, self.sample_fraction

        def rows(body: pa.Table) -> pa.Table:
            s = score_values(body, column)
            ids = batch_ids(body)
            keep = ~np.isnan(s)
            if fraction is not None:
                keep &= uniform(seed, ids, salt="sample:") < fraction
            tie = uniform(seed, ids, salt="tie:")
            w = self._weights(body)
            return pa.table({"score": s[keep], "tie": tie[keep], "weight": w[keep]})

        table = docs.derive(rows).collect()
        if table.num_rows:
            score = table.column("score").to_numpy()
            tie = table.column("tie").to_numpy()
            weight = table.column("weight").to_numpy()
        else:
            score = tie = weight = np.zeros(0, np.float64)
        order = top_order(score, tie)
        cumulative = np.cumsum(weight[order])
        total = float(cumulative[-1]) if len(cumulative) else 0.0
        k = nearest_prefix(cumulative, self.keep_top * total)
        cut = cut_point(score, tie, order, k)
        self.count("cut_rank", k)
        if k:
            self.count("cut_score", cut[0])  # type: ignore[arg-type]  # a float figure in stats.json's counters
        self.count("sampled_docs" if fraction is not None else "scored_docs", len(score))
        if self.weight == "tokens":
            unit = "sampled_tokens" if fraction is not None else "tokens"
            self.count(f"total_{unit}", int(total))
            self.count(f"kept_{unit}", int(cumulative[k - 1]) if k else 0)

        def decide(body: pa.Table) -> pa.Table:
            s = score_values(body, column)
            keep = above_cut(s, uniform(seed, batch_ids(body), salt="tie:"), cut)
            reason = np.where(keep, None, "below_top_cut").astype(object)
            reason[np.isnan(s)] = "missing_score"
            return body.append_column("reason", pa.array(reason, pa.string()))

        return docs.map_batches(decide)


def weighted_cuts(score: np.ndarray, weight: np.ndarray, percentiles: list[float]) -> list[float]:
    """Cut points at weighted percentiles (0..100): the smallest score at which the documents with a score at or
    below it hold at least p% of the weight."""
    if len(score) == 0:
        return [math.nan] * len(percentiles)
    order = np.argsort(score, kind="mergesort")
    cum = np.cumsum(weight[order])
    total = cum[-1]
    out = []
    for p in percentiles:
        j = int(np.searchsorted(cum, p / 100.0 * total, side="left"))
        out.append(float(score[order[min(j, len(order) - 1)]]))
    return out


class ScoreBuckets(GlobalStage):
    """A bucket column from a numeric column: fixed `cuts` (a list, or one per language), or cut points at
    `percentiles` of the scores (or `bins` equal shares), weighted by documents or by tokens, per language when
    `by_language`. Bucket i holds cuts[i-1] <= score < cuts[i]; `labels` name them (else 0, 1, ...).

    CCNet's perplexity buckets: `{column: perplexity, percentiles: [30, 60], labels: [head, middle, tail],
    by_language: true}`; Nemotron-CC's 20 token-weighted quality bins: `{bins: 20, weight: tokens}`. Computed cut
    points go into stats.json (counters `cut:<language>:<percentile>`), with the documents per bucket. Rejects
    nothing; documents without a score (or a language, when by_language) get a null bucket."""

    name = "score_buckets"
    counts_tokens: ClassVar[bool] = True  # with the pipeline's tokenizer (output.tokenizer) unless it names one
    reasons = ()
    column: str = "quality_score"
    # The column to write: int32 bucket numbers, or strings when labels are given.
    bucket_column: str = "bucket"
    cuts: list[float] | dict[str, list[float]] | None = None
    percentiles: list[float] | None = None
    bins: int | None = None
    weight: Literal["docs", "tokens"] = "docs"
    # Local tokenizer.json for weight: tokens; null: the pipeline's (output.tokenizer), else whitespace words.
    tokenizer: str | None = None
    by_language: bool = False
    language_column: str = "language"
    labels: list[str] | None = None
    # Estimate percentiles from this hash sample of the documents instead of all of them.
    sample_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_column_name(self.bucket_column, "bucket_column")
        given = [k for k in ("cuts", "percentiles", "bins") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError("score_buckets: give exactly one of cuts, percentiles or bins")
        if self.bins is not None:
            if self.bins < 2:
                raise ConfigError(f"score_buckets: bins must be at least 2, not {self.bins}")
            self.percentiles = [100.0 * i / self.bins for i in range(1, self.bins)]
        if self.percentiles is not None:
            if any(not 0 < p < 100 for p in self.percentiles) or sorted(self.percentiles) != self.percentiles:
                raise ConfigError(f"score_buckets: percentiles must rise strictly within (0, 100): {self.percentiles}")
            n_cuts = len(self.percentiles)
        else:
            lists = self.cuts.values() if isinstance(self.cuts, dict) else [self.cuts]
            for c in lists:
                if list(c) != sorted(c):  # type: ignore[arg-type]
                    raise ConfigError(f"score_buckets: cuts must be in ascending order: {c}")
            n_cuts = len(next(iter(lists), []))  # type: ignore[arg-type]
            if any(len(c) != n_cuts for c in lists):  # type: ignore[arg-type]
                raise ConfigError("score_buckets: every language needs the same number of cuts")
        if self.labels is not None and len(self.labels) != n_cuts + 1:
            raise ConfigError(
                f"score_buckets: {n_cuts} cut(s) make {n_cuts + 1} buckets, but {len(self.labels)} label(s) are given"
            )
        if self.sample_fraction is not None and not 0.0 < self.sample_fraction <= 1.0:
            raise ConfigError(f"score_buckets: sample_fraction must be in (0, 1], not {self.sample_fraction}")
        check_tokenizer(self.tokenizer)

    def columns(self) -> StageColumns:
        per_language = self.by_language or isinstance(self.cuts, dict)
        inputs = ("id", "text", self.column) + ((self.language_column,) if per_language else ())
        dtype = pa.string() if self.labels is not None else pa.int32()
        return super().columns()._replace(input=inputs, output={self.bucket_column: dtype})

    def _languages(self, batch: pa.Table) -> np.ndarray:
        if not (self.by_language or isinstance(self.cuts, dict)):
            return np.full(batch.num_rows, "*", object)
        return np.array(batch.column(self.language_column).to_pylist(), object)

    def _rows(self, body: pa.Table) -> pa.Table:
        """(language, score, weight) of the documents with a score (and a language), or of a hash sample of them."""
        s = score_values(body, self.column)
        langs = self._languages(body)
        keep = ~np.isnan(s) & np.array([lang is not None for lang in langs], bool)
        if self.sample_fraction is not None:
            keep &= uniform(self.seed, batch_ids(body), salt="sample:") < self.sample_fraction
        need_weight = self.cuts is None and self.weight == "tokens"
        w = token_counts(body, self.tokenizer).astype(np.float64) if need_weight else np.ones(len(s))
        return pa.table({"language": pa.array(langs[keep], pa.string()), "score": s[keep], "weight": w[keep]})

    def _cuts(self, langs: np.ndarray, score: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        """The cut points per language: given, or at the percentiles of the collected scores (counted)."""
        if self.cuts is None:
            cuts: dict[str, list[float]] = {}
            for lang in sorted(set(langs.tolist())):
                mine = langs == lang
                cuts[lang] = weighted_cuts(score[mine], weight[mine], list(self.percentiles or []))
                for p, c in zip(self.percentiles or [], cuts[lang]):
                    self.count(f"cut:{lang}:{p:g}", c)  # type: ignore[arg-type]  # float figures in stats.json
        elif isinstance(self.cuts, dict):
            cuts = {k: list(v) for k, v in self.cuts.items()}
        else:
            cuts = {"*": list(self.cuts)}
        return {k: np.array(v, np.float64) for k, v in cuts.items()}

    def apply_global(self, docs: Docs) -> Docs:
        # One narrow pass: the scores (or a sample of them) come to the driver for the percentiles and the counts.
        table = docs.derive(self._rows).collect()
        langs = table.column("language").to_numpy(zero_copy_only=False) if table.num_rows else np.zeros(0, object)
        score = table.column("score").to_numpy() if table.num_rows else np.zeros(0)
        weight = table.column("weight").to_numpy() if table.num_rows and self.cuts is None else np.zeros(0)
        table_cuts = self._cuts(langs, score, weight)
        prefix = "sampled_docs" if self.sample_fraction is not None else "docs"
        numbers = _bucket_numbers(score, langs, table_cuts)
        for b, n in zip(*np.unique(numbers, return_counts=True)):
            key = "null" if b < 0 else (self.labels[b] if self.labels is not None else str(b))
            self.count(f"{prefix}:{key}", int(n))
        column, name, labels = self.column, self.bucket_column, self.labels

        def assign(body: pa.Table) -> pa.Table:
            b = _bucket_numbers(score_values(body, column), self._languages(body), table_cuts)
            if labels is not None:
                arr = pa.array(np.array([None, *labels], object)[b + 1], pa.string())
            else:
                arr = pa.array(b, pa.int32(), mask=b < 0)
            return set_column(body, name, arr)

        return docs.map_batches(assign)


def _bucket_numbers(score: np.ndarray, langs: np.ndarray, cuts: dict[str, np.ndarray]) -> np.ndarray:
    """Bucket of each score under its language's cuts (cuts[i-1] <= score < cuts[i]); -1 without score or cuts."""
    out = np.full(len(score), -1, np.int64)
    for lang, c in cuts.items():
        mine = (langs == lang) & ~np.isnan(score)
        if mine.any():
            out[mine] = np.searchsorted(c, score[mine], side="right")
    return out
