"""The output: kept shards in OUT/data, rejected ones in OUT/rejected/<stage>, a manifest, stats, _SUCCESS.

Shards are written under a temporary name and renamed when complete, so a crash never leaves a half shard that
looks whole. A bundle's shards count once its commit record (curate.output.state) is written, last and atomically;
the manifest (names, row counts, SHA-256) written when the run finishes lists what the commit records hold.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from fsspec.core import url_to_fs

from curate.errors import OutputError
from curate.io.base import join  # noqa: F401  (re-exported: sink.join is used by the engine and the CLI)
from curate.output.lock import LOCK_DIR
from curate.output.measure import collect_figures
from curate.output.state import RunState
from curate.schema import COPIES, INPUT_STAGE, REASON, RESERVED, STAGE, UNIT, conform, split_live, with_reserved
from curate.settings import Output

DATA_DIR = "data"
REJECTED_DIR = "rejected"
SIDE_DIR = "side"
MANIFEST = "manifest.json"
STATS = "stats.json"
PIPELINE = "pipeline.yaml"
SUCCESS = "_SUCCESS"
SIDE_MANIFEST = "_manifest.json"  # written last into an external side-table folder (a dedup index)
TMP_PREFIX = ".tmp-"


class ShardWriter:
    """Writes a bundle of batches: kept rows to `kept_dir` (OUT/data, or a checkpoint between phases), rejected
    rows to OUT/rejected/<stage>/, each in shards of at most shard_rows; then commits the bundle (see state.py).

    Names depend only on the write id, so a retried task rewrites the same files and the same commit."""

    def __init__(
        self,
        output: Output,
        state: RunState,
        phase: int,
        kept_dir: str,
        kept_schema: pa.Schema,
        stage_schemas: dict[str, pa.Schema],
    ) -> None:
        self.output = output
        self.state = state
        self.phase = phase
        self.kept_dir = kept_dir
        self.kept_schema = kept_schema
        self.stage_schemas = stage_schemas

    def write(self, tables: Iterable[pa.Table], write_id: str) -> dict[str, Any]:
        """Write and commit one bundle; returns its commit record."""
        parts = [t for t in tables if t.num_rows]
        record: dict[str, Any] = {"write_id": write_id, "files": [], "counts": {"kept": 0, "rejected": {}}, "units": {}}
        if not parts:
            return record
        table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        if UNIT in table.column_names:
            units = pc.value_counts(pc.fill_null(table.column(UNIT), "")).to_pylist()
            record["units"] = {u["values"]: u["counts"] for u in units}
        record["figures"] = collect_figures(table, self.output.tokenizer).to_dict()
        if self.phase == 0 and UNIT in table.column_names:
            record["ids"] = self._write_ids(table, write_id)
        split = split_live(with_reserved(table))
        kept, rejected = split.body, split.dead
        record["counts"]["kept"] = kept.num_rows
        files = record["files"]
        if kept.num_rows:
            kept = conform(kept, self.kept_schema)
            files += self._write_rows(kept, self.kept_dir, write_id, "kept", None)
            copies = expand_copies(kept) if self.kept_dir == DATA_DIR else None
            if copies is not None:
                record["counts"]["copies"] = copies.num_rows
                files += self._write_rows(copies, self.kept_dir, f"{write_id}-copies", "copy", None)
        if rejected is not None and rejected.num_rows:
            by_stage: dict[str, Counter[str]] = defaultdict(Counter)
            stages = rejected.column(STAGE).to_pylist()
            for stage, reason in zip(stages, rejected.column(REASON).to_pylist()):
                by_stage[stage or "unknown"][reason] += 1
            record["counts"]["rejected"] = {s: dict(c) for s, c in by_stage.items()}
            if self.output.write_rejected:
                for stage in by_stage:
                    rows = rejected.filter(pc.equal(rejected.column(STAGE), stage))
                    schema = self.stage_schemas.get(stage)
                    body = conform(rows, schema) if schema is not None else rows.drop_columns(list(RESERVED))
                    if "reason" in body.column_names:
                        body = body.drop_columns(["reason"])
                    body = body.append_column("reason", rows.column(REASON))
                    files += self._write_rows(body, f"{REJECTED_DIR}/{stage}", write_id, "rejected", stage)
        self.state.commit(self.phase, write_id, record)
        return record

    def _write_ids(self, table: pa.Table, write_id: str) -> str:
        """The (id, unit, copy) of every row of the bundle, for resuming a partly committed unit by id: kept data
        shards do not carry the unit a row came from. `copy` marks a later copy of an id (duplicate_id)."""
        copy = pc.and_(
            pc.fill_null(pc.equal(table.column(STAGE), INPUT_STAGE), False),
            pc.fill_null(pc.equal(table.column(REASON), "duplicate_id"), False),
        )
        ids = pa.table({"id": table.column("id"), "unit": table.column(UNIT), "copy": copy})
        rel = f"{self.state.ids_dir(self.phase)}/{write_id}.parquet"
        put_parquet(self.output.path, rel, ids, "zstd", None)
        return rel

    def _write_rows(self, table: pa.Table, subdir: str, write_id: str, kind: str, stage: str | None) -> list[dict]:
        infos = []
        step = self.output.shard_rows
        for k, start in enumerate(range(0, table.num_rows, step)):
            piece = table.slice(start, step)
            rel = f"{subdir}/part-{write_id}-{k:03d}.parquet"
            info = self._put(piece, rel)
            info.update(kind=kind, stage=stage)
            infos.append(info)
        return infos

    def _put(self, table: pa.Table, rel: str) -> dict[str, Any]:
        return put_parquet(self.output.path, rel, table, self.output.compression, self.output.compression_level)


class SideWriter:
    """Writes one side table of a global stage as Parquet parts and records them in the run state, so that the
    files are listed in the manifest and a redone phase replaces them (same names) instead of adding to them.

    Inside the output the parts go to OUT/side/<stage>/<name>/; with an external `path` they go there, and
    `path/_manifest.json` (files, rows, sha256, the stage's metadata) is written last, when the run finishes."""

    def __init__(self, state: Any, output: Any, phase: int, sid: str, name: str, path: str | None) -> None:
        self.state = state
        self.output = output
        self.phase = phase
        self.sid = sid
        self.name = name
        self.path = path
        self.rel = f"{SIDE_DIR}/{sid}/{name}"

    def write(self, tables: Any, task: int) -> dict[str, Any]:
        parts = [t for t in tables if t.num_rows]
        if not parts:
            return {"files": []}
        table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        root = self.path or self.output.path
        rel = f"part-{task:05d}.parquet" if self.path else f"{self.rel}/part-{task:05d}.parquet"
        info = put_parquet(root, rel, table, self.output.compression, self.output.compression_level)
        info.update(kind="side", stage=self.sid, name=self.name)
        if self.path:
            info["root"] = self.path
        self.state.side_commit(self.phase, self.sid, self.name, task, info, self.path)
        return info


def expand_copies(kept: pa.Table) -> pa.Table | None:
    """The extra rows of kept documents whose COPIES column says k > 1: copy j (2..k) with id `<id>#j`; None when
    there are none."""
    if COPIES not in kept.column_names:
        return None
    k = pc.fill_null(kept.column(COPIES), 1).to_numpy(zero_copy_only=False).astype("int64")
    extra = k - 1
    if not (extra > 0).any():
        return None
    rows = [i for i, e in enumerate(extra.tolist()) for _ in range(max(e, 0))]
    ordinal = [j for e in extra.tolist() for j in range(2, e + 2)]
    table = kept.take(pa.array(rows, pa.int64()))
    ids = pc.binary_join_element_wise(table.column("id"), pa.array([str(j) for j in ordinal], pa.string()), "#")
    return table.set_column(table.schema.get_field_index("id"), "id", ids)


def put_parquet(root_url: str, rel: str, table: pa.Table, compression: str, level: int | None) -> dict[str, Any]:
    """Write `table` to root_url/rel under a temporary name, then rename; returns {path, rows, bytes, sha256}."""
    fs, root = url_to_fs(root_url)
    final = join(root, rel)
    directory = final.rsplit("/", 1)[0]
    tmp = join(directory, f"{TMP_PREFIX}{uuid.uuid4().hex}.parquet")
    try:
        fs.makedirs(directory, exist_ok=True)
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression=compression, compression_level=level)
        digest, size = _sha256(fs, tmp)
        fs.mv(tmp, final)
    except OSError as e:
        try:
            if fs.exists(tmp):
                fs.rm(tmp)
        except OSError:
            pass
        raise OutputError(f"writing shard {final} failed: {e}", hint="check free space and permissions") from e
    return {"path": rel, "rows": table.num_rows, "bytes": size, "sha256": digest}


