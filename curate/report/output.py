"""A finished output read back for people: its stats, its pipeline, and its documents, kept and rejected.

Documents are read shard by shard from the manifest, only the columns asked for, and never more rows than asked
for: a report or an `inspect` of a billion-document output reads what it shows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from fsspec.core import url_to_fs

from curate.errors import InputError
from curate.io.base import join
from curate.output import sink

KEPT = "kept"
# Columns that are neither a score nor worth showing as one.
CORE = ("id", "text", "url", "source", "html", "reason")


@dataclass
class Shard:
    """A Parquet file of the output: kept documents (stage None) or those a stage rejected."""

    path: str  # relative to the output
    rows: int
    stage: str | None


@dataclass
class RunOutput:
    """OUT read back: stats.json, pipeline.yaml and the manifest's shards."""

    path: str
    stats: dict[str, Any]
    pipeline: dict[str, Any]
    shards: list[Shard] = field(default_factory=list)

    @classmethod
    def open(cls, path: str) -> RunOutput:
        """Read a finished output; an unfinished or foreign directory is an InputError that says which."""
        fs, root = url_to_fs(path)
        for name in (sink.STATS, sink.MANIFEST):
            if not fs.exists(join(root, name)):
                what = "an unfinished run" if fs.exists(join(root, sink.PIPELINE)) else "not a curate output"
                raise InputError(f"{path} has no {name}: {what}", hint="give the output directory of a finished run")
        with fs.open(join(root, sink.STATS), "r") as fh:
            stats = json.load(fh)
        with fs.open(join(root, sink.MANIFEST), "r") as fh:
            manifest = json.load(fh)
        pipeline: dict[str, Any] = {}
        if fs.exists(join(root, sink.PIPELINE)):
            with fs.open(join(root, sink.PIPELINE), "r") as fh:
                pipeline = yaml.safe_load(fh) or {}
        shards = [
            Shard(s["path"], int(s.get("rows", 0)), s.get("stage") if s.get("kind") == "rejected" else None)
            for s in manifest.get("shards", [])
            if s.get("kind") in ("kept", "rejected") and s["path"].endswith(".parquet")
        ]
        return cls(path, stats, pipeline, shards)

    def side_json(self, name: str) -> Any:
        """A JSON file a command wrote into the output (OUT/contamination.json), or None."""
        fs, root = url_to_fs(self.path)
        if not fs.exists(join(root, name)):
            return None
        with fs.open(join(root, name), "r") as fh:
            return json.load(fh)

    # -- what is where ---------------------------------------------------------------------------------------
    @property
    def stage_ids(self) -> list[str]:
        """Every stage of the run in order, the input pseudo-stage first."""
        return [s["id"] for s in self.stats.get("stages", [])]

    def stage_params(self, sid: str) -> dict[str, Any]:
        for s in self.pipeline.get("stages", []):
            if s.get("id") == sid:
                return dict(s.get("with") or {})
        return {}

    def stage_uses(self, sid: str) -> str:
        for s in self.stats.get("stages", []):
            if s["id"] == sid:
                return str(s.get("uses", ""))
        return ""

    def shards_of(self, stage: str | None = None, kept: bool | None = None) -> list[Shard]:
        """Kept shards (kept=True), a stage's rejected shards (stage=ID), rejected ones (kept=False), or all."""
        out = []
        for s in self.shards:
            if kept is True and s.stage is not None:
                continue
            if kept is False and s.stage is None:
                continue
            if stage is not None and s.stage != stage:
                continue
            out.append(s)
        return out

    def _file(self, shard: Shard) -> pq.ParquetFile:
        fs, root = url_to_fs(self.path)
        return pq.ParquetFile(fs.open(join(root, shard.path), "rb"))

    def columns(self, shards: list[Shard] | None = None) -> dict[str, pa.DataType]:
        """The columns of the given shards (all of them by default) and their types. The shards of one stage (and
        the kept ones) share a schema, so one footer is read per stage."""
        out: dict[str, pa.DataType] = {}
        seen: set[str | None] = set()
        for shard in self.shards if shards is None else shards:
            if shard.stage in seen:
                continue
            seen.add(shard.stage)
            for f in self._file(shard).schema_arrow:
                out.setdefault(f.name, f.type)
        return out

    def score_columns(self) -> list[str]:
        """Floating-point columns: language_score, a classifier's score, perplexity..."""
        return [n for n, t in self.columns().items() if pa.types.is_floating(t) and n not in CORE]

    # -- reading documents -----------------------------------------------------------------------------------
    def read(self, shard: Shard, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        """Up to `limit` rows of a shard (from its start), only the `columns` it has; adds `stage` (the stage
        that rejected the rows, null for kept ones)."""
        pf = self._file(shard)
        names = pf.schema_arrow.names
        cols = [c for c in columns if c in names] if columns is not None else names
        parts: list[pa.Table] = []
        n = 0
        for i in range(pf.num_row_groups):
            if limit is not None and n >= limit:
                break
            t = pf.read_row_group(i, columns=cols)
            parts.append(t)
            n += t.num_rows
        table = pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table().select(cols)
        if limit is not None:
            table = table.slice(0, limit)
        return table.append_column("stage", pa.array([shard.stage] * table.num_rows, pa.string()))

    def take(self, shard: Shard, rows: list[int], columns: list[str] | None = None) -> pa.Table:
        """Rows of a shard by position, reading only the row groups that hold them."""
        pf = self._file(shard)
        names = pf.schema_arrow.names
        cols = [c for c in columns if c in names] if columns is not None else names
        parts, start = [], 0
        wanted = sorted(set(rows))
        for i in range(pf.num_row_groups):
            size = pf.metadata.row_group(i).num_rows
            here = [r - start for r in wanted if start <= r < start + size]
            if here:
                parts.append(pf.read_row_group(i, columns=cols).take(pa.array(here, pa.int64())))
            start += size
        table = pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table().select(cols)
        return table.append_column("stage", pa.array([shard.stage] * table.num_rows, pa.string()))

    def sample_rows(self, shards: list[Shard], columns: list[str] | None, max_rows: int) -> pa.Table:
        """At most `max_rows` rows of `shards`, each shard giving a share in proportion to its rows (from its
        start): a bounded, spread-out sample of a large output."""
        total = sum(s.rows for s in shards)
        if not shards or total == 0:
            return pa.table({})
        parts = []
        for s in shards:
            share = s.rows if total <= max_rows else max(1, round(max_rows * s.rows / total))
            if share:
                parts.append(self.read(s, columns, limit=share))
        return pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})

    def documents(
        self,
        stage: str | None = None,
        reason: str | None = None,
        kept: bool | None = None,
        columns: list[str] | None = None,
        n: int = 10,
        sample: bool = False,
        seed: int = 0,
        max_scan: int = 1_000_000,
    ) -> Iterator[dict[str, Any]]:
        """Documents matching the filters as dicts (with `stage`, null when kept): the first `n`, or with
        `sample` a uniform sample of `n` among the first `max_scan` matching rows (reservoir sampling; the reason
        column is read first, the rest only for the rows shown)."""
        if stage is not None:
            shards = self.shards_of(stage=stage, kept=False)
        elif kept is True:
            shards = self.shards_of(kept=True)
        elif kept is False or reason is not None:
            shards = self.shards_of(kept=False)
        else:
            shards = self.shards_of(kept=True) + self.shards_of(kept=False)
        rng = random.Random(seed)
        chosen: list[tuple[int, int]] = []  # (shard index, row)
        seen = 0
        for k, shard in enumerate(shards):
            if not sample and len(chosen) >= n:
                break
            if seen >= max_scan:
                break
            if reason is not None and shard.stage is not None:
                reasons = self.read(shard, ["reason"]).column("reason")
                hits = pc.indices_nonzero(pc.fill_null(pc.equal(reasons, reason), False)).to_pylist()
            elif reason is not None:
                hits = []
            else:
                hits = list(range(shard.rows))
            for row in hits:
                if seen >= max_scan:
                    break
                seen += 1
                if not sample:
                    if len(chosen) >= n:
                        break
                    chosen.append((k, row))
                elif len(chosen) < n:
                    chosen.append((k, row))
                else:
                    j = rng.randrange(seen)
                    if j < n:
                        chosen[j] = (k, row)
        by_shard: dict[int, list[int]] = {}
        for k, row in chosen:
            by_shard.setdefault(k, []).append(row)
        for k in sorted(by_shard):
            rows = sorted(by_shard[k])
            table = self.take(shards[k], rows, columns)
            yield from table.to_pylist()

    def find(self, doc_id: str, columns: list[str] | None = None) -> tuple[dict[str, Any], Shard] | None:
        """The row of document `doc_id` and its shard (kept ones first, then each stage's rejected ones), or
        None. Reads the id column of each shard until it is found."""
        for shard in self.shards_of(kept=True) + self.shards_of(kept=False):
            ids = self.read(shard, ["id"]).column("id")
            hits = pc.indices_nonzero(pc.fill_null(pc.equal(ids, doc_id), False)).to_pylist()
            if hits:
                return self.take(shard, hits[:1], columns).to_pylist()[0], shard
        return None

    def decisions(self) -> pa.Table:
        """(id, stage, reason) of every document of the output: stage and reason are null for kept ones."""
        parts = []
        for shard in self.shards:
            t = self.read(shard, ["id", "reason"])
            if "reason" not in t.column_names:
                t = t.append_column("reason", pa.nulls(t.num_rows, pa.string()))
            parts.append(t.select(["id", "stage", "reason"]))
        if not parts:
            return pa.table({"id": pa.array([], pa.string()), "stage": [], "reason": []})
        return pa.concat_tables(parts, promote_options="permissive")


def thresholds(out: RunOutput) -> dict[str, list[tuple[str, str, float]]]:
    """Where a stage cut on a score column, from the resolved pipeline: {column: [(stage, param, value)]}.
    A stage with `column` and `min_score`/`max_score`/`threshold` (score_threshold) cuts on that column; a
    parameter `X_threshold` cuts on `X_score` (fasttext_langid's language_threshold on language_score)."""
    scores = set(out.score_columns())
    found: dict[str, list[tuple[str, str, float]]] = {}
    for stage in out.pipeline.get("stages", []):
        sid, params = stage.get("id", "?"), stage.get("with") or {}
        column = params.get("column")
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            target = None
            if isinstance(column, str) and name in ("min_score", "max_score", "threshold", "min", "max"):
                target = column
            elif name.endswith("_threshold"):
                base = name[: -len("_threshold")]
                target = next((c for c in (f"{base}_score", base) if c in scores), None)
            if target is not None and target in scores:
                found.setdefault(target, []).append((sid, name, float(value)))
    return found
