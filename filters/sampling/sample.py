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

    Rehydration (FineWeb-2, Penedo et al. 2025; github.com/huggingface/fineweb-2, misc/rehydration/README.md):
    `by: dedup_cluster_size` with a `table` writes each document kept by `minhash` as many times as the table gives
    for the size of the duplicate cluster it was kept from. The table is a step function {smallest cluster size:
    copies} (a size takes the copies of the largest key at or below it, sizes below every key 1, as FineWeb-2's
    Rehydrater), given inline or as a JSON file; or a FineWeb-2 distribution file
    (misc/rehydration/distributions/<lang>.json: removal rate per cluster size), turned into that step function
    by FineWeb-2's published rule with at most `max_repeats` copies (FineWeb-2's compute_repetitions: 1 copy where
    the removal rate is at or above the global one, `max_repeats` at the lowest rate, linear in between, a 5-wide
    moving average, rounded).

    Sets the int column `copies` (multiplying one an earlier stage set); a document in no named bucket keeps 1."""

    name = "repeat"
    output_columns = {COPIES: pa.int32()}
    reasons = ()
    # The bucket column (score_buckets' `bucket`, `source`, any column); its values are compared as strings.
    column: str = "bucket"
    # Bucket value -> times written (1 = once, as without the stage).
    times: dict[str, int] | dict[int, int] | None = None
    # Rehydration: an integer column (minhash's dedup_cluster_size) looked up in `table` by size ranges.
    by: str | None = None
    # With `by`: {smallest size: copies} inline, or the path of a JSON file holding such a mapping or a FineWeb-2
    # rehydration distribution (cluster_sizes, cluster_removal_rates, ...).
    table: dict[int | str, int] | str | None = None  # str keys: as YAML written back by to_yaml reads them
    # With a distribution file: the most copies of a document (FineWeb-2 publishes weights for 3 to 10).
    max_repeats: int = 10

    def __post_init__(self) -> None:
        if (self.times is None) == (self.by is None):
            raise ConfigError("repeat: give either `times` (with `column`) or `by` (with `table`), not both or neither")
        if self.by is not None:
            if self.table is None:
                raise ConfigError(f"repeat: `by: {self.by}` needs a `table` (cluster size -> copies, or its file)")
            if self.max_repeats < 1:
                raise ConfigError(f"repeat: max_repeats must be at least 1, not {self.max_repeats}")
            self._steps = rehydration_table(self.table, self.max_repeats)
            self._times = {}
            return
        self._times = {str(k): int(v) for k, v in self.times.items()}  # type: ignore[union-attr]
        bad = {k: v for k, v in self._times.items() if v < 1}
        if bad:
            raise ConfigError(f"repeat: times must be at least 1 (reject documents with a filter instead): {bad}")

    def columns(self) -> StageColumns:
        return super().columns()._replace(input=("id", self.by or self.column))  # the column is named in YAML

    def map_batch(self, batch: pa.Table) -> pa.Table:
        if self.by is not None:
            times = copies_for_sizes(self._steps, batch.column(self.by).to_pylist())
        else:
            values = batch.column(self.column).to_pylist()
            times = np.array([self._times.get(str(v), 1) if v is not None else 1 for v in values], np.int64)
        copies = copies_of(batch) * times
        self.count("copies", int((copies - copies_of(batch)).sum()))
        return set_column(batch, COPIES, pa.array(copies, pa.int32()))


# -- rehydration (FineWeb-2) -----------------------------------------------------------------------------------------


def copies_for_sizes(steps: tuple[np.ndarray, np.ndarray], sizes: list[int | None]) -> np.ndarray:
    """Copies per document from the step table (keys ascending): the value of the largest key <= size; 1 below the
    smallest key and for a missing size (a document that went through no MinHash)."""
    keys, values = steps
    s = np.array([-1 if v is None else int(v) for v in sizes], np.int64)
    idx = np.searchsorted(keys, s, side="right") - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 1).astype(np.int64)


def rehydration_table(table: dict[int | str, int] | str, max_repeats: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The step table (ascending sizes, copies) from an inline mapping, a JSON mapping file, or a FineWeb-2
    distribution file."""
    source = table
    if isinstance(table, str):
        import json
        from pathlib import Path

        path = Path(table).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"repeat: cannot read the rehydration table {table}: {e}") from None
        except ValueError as e:
            raise ConfigError(f"repeat: the rehydration table {table} is not JSON: {e}") from None
        if isinstance(data, dict) and "cluster_removal_rates" in data:
            data = fineweb2_weights(data, max_repeats)
        if not isinstance(data, dict):
            raise ConfigError(f"repeat: {table} holds neither a size -> copies mapping nor a FineWeb-2 distribution")
        source = data
    try:
        steps = sorted((int(k), int(v)) for k, v in source.items())  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"repeat: the table must map integer cluster sizes to integer copies: {source}") from None
    if not steps:
        raise ConfigError("repeat: the rehydration table is empty")
    bad = {k: v for k, v in steps if v < 1 or k < 0}
    if bad:
        raise ConfigError(f"repeat: sizes must be >= 0 and copies >= 1 (reject documents with a filter instead): {bad}")
    return np.array([k for k, _ in steps], np.int64), np.array([v for _, v in steps], np.int64)


def fineweb2_weights(dist: dict, max_repeats: int = 10, window: int = 5) -> dict[int, int]:
    """FineWeb-2's upsampling weights from a distribution file (misc/rehydration/README.md, compute_repetitions):
    the tail (sizes >= tail_threshold) is the last point; removal rate at or above the global rate -> 1 copy, the
    lowest rate -> max_repeats, linear in between; a `window`-wide moving average (edges unsmoothed), rounded half
    to even (numpy); consecutive equal values merged into {first size: copies}. With max_repeats 10 this gives
    FineWeb-2's published misc/rehydration/weights/up_to_10_reps.json for each language."""
    try:
        sizes = np.array([*dist["cluster_sizes"], dist["tail_threshold"]], np.int64)
        rates = np.array([*dist["cluster_removal_rates"], dist["tail_removal_rate"]], np.float64)
        global_rate = float(dist["global_removal_rate"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"repeat: a FineWeb-2 distribution needs cluster_sizes, cluster_removal_rates, "
                          f"tail_threshold, tail_removal_rate and global_removal_rate ({e})") from None  # fmt: skip
    if len(sizes) != len(rates):
        raise ConfigError("repeat: cluster_sizes and cluster_removal_rates differ in length")
    below = rates < global_rate
    reps = np.ones_like(rates)
    min_rate = rates.min()
    if below.any():
        reps[below] = 1 + (max_repeats - 1) * ((rates[below] - global_rate) / (min_rate - global_rate))
    smoothed = np.convolve(reps, np.ones(window) / window, mode="same")
    half = window // 2
    if half:
        smoothed[:half] = reps[:half]
        smoothed[-half:] = reps[-half:]
    copies = np.round(smoothed).astype(np.int64)
    out: dict[int, int] = {}
    for i, c in enumerate(copies):
        if i == 0 or c != copies[i - 1]:
            out[int(sizes[i])] = int(c)
    return out