def _sha256(fs: fsspec.AbstractFileSystem, path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with fs.open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# -- the output directory as a whole --------------------------------------------------------------------------


def prepare(path: str, overwrite: bool, resolved: dict[str, Any]) -> bool:
    """Make the output directory ready. Returns True when it holds an unfinished run of the same pipeline, which
    is then resumed; refuses to clobber a finished run or a foreign directory unless asked; probes writability.
    The run's lock (OUT/_lock, held by the caller) is neither content nor cleared."""
    fs, root = url_to_fs(path)
    try:
        exists = fs.exists(root)
        if exists and fs.isfile(root):
            raise OutputError(f"output path '{path}' is a file", hint="give a directory for output.path")
        listed = fs.ls(root, detail=False) if exists else []
        entries = [e for e in listed if e.rstrip("/").rsplit("/", 1)[-1] != LOCK_DIR]
        if entries:
            if overwrite:
                for entry in entries:
                    fs.rm(entry, recursive=True)
            elif fs.exists(join(root, SUCCESS)):
                raise OutputError(
                    f"output '{path}' already holds a finished run",
                    hint="pass --overwrite to replace it, or choose another --output",
                )
            elif not fs.exists(join(root, PIPELINE)):
                raise OutputError(
                    f"output '{path}' exists and is not a curate output",
                    hint="choose an empty or new directory, or pass --overwrite to clear it",
                )
            else:
                with fs.open(join(root, PIPELINE), "r") as fh:
                    before = yaml.safe_load(fh) or {}
                if any(before.get(k) != resolved.get(k) for k in RESUME_KEYS):
                    raise OutputError(
                        f"output '{path}' holds an unfinished run of a different pipeline (its input or stages differ)",
                        hint="pass --overwrite to start over, or choose another --output",
                    )
                return True
        fs.makedirs(root, exist_ok=True)
        probe = join(root, f"{TMP_PREFIX}probe-{uuid.uuid4().hex}")
        with fs.open(probe, "wb") as fh:
            fh.write(b"ok")
        fs.rm(probe)
    except OutputError:
        raise
    except (OSError, ValueError) as e:
        raise OutputError(f"cannot write to output '{path}': {e}", hint="check the path and its permissions") from e
    return False


# What must match for a run to resume another's output: the same documents through the same stages.
RESUME_KEYS = ("input", "stages")


def write_json(path: str, name: str, obj: Any) -> None:
    write_text(path, name, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: str, name: str, text: str) -> None:
    """Write a small file atomically (temporary name, then rename)."""
    fs, root = url_to_fs(path)
    tmp = join(root, f"{TMP_PREFIX}{uuid.uuid4().hex}")
    try:
        with fs.open(tmp, "w") as fh:
            fh.write(text)
        fs.mv(tmp, join(root, name))
    except OSError as e:
        raise OutputError(f"writing {join(path, name)} failed: {e}") from e


def remove_orphans(path: str, keep: list[str]) -> int:
    """Delete shard files that no commit lists (a failed attempt's output) and leftover temporary files."""
    fs, root = url_to_fs(path)
    fs.invalidate_cache()  # the shards were written by other processes: no listing cached before may hide one
    wanted = {join(root, p) for p in keep}
    removed = 0
    for sub in (DATA_DIR, REJECTED_DIR, SIDE_DIR):
        base = join(root, sub)
        if not fs.exists(base):
            continue
        for f in fs.find(base):
            f = f if f.startswith("/") or "://" in f or not root.startswith("/") else "/" + f
            if f not in wanted:
                fs.rm(f)
                removed += 1
    return removed


def remove_tree(path: str, sub: str) -> None:
    fs, root = url_to_fs(path)
    target = join(root, sub)
    if fs.exists(target):
        fs.rm(target, recursive=True)
