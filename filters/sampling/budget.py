"""Token budgets and mixtures, global stages: keep documents up to a number of tokens (`token_budget`), or give
each group of documents its share of a token budget, repeating small groups and sampling large ones (`mix`). Every
choice is a hash of (seed, id), so it is the same on any runner."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError, StageError
from curate.stage import COPIES, Docs, GlobalStage, StageColumns
from curate_filters.sampling.common import (
    above_cut,
    batch_ids,
    check_tokenizer,
    copies_of,
    cut_point,
    nearest_prefix,
    number,
    score_values,
    set_column,
    token_counts,
    top_order,
    uniform,
)


class TokenBudget(GlobalStage):
    """Keep documents until `tokens` tokens: in the order of a hash of (seed, id) (a uniform sample of that many
    tokens, the same on any runner), or by a numeric column, highest first (`order_by: quality_score`). The kept
    documents hold at most `tokens` tokens. Reason: over_token_budget.

    Tokens are counted with `tokenizer` (a local tokenizer.json, e.g. the one `curate train` writes) or as words;
    a document written k times (`copies`) counts k times. Counters: total_tokens, kept_tokens, kept_docs."""

    name = "token_budget"
    reasons = ("over_token_budget",)
    tokens: float | str
    tokenizer: str | None = None
    order_by: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._budget = number(self.tokens, "token_budget: tokens")
        check_tokenizer(self.tokenizer)

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", "text") + ((self.order_by,) if self.order_by else ()))

    def _keys(self, body: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(score, tie) per document: higher first, then the hash draw (score 0 without order_by)."""
        tie = uniform(self.seed, batch_ids(body), salt="budget:")
        if self.order_by is None:
            return np.zeros(body.num_rows), tie
        s = score_values(body, self.order_by)
        return np.where(np.isnan(s), -np.inf, s), tie  # documents without a score come last

    def apply_global(self, docs: Docs) -> Docs:
        def rows(body: pa.Table) -> pa.Table:
            score, tie = self._keys(body)
            w = token_counts(body, self.tokenizer) * copies_of(body)
            return pa.table({"score": score, "tie": tie, "tokens": w.astype(np.float64)})

        table = docs.derive(rows).collect()
        score = table.column("score").to_numpy() if table.num_rows else np.zeros(0)
        tie = table.column("tie").to_numpy() if table.num_rows else np.zeros(0)
        tokens = table.column("tokens").to_numpy() if table.num_rows else np.zeros(0)
        order = top_order(score, tie)
        cumulative = np.cumsum(tokens[order])
        k = int(np.searchsorted(cumulative, self._budget, side="right"))  # at most the budget
        cut = cut_point(score, tie, order, k)
        self.count("total_tokens", int(cumulative[-1]) if len(cumulative) else 0)
        self.count("kept_tokens", int(cumulative[k - 1]) if k else 0)
        self.count("kept_docs", k)

        def decide(body: pa.Table) -> pa.Table:
            keep = above_cut(*self._keys(body), cut)
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
    reasons = ("not_selected", "not_in_mix")
    tokens: float | str
    weights: dict[str, float]
    by: str = "source"
    # Times a group's documents may be seen at most (DCLM, Muennighoff et al. 2023: up to 4 epochs cost little).
    max_epochs: float = 4.0
    tokenizer: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._budget = number(self.tokens, "mix: tokens")
        if not self.weights or any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ConfigError(f"mix: weights must be non-negative with a positive sum: {self.weights}")
        if self.max_epochs <= 0:
            raise ConfigError(f"mix: max_epochs must be positive, not {self.max_epochs}")
        total = sum(self.weights.values())
        self._share = {str(g): w / total for g, w in self.weights.items()}  # weights need not sum to 1
        check_tokenizer(self.tokenizer)

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", "text", self.by))

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
            k = nearest_prefix(np.cumsum(w[order]), rest)
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
            tokens = token_counts(body, self.tokenizer) * copies_of(body)  # a repeated document counts k times
            return pa.table({"group": pa.array(groups, pa.string()), "tie": tie, "tokens": tokens})

        table = docs.derive(rows).collect()
        groups = np.array(table.column("group").to_pylist() if table.num_rows else [], object)
        tie = table.column("tie").to_numpy() if table.num_rows else np.zeros(0)
        tokens = table.column("tokens").to_numpy().astype(np.float64) if table.num_rows else np.zeros(0)
        plan = self.plan(groups, tie, tokens)

        def decide(body: pa.Table) -> pa.Table:
            t = uniform(self.seed, batch_ids(body), salt="mix:")
            prior = copies_of(body)
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
            body = set_column(body, COPIES, pa.array(np.maximum(copies, 1), pa.int32()))
            return body.append_column("reason", pa.array(reason, pa.string()))

        return docs.map_batches(decide)
