"""A finished output read back from Python: `curate.open(OUT)`.

`out.kept()` and `out.rejected(stage=None, reason=None)` choose documents; each choice reads as a pyarrow dataset,
an Arrow table, a pandas frame (for small samples: `to_pandas(n=1000)`), a Ray Dataset or a Hugging Face
`datasets.Dataset`, always from the output's own Parquet shards (the manifest's, so a half-written file is never
read). Rejected documents carry a `stage` column (the stage id that rejected them) beside their `reason`.
`out.explain(doc_id)` and `out.diff(other)` are `curate explain` and `curate diff`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from fsspec.core import url_to_fs

from curate.api.result import stats_rows
from curate.io.base import join
from curate.output import sink
from curate.report.output import RunOutput, Shard

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    import ray.data

STAGE = "stage"
_STAGE_FIELD = pa.field(STAGE, pa.string())


def open_output(path: str | os.PathLike[str]) -> OutputData:
    """The finished output at `path` (an InputError says so when it is unfinished or not a curate output)."""
    from curate.api.result import RunResult

    if isinstance(path, RunResult):
        path = path.output
    return OutputData(RunOutput.open(os.fspath(path)))


class OutputData:
    """A finished output: its stats, its resolved pipeline and its documents, kept and rejected."""

    def __init__(self, run: RunOutput) -> None:
        self.run = run

    @property
    def path(self) -> str:
        return self.run.path

    @property
    def stats(self) -> dict[str, Any]:
        """OUT/stats.json."""
        return self.run.stats

    @property
    def pipeline(self) -> dict[str, Any]:
        """OUT/pipeline.yaml: the resolved pipeline that produced the output."""
        return self.run.pipeline

    @property
    def stage_ids(self) -> list[str]:
        """The pipeline's stages in order (without the input pseudo-stage)."""
        return [s for s in self.run.stage_ids if s != "input"]

    def table(self) -> list[dict[str, Any]]:
        """The rows of the table `curate run` printed for this output (see RunResult.table)."""
        return stats_rows(self.stats)

    def reasons(self, stage: str | None = None) -> dict[str, dict[str, int]]:
        """{stage: {reason: documents}} of the stages that rejected anything (or of `stage` alone)."""
        return {
            s["id"]: dict(s["reasons"])
            for s in self.stats.get("stages", [])
            if s["reasons"] and (stage is None or s["id"] == stage)
        }

    # -- documents ----------------------------------------------------------------------------------------------
    def kept(self) -> Documents:
        """The kept documents (OUT/data)."""
        return Documents(self, None, None, kept=True)

    def rejected(self, stage: str | None = None, reason: str | None = None) -> Documents:
        """The rejected documents: of every stage, of one `stage` (its id), and/or with one `reason`. Unknown stage
        ids and reasons are ConfigErrors that list the known ones, as `curate inspect` says."""
        from argparse import Namespace

        from curate.report.inspect import _check_filters

        _check_filters(self.run, Namespace(kept=False, stage=stage, reason=reason))
        return Documents(self, stage, reason, kept=False)

    def documents(self) -> Documents:
        """Every document, kept (stage null) and rejected."""
        return Documents(self, None, None, kept=None)

    # -- curate explain, curate diff, curate report -------------------------------------------------------------
    def explain(self, doc_id: str) -> dict[str, Any]:
        """What happened to one document (`curate explain OUT DOC_ID --json`): the stages it passed, the one that
        rejected it and why, with that stage's parameters, its scores against the pipeline's thresholds."""
        from curate.report.inspect import explain

        return explain(self.run, doc_id)

    def diff(self, other: OutputData | str | os.PathLike[str] | Any, examples: int = 5) -> Diff:
        """This output (A) against another of the same input (B), document by document (`curate diff A B`); prints
        as the command does, and is the dict `curate diff --json` prints."""
        from curate.report.diff import diff

        b = other if isinstance(other, OutputData) else open_output(other)
        return Diff(diff(self.run, b.run, examples=examples))

    def report(self, **kwargs: Any) -> str:
        """Write OUT/report.html (curate report OUT) and return its path."""
        from curate.report.html import write_report

        return str(write_report(self.path, **kwargs))

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<curate output {self.path}: {s.get('input_docs', 0):,} documents in, {s.get('output_docs', 0):,} kept, "
            f"{s.get('rejected_docs', 0):,} rejected; stages: {', '.join(self.stage_ids)}>"
        )


