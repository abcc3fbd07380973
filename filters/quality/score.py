"""Model-based quality: a fastText classifier's score as a column, and thresholds on any numeric column, kept apart
from scoring (NeMo Curator's split) so that re-thresholding needs no re-scoring. Selection by a score (the top
fraction, buckets) is in curate_filters.sampling.by_score.

- `quality_score`: DCLM's fastText scoring (Li et al. 2024, sec. 4.4): lines joined with spaces, P(__label__hq).
- `score_threshold`: min/max on a score, or GPT-3's Pareto rule (Brown et al. 2020, appendix A), reproducibly.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError, CurateError, StageError
from curate.stage import Filter, Mapper, StageColumns
from curate_filters.quality.classifier import Scorer, load_model, require_fasttext
from curate_filters.sampling.common import batch_ids, check_column_name, score_values, set_column, uniform

# -- scoring -------------------------------------------------------------------------------------------------------


class QualityScore(Mapper):
    """fastText quality classifier score (DCLM, Li et al. 2024): adds the probability of `label` under `model` as a
    float column (`column`, so several classifiers can coexist: dclm_score, edu_score). Rejects nothing.

    Text is prepared as DCLM's scorer does (lines joined with single spaces, case kept), through the same function
    `curate classifier train` trains with; the model loads once per worker and each batch is one predict call."""

    name = "quality_score"
    reasons = ()
    # A fastText supervised model file (.bin/.ftz): DCLM's openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin
    # or one `curate classifier train` wrote.
    model: str
    # The column to write.
    column: str = "quality_score"
    # The high-quality label (DCLM: __label__hq; the prefix may be left out).
    label: str = "__label__hq"

    def __post_init__(self) -> None:
        check_column_name(self.column, "column")

    def columns(self) -> StageColumns:
        return super().columns()._replace(output={self.column: pa.float32()})  # the column is named in YAML

    def preflight(self) -> None:
        self._check_model()
        try:
            require_fasttext()
        except CurateError as e:
            raise StageError(f"quality_score: {e.message}", hint=e.hint) from e

    def _check_model(self) -> None:
        if not os.path.isfile(self.model):
            # the usual first run of a recipe (dclm.yaml): say how to get a model, not only that it is missing
            raise StageError(
                f"quality_score: fastText model not found: '{self.model}'",
                hint=(
                    f"train one: curate classifier train --preset dclm --positive GOOD_TEXT... --negative WEB_TEXT... "
                    f"--out {self.model} (docs/recipes.md, DCLM-Baseline), or point model: at DCLM's "
                    "openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin (--set stages.<id>.model=PATH)"
                ),
            )

    def setup(self) -> None:
        self._check_model()
        try:
            self._scorer = Scorer(load_model(self.model), self.label)
        except CurateError as e:
            raise StageError(f"quality_score: {e.message}", hint=e.hint) from e

    def map_batch(self, batch: pa.Table) -> pa.Table:
        if not hasattr(self, "_scorer"):
            self.setup()
        scores = pa.array(self._scorer(batch.column("text").to_pylist()), pa.float32())
        return set_column(batch, self.column, scores)


# -- thresholds ----------------------------------------------------------------------------------------------------


class ScoreThreshold(Filter):
    """Keep documents by a numeric column (a classifier's score, language_score, perplexity, or one carried in
    from the input): `min_score` / `max_score` (both inclusive), and/or GPT-3's Pareto rule, keep when
    pareto(alpha) > 1 - score (Brown et al. 2020, appendix A: alpha 9; NeMo Curator's default 3), drawn from a
    hash of (seed, id) so that it is reproducible on any runner.

    Reasons: missing_score (null or NaN), below_min_score, above_max_score, pareto_rejected."""

    name = "score_threshold"
    reasons = ("missing_score", "below_min_score", "above_max_score", "pareto_rejected")
    column: str = "quality_score"
    min_score: float | None = None
    max_score: float | None = None
    # Pareto shape: keep with probability (2 - score) ** -alpha (scores in 0..1); null turns the rule off.
    pareto_alpha: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_score is None and self.max_score is None and self.pareto_alpha is None:
            raise ConfigError(
                "score_threshold: give min_score, max_score or pareto_alpha (for a top fraction: score_top)"
            )
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ConfigError(f"score_threshold: min_score {self.min_score} is above max_score {self.max_score}")
        if self.pareto_alpha is not None and self.pareto_alpha <= 0:
            raise ConfigError(f"score_threshold: pareto_alpha must be positive, not {self.pareto_alpha}")

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", self.column))  # the column is named in YAML

    def reject_batch(self, batch: pa.Table) -> pa.Array:
        s = score_values(batch, self.column)
        reason = np.full(len(s), None, object)
        if self.pareto_alpha is not None:
            # numpy's pareto(a) is Lomax: (1 - u) ** (-1 / a) - 1 for u uniform in [0, 1), by the inverse CDF
            draw = (1.0 - uniform(self.seed, batch_ids(batch), salt="pareto:")) ** (-1.0 / self.pareto_alpha) - 1.0
            with np.errstate(invalid="ignore"):
                reason[~(draw > 1.0 - s)] = "pareto_rejected"
        with np.errstate(invalid="ignore"):
            if self.max_score is not None:
                reason[s > self.max_score] = "above_max_score"
            if self.min_score is not None:
                reason[s < self.min_score] = "below_min_score"
        reason[np.isnan(s)] = "missing_score"
        return pa.array(reason, pa.string())
