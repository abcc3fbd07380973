"""The `output:` and `engine:` sections of a pipeline file, as plain dataclasses.

They live apart from curate.config so that the writer (curate.output.sink) can take an Output without importing the
config loader, which itself reaches the readers in curate.io."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(kw_only=True)
class Output:
    """Where and how kept and rejected documents are written."""

    path: str
    shard_rows: int = 100_000
    compression: str = "zstd"
    compression_level: int | None = None
    # Write rejected documents under OUT/rejected/<stage>/ (they are counted either way).
    write_rejected: bool = True
    # A local tokenizer.json: stats.json, the run table and the report count tokens (in, kept and rejected per
    # stage) besides words and bytes, and the stages that count tokens (token_budget, mix, score_top,
    # score_buckets) use it unless they name their own; `curate run --tokenizer` sets it for one run.
    tokenizer: str | None = None


@dataclass(kw_only=True)
class Engine:
    """How the pipeline runs (the `engine:` section, all optional)."""

    # Documents per batch handed to a stage.
    batch_rows: int = 1000
    # Documents rejected as stage_error:<stage> (a stage raised on them) before the run gives up; -1: no cap.
    max_stage_errors: int = 100
    # Seconds between progress lines on long runs; 0 turns them off.
    progress_seconds: float = 10.0
    # Upper bound on parallel workers per stage pool; default: the CPUs Ray sees.
    max_workers: int | None = None
    # Where stages with setup() run on Ray: "tasks" (fused with the read and the other stages into one task; setup
    # once per worker process, cached), "actors" (an actor pool; setup once per actor), or "auto": tasks, but
    # actors for stages that ask for a GPU. On CPU, fused tasks measured 1.2x faster end to end than actors.
    stateful_stages: Literal["auto", "tasks", "actors"] = "auto"
    # Partitions of a global stage's shuffles (group_by, partition_by); default: twice the CPUs Ray sees. A call
    # of a grouping function holds about 1/N of the shuffled table, so this bounds memory per worker.
    shuffle_partitions: int | None = None
    # Poison records (docs/outputs.md): "process" runs each batch's stages in a child forked from the worker, so a
    # record that crashes it, hangs past its deadline or exhausts its memory is rejected alone (worker_crashed,
    # stage_timeout, out_of_memory) and the run goes on; "none" runs them in the worker itself (a debugger's
    # breakpoint in a stage works with the local runner; a crash then ends the run).
    isolation: Literal["process", "none"] = "process"
    # Seconds one record may take in one stage (a stage's own `deadline:` overrides it); 0: no deadline.
    record_deadline: float = 30.0
    # Bytes a batch may add to its worker's memory (e.g. 4GiB); default: half the machine's memory over its CPUs,
    # at least 1 GiB.
    memory_limit: str | int | None = None
    # Times Ray runs a task again when its worker dies (a node lost, a worker killed): a transient failure.
    task_retries: int = 3