class Diff(dict):
    """The comparison of two outputs (curate.report.diff.diff): a dict, shown as `curate diff` prints it."""

    def __str__(self) -> str:
        from curate.report.diff import format_diff

        return format_diff(self)

    __repr__ = __str__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Documents:
    """A choice of an output's documents (kept ones, or those rejected by a stage and/or for a reason), read from the
    output's Parquet shards in the forms below."""

    def __init__(self, out: OutputData, stage: str | None, reason: str | None, kept: bool | None) -> None:
        self.out = out
        self.stage = stage
        self.reason = reason
        self.kept = kept
        order = {sid: i for i, sid in enumerate(out.run.stage_ids)}
        shards = out.run.shards_of(stage=stage, kept=kept)
        # kept shards first, then each stage's in pipeline order; within one, in the order they were written
        self.shards: list[Shard] = sorted(shards, key=lambda s: -1 if s.stage is None else order.get(s.stage, 1 << 30))

    @property
    def files(self) -> list[str]:
        """The Parquet files (full paths or URLs) of the chosen documents."""
        return [join(self.out.path, s.path) for s in self.shards]

    def _groups(self) -> list[tuple[str | None, list[str]]]:
        """(stage or None for kept, its files), in order; the files of one group share a schema."""
        groups: dict[str | None, list[str]] = {}
        for s in self.shards:
            groups.setdefault(s.stage, []).append(join(self.out.path, s.path))
        return list(groups.items())

    def _has_stage(self) -> bool:
        return self.kept is not True

    def _filter(self) -> Any:
        return None if self.reason is None else pc.field("reason") == self.reason

    # -- the forms ------------------------------------------------------------------------------------------------
    def dataset(self) -> ds.Dataset:
        """A pyarrow dataset over the chosen shards (lazy: nothing is read until it is scanned), with a `stage`
        column where rejected documents are chosen; the union of every chosen stage's columns."""
        fs, _ = url_to_fs(self.out.path)
        parts = []
        for stage, files in self._groups():
            paths = [url_to_fs(f)[1] for f in files]
            part = ds.dataset(paths, format="parquet", filesystem=fs)
            parts.append((stage, part))
        schemas = [p.schema for _, p in parts]
        if self._has_stage():
            schemas.append(pa.schema([_STAGE_FIELD]))
        if not parts:
            return ds.dataset(pa.table({"id": pa.array([], pa.string())}).schema.empty_table())
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        children = []
        for stage, files in self._groups():
            paths = [url_to_fs(f)[1] for f in files]
            if self._has_stage() and stage is not None:
                # rejected/<stage>/part-*.parquet: the folder is the stage column
                base = url_to_fs(join(self.out.path, sink.REJECTED_DIR))[1]
                partitioning = ds.DirectoryPartitioning(pa.schema([_STAGE_FIELD]))
                children.append(
                    ds.dataset(
                        paths,
                        format="parquet",
                        filesystem=fs,
                        schema=schema,
                        partitioning=partitioning,
                        partition_base_dir=base,
                    )
                )
            else:
                children.append(ds.dataset(paths, format="parquet", filesystem=fs, schema=schema))
        out = children[0] if len(children) == 1 else ds.dataset(children, schema=schema)
        where = self._filter()
        return out if where is None else out.filter(where)

    def to_arrow(self, columns: list[str] | None = None) -> pa.Table:
        """The chosen documents as one Arrow table (read into memory)."""
        return self.dataset().to_table(columns=columns)

    def to_pandas(self, n: int | None = 1000, columns: list[str] | None = None) -> pd.DataFrame:
        """The first `n` chosen documents as a pandas DataFrame (n=None: all of them): for looking, not for a whole
        corpus."""
        d = self.dataset()
        table = d.to_table(columns=columns) if n is None else d.head(n, columns=columns)
        return table.to_pandas()

    def head(self, n: int = 5, columns: list[str] | None = None) -> list[dict[str, Any]]:
        """The first `n` chosen documents as dicts."""
        return self.dataset().head(n, columns=columns).to_pylist()

    def count(self) -> int:
        """How many documents are chosen (from the shards' footers where no reason is chosen)."""
        if self.reason is None:
            return sum(s.rows for s in self.shards)
        return self.dataset().count_rows()

    __len__ = count

    def to_ray(self) -> ray.data.Dataset:
        """A Ray Dataset read from the chosen shards (on the Ray this process is connected to, started if none),
        with the same columns as dataset()."""
        import ray.data

        schema = self.dataset().schema
        groups = self._groups()
        if not groups:
            return ray.data.from_arrow(schema.empty_table())
        fs, _ = url_to_fs(self.out.path)
        stage_of = {url_to_fs(f)[1]: stage for stage, files in groups for f in files}
        conform = _Conform(schema, self.reason, self._has_stage())
        if len(groups) == 1 or "path" in schema.names:
            # one read per stage (its files share a schema); a union of reads is slow on Ray, so only where needed
            parts = [
                ray.data.read_parquet([url_to_fs(f)[1] for f in files], filesystem=fs).map_batches(
                    conform, fn_kwargs={"stage": stage}, batch_format="pyarrow", zero_copy_batch=True
                )
                for stage, files in groups
            ]
            return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        # several stages in one read: each row's file says its stage
        read = ray.data.read_parquet(list(stage_of), filesystem=fs, include_paths=True)
        return read.map_batches(conform, fn_kwargs={"stage_of": stage_of}, batch_format="pyarrow", zero_copy_batch=True)

    def to_hf(self, cache_dir: str | None = None) -> datasets.Dataset:
        """A Hugging Face `datasets.Dataset` of the chosen documents, loaded from the local Parquet (no network):
        the kept documents, or one stage's rejected ones, through `Dataset.from_parquet` (memory-mapped from HF's
        cache, or `cache_dir`); other choices through an Arrow table in memory."""
        from curate.errors import require

        hf = require("datasets", "datasets", "hf", what="Documents.to_hf()")
        groups = self._groups()
        local = "://" not in self.out.path
        if local and self.reason is None and len(groups) == 1:
            stage, files = groups[0]
            d = hf.Dataset.from_parquet(files, cache_dir=cache_dir)
            if self._has_stage():
                d = d.add_column(STAGE, [stage] * len(d))
            return d
        return hf.Dataset(self.to_arrow())

    def __repr__(self) -> str:
        if self.kept is True:
            what = "kept"
        elif self.kept is None:
            what = "all"
        else:
            what = f"rejected by {self.stage or 'any stage'}" + (f" as {self.reason}" if self.reason else "")
        return f"<{what} documents of {self.out.path}: {len(self.shards)} shard(s)>"


class _Conform:
    """A Ray batch of rejected (or kept) rows in the form of Documents.dataset(): rows of the chosen reason, the
    `stage` column (from the stage read, or from each row's file), the union's columns in its order."""

    def __init__(self, schema: pa.Schema, reason: str | None, stage_column: bool) -> None:
        self.schema = schema
        self.reason = reason
        self.stage_column = stage_column

    def __call__(
        self, batch: pa.Table, stage: str | None = None, stage_of: dict[str, str | None] | None = None
    ) -> pa.Table:
        if self.reason is not None:
            batch = batch.filter(pc.fill_null(pc.equal(batch.column("reason"), self.reason), False))
        if stage_of is not None:
            stages = [stage_of.get(p, os.path.basename(os.path.dirname(p))) for p in batch.column("path").to_pylist()]
            batch = batch.drop_columns(["path"])
        else:
            stages = [stage] * batch.num_rows
        if self.stage_column:
            batch = batch.append_column(STAGE, pa.array(stages, pa.string()))
        cols = [
            batch.column(f.name).cast(f.type) if f.name in batch.column_names else pa.nulls(batch.num_rows, f.type)
            for f in self.schema
        ]
        return pa.Table.from_arrays(cols, schema=self.schema)
