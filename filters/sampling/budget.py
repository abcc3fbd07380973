"""Token budgets and mixtures, global stages: keep documents up to a number of tokens (`token_budget`), or give
each group of documents its share of a token budget, repeating small groups and sampling large ones (`mix`). Every
choice is a hash of (seed, id), so it is the same on any runner."""

from __future__ import annotations

import math
from typing import ClassVar

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

    Tokens are counted with `tokenizer` (a local tokenizer.json; null: the pipeline's output.tokenizer, else words);
    a document written k times (`copies`) counts k times. Counters: total_tokens, kept_tokens, kept_docs."""

    name = "token_budget"
    counts_tokens: ClassVar[bool] = True  # with the pipeline's tokenizer (output.tokenizer) unless it names one
    reasons = ("over_token_budget",)
    tokens: float | str
    # Local tokenizer.json to count tokens with; null: the pipeline's (output.tokenizer), else words.
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


REST = "*"  # the key of a weight or rate for every value of `by` not named (null included)


class Mix(GlobalStage):
    """A token-weighted mixture: each group of documents (by `by`: the input source, a bucket, any column) gives
    its `weights` share of `tokens` tokens (`tokens: 2e9, weights: {web: 0.7, books: 0.3}`). A group with fewer
    tokens than its share is repeated (whole epochs, then a hash-chosen part of the next), at most `max_epochs`
    times; when a share would need more, the whole budget shrinks until it fits, so the weights hold and the
    realised total is stated. A group with more is sampled by a hash of (seed, id). Deterministic on any runner.

    Or relative rates, no budget (LLaMA 3's downsampling of over-represented categories): `rates: {0: 0.5, "*": 1}`
    keeps each document of group 0 when its hash draw is below 0.5 and every other document; a rate above 1 repeats
    (2.5: two copies, and a third for half of the documents). Keys of `weights` and `rates` may be integers (an
    integer column such as `topic`); the key "*" stands for every value not named (null included), as one group.

    Sets `copies` (a document an earlier `repeat` wrote k times counts, and is chosen, as k times its tokens);
    reasons: not_selected, not_in_mix (a group without a weight or rate, and no "*"). Counters per group g:
    tokens:g and epochs:g (realised), available_tokens:g, docs:g (kept); with weights also target_tokens:g and
    budget_scale (1 when the budget fit)."""

    name = "mix"
    counts_tokens: ClassVar[bool] = True  # with the pipeline's tokenizer (output.tokenizer) unless it names one
    output_columns = {COPIES: pa.int32()}
    reasons = ("not_selected", "not_in_mix")
    # The budget in tokens, with `weights` (YAML reads 2e9 as a string, which is fine); not with `rates`.
    tokens: float | str | None = None
    # Each group's share of `tokens` (need not sum to 1); "*": every group not named, together.
    weights: dict[str | int, float] | None = None
    # Instead of weights and tokens: each group's keep rate (0.5 halves it, 1 keeps it, 2 doubles it); "*": the rest.
    rates: dict[str | int, float] | None = None
    by: str = "source"
    # Times a group's documents may be seen at most (DCLM, Muennighoff et al. 2023: up to 4 epochs cost little).
    max_epochs: float = 4.0
    # Local tokenizer.json to count tokens with; null: the pipeline's (output.tokenizer), else words.
    tokenizer: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_epochs <= 0:
            raise ConfigError(f"mix: max_epochs must be positive, not {self.max_epochs}")
        if (self.weights is None) == (self.rates is None):
            raise ConfigError(
                "mix: give either weights (with tokens) or rates" + (", not both" if self.weights is not None else ""),
                hint="weights: {web: 0.7, books: 0.3} with tokens: 2e9 for fixed shares of a budget; "
                'rates: {0: 0.5, "*": 1.0} to keep a part of each group',
            )
        check_tokenizer(self.tokenizer)
        if self.rates is not None:
            if self.tokens is not None:
                raise ConfigError(
                    "mix: tokens has no meaning with rates", hint="drop tokens, or give weights instead of rates"
                )
            self._rate = _by_value(self.rates, "rates")
            bad = {g: r for g, r in self._rate.items() if not (math.isfinite(r) and 0 <= r <= self.max_epochs)}
            if bad:
                raise ConfigError(
                    f"mix: rates must be between 0 and max_epochs ({self.max_epochs:g}): {bad}",
                    hint="0 drops a group, 0.5 halves it, 1 keeps it, 2 repeats it twice; raise max_epochs for more",
                )
            self._share: dict[str, float] = {}
            return
        if self.tokens is None:
            raise ConfigError("mix: weights need a token budget", hint="add tokens: 2e9 (or give rates instead)")
        self._budget = number(self.tokens, "mix: tokens")
        weights = _by_value(self.weights, "weights")
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigError(f"mix: weights must be non-negative with a positive sum: {self.weights}")
        total = sum(weights.values())
        self._share = {g: w / total for g, w in weights.items()}  # weights need not sum to 1
        self._rate = {}

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", "text", self.by))

    def _groups(self, body: pa.Table) -> list[str | None]:
        """Each document's group: its `by` value as a string when named, "*" when not and "*" is, else None."""
        named = self._rate or self._share
        rest = REST if REST in named else None
        out: list[str | None] = []
        for v in body.column(self.by).to_pylist():
            g = None if v is None else str(v)
            out.append(g if g is not None and g != REST and g in named else rest)
        return out

    def plan(self, groups: np.ndarray, tie: np.ndarray, tokens: np.ndarray) -> dict[str, tuple[int, float]]:
        """Per group: (whole epochs every document gets, the hash draw at or below which it gets one more)."""
        if self._rate:
            return self._plan_rates(groups, tie, tokens)
        available = {g: float(tokens[groups == g].sum()) for g in self._share}
        empty = [g for g, w in self._share.items() if w > 0 and available[g] == 0]
        if empty:
            raise StageError(
                f"mix: no tokens in group(s) {', '.join(map(repr, empty))} of '{self.by}'",
                hint="give the group weight 0 or remove it"
                + ("; '*' is every value not named" if REST in empty else ""),
            )
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

    def _plan_rates(self, groups: np.ndarray, tie: np.ndarray, tokens: np.ndarray) -> dict[str, tuple[int, float]]:
        """Rates as (whole copies, cut): a document gets one more copy when its draw is below the rate's fraction
        (the float just below it, so that the `<=` of decide means `<`). Counters as the weights give them."""
        out: dict[str, tuple[int, float]] = {}
        for g, r in self._rate.items():
            full = int(math.floor(r))
            cut = float(np.nextafter(r - full, -np.inf))
            out[g] = (full, cut)
            mine = groups == g
            times = full + (tie[mine] <= cut)
            available = float(tokens[mine].sum())
            realised = float((tokens[mine] * times).sum())
            self.count(f"available_tokens:{g}", int(available))
            self.count(f"tokens:{g}", int(realised))
            self.count(f"epochs:{g}", round(realised / available, 6) if available else 0.0)  # type: ignore[arg-type]
            self.count(f"docs:{g}", int((times > 0).sum()))
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


def _by_value(values: dict[str | int, float] | None, what: str) -> dict[str, float]:
    """`weights` or `rates` keyed by the column value as a string (an integer key 0 matches the value 0); a key
    given twice (0 and "0") is a ConfigError."""
    out: dict[str, float] = {}
    for key, value in (values or {}).items():
        g = str(key)
        if g in out:
            raise ConfigError(f"mix: {what} names {g!r} twice", hint="an integer key and its quoted form are one key")
        try:
            out[g] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"mix: {what}[{key!r}] must be a number, not {value!r}") from None
    if not out:
        raise ConfigError(f"mix: {what} is empty", hint='name at least one value of by, or "*" for all')
    return out
