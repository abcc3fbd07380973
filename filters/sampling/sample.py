"""Row-wise sampling: keep a share of documents by a hash of (seed, id) (`sample`), and up-sample chosen buckets by
writing their documents more than once (`repeat`). Token budgets and mixtures are in budget.py, selection by a score
in by_score.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from curate.stage import COPIES, Filter, Mapper, StageColumns
from curate_filters.sampling.common import batch_ids, copies_of, set_column, uniform


class Sample(Filter):
    """Keep a `rate` share of documents at random, reproducibly: a document is kept when the hash of (seed, id) falls
    below the rate, so a run on one worker or a hundred keeps the same documents. Reason: not_sampled.

    datatrove's SamplerFilter draws from a per-process random stream instead (its choice depends on the
    partitioning); NeMo Curator's sampling on a dataframe likewise."""

    name = "sample"
    input_columns = ("id",)
    reasons = ("not_sampled",)
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


class Repeat(Mapper):
    """Up-sample chosen buckets: a document whose `column` value is named in `times` is written that many times
    (FineWeb-Edu's and DCLM's repetition of their best buckets), the extra ones as copies with derived ids
    `<id>#2`, `<id>#3` ... Copies are counted apart in stats.json (`copies`), never as input documents.

    Sets the int column `copies` (multiplying one an earlier stage set); a document in no named bucket keeps 1."""

    name = "repeat"
    output_columns = {COPIES: pa.int32()}
    reasons = ()
    # The bucket column (score_buckets' `bucket`, `source`, any column); its values are compared as strings.
    column: str = "bucket"
    # Bucket value -> times written (1 = once, as without the stage).
    times: dict[str, int] | dict[int, int]

    def __post_init__(self) -> None:
        self._times = {str(k): int(v) for k, v in self.times.items()}
        bad = {k: v for k, v in self._times.items() if v < 1}
        if bad:
            raise ConfigError(f"repeat: times must be at least 1 (reject documents with a filter instead): {bad}")

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", self.column))  # the column is named in YAML

    def map_batch(self, batch: pa.Table) -> pa.Table:
        values = batch.column(self.column).to_pylist()
        times = np.array([self._times.get(str(v), 1) if v is not None else 1 for v in values], np.int64)
        copies = copies_of(batch) * times
        self.count("copies", int((copies - copies_of(batch)).sum()))
        return set_column(batch, COPIES, pa.array(copies, pa.int32()))
