"""`curate verify OUT`: check a finished output against its manifest, and the manifest against the output.

Every shard the manifest lists must be there with its size, SHA-256 and row count; every file under data/,
rejected/ and side/ (and any Parquet file anywhere in OUT) must be listed; no document id may occur twice across
the output (kept and rejected together: each input document comes out exactly once). `--fix` removes the files the
manifest does not list (what a failed attempt or a second writer left); damaged or missing shards and duplicate ids
need the pipeline rerun (`--overwrite`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from curate.errors import InputError
from curate.io.base import join
from curate.output import sink
from curate.output.lock import LOCK_DIR, OutputLock, verdict
from curate.output.state import CHECKPOINT, PROGRESS

# Folders whose every file the manifest must list (besides Parquet files anywhere).
LISTED_DIRS = (sink.DATA_DIR, sink.REJECTED_DIR, sink.SIDE_DIR)
# Run state that a finished output no longer has (removed after _SUCCESS; a crash in between leaves it).
LEFTOVER_DIRS = (PROGRESS, CHECKPOINT)
MAX_EXAMPLES = 10


@dataclass
class Report:
    """What `verify` found; `ok` when nothing."""

    out: str
    shards: int = 0
    rows: int = 0
    ids: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # "path: why"
    unlisted: list[str] = field(default_factory=list)  # paths relative to OUT
    duplicates: int = 0  # extra copies of ids, summed over ids
    duplicate_examples: list[str] = field(default_factory=list)  # "id: n times (files)"
    other: list[str] = field(default_factory=list)  # no _SUCCESS, counts that disagree with stats.json

    @property
    def ok(self) -> bool:
        return not (self.missing or self.damaged or self.unlisted or self.duplicates or self.other)

    def problems(self) -> list[str]:
        """One line per problem, each naming its kind and file."""
        lines = [f"missing: {p} (listed in the manifest)" for p in self.missing]
        lines += [f"damaged: {p}" for p in self.damaged]
        lines += [f"unlisted: {p} (not in the manifest)" for p in self.unlisted]
        lines += [f"duplicate id: {d}" for d in self.duplicate_examples]
        if self.duplicates > len(self.duplicate_examples):
            lines.append(f"duplicate id: ... {self.duplicates} extra copies in all")
        lines += self.other
        return lines


def verify(out: str, check_ids: bool = True) -> Report:
    """Check the finished output at `out` (see the module docstring). Raises InputError when `out` is not a
    finished output or a live run holds it."""
    fs, root = url_to_fs(out)
    fs.invalidate_cache()  # object-store filesystems cache listings per process; the output was written by others
    holder = _live_holder(out)
    if holder is not None:
        raise InputError(f"{out} is being written by a run ({holder})", hint="verify it when that run has finished")
    manifest_path = join(root, sink.MANIFEST)
    if not fs.exists(manifest_path):
        unfinished = fs.exists(join(root, sink.PIPELINE))
        state = "an unfinished run (rerun the same command to resume it)" if unfinished else "not a curate output"
        raise InputError(f"{out} has no {sink.MANIFEST}: {state}")
    with fs.open(manifest_path, "r") as fh:
        manifest = json.load(fh)
    report = Report(out)
    shards: list[dict[str, Any]] = manifest.get("shards", [])
    report.shards = len(shards)
    intact: list[str] = []  # full paths of listed Parquet shards that passed, for the id check
    for shard in shards:
        path = join(root, shard["path"])
        if _check_file(fs, path, shard, shard["path"], report):
            report.rows += shard.get("rows", 0)
            if shard.get("kind") in ("kept", "rejected"):
                intact.append(path)
    for ext in manifest.get("external", []):  # side tables written outside OUT (a dedup index)
        efs, eroot = url_to_fs(ext["root"])
        _check_file(efs, join(eroot, ext["path"]), ext, join(ext["root"], ext["path"]), report)
    listed = {join(root, s["path"]) for s in shards}
    report.unlisted = [_rel(root, f) for f in _unlisted(fs, root, listed)]
    if not fs.exists(join(root, sink.SUCCESS)):
        report.other.append(f"unfinished: no {sink.SUCCESS} (rerun the same command to finish the run)")
    _check_counts(fs, root, shards, report)
    if check_ids and intact:
        _check_ids(fs, root, intact, report)
    return report


def remove_unlisted(out: str, report: Report) -> list[str]:
    """Delete the files `report` found unlisted (never a listed one); returns what was removed."""
    fs, root = url_to_fs(out)
    removed = []
    for rel in report.unlisted:
        path = join(root, rel)
        if fs.exists(path):
            fs.rm(path, recursive=True)
            removed.append(rel)
    report.unlisted = []
    return removed


# -- the checks ------------------------------------------------------------------------------------------------


def _check_file(fs: Any, path: str, entry: dict[str, Any], name: str, report: Report) -> bool:
    h = hashlib.sha256()
    size = 0
    try:
        with fs.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        report.missing.append(name)
        return False
    if size != entry.get("bytes") or h.hexdigest() != entry.get("sha256"):
        report.damaged.append(
            f"{name} (size or SHA-256 differs from the manifest: {size} bytes, {entry.get('bytes')} listed)"
        )
        return False
    if name.endswith(".parquet") and "rows" in entry:
        try:
            with fs.open(path, "rb") as fh:
                rows = pq.ParquetFile(fh).metadata.num_rows
        except Exception as e:
            report.damaged.append(f"{name} (not readable as Parquet: {e})")
            return False
        if rows != entry["rows"]:
            report.damaged.append(f"{name} ({rows} rows, the manifest says {entry['rows']})")
            return False
    return True


def _unlisted(fs: Any, root: str, listed: set[str]) -> list[str]:
    """Files under the listed folders, Parquet files anywhere (the lock aside) and leftover run state that the
    manifest does not name; a leftover run-state folder is one entry."""
    found: list[str] = [join(root, sub) for sub in LEFTOVER_DIRS if _leftover(fs, join(root, sub))]
    skip = tuple(join(root, d) + "/" for d in (*LEFTOVER_DIRS, LOCK_DIR))
    for f in fs.find(root):
        f = _full(f, root)
        if f in listed or f.startswith(skip):
            continue
        rel = _rel(root, f)
        if rel.split("/", 1)[0] in LISTED_DIRS or f.endswith(".parquet"):
            found.append(f)
    return sorted(found)


def _leftover(fs: Any, path: str) -> bool:
    """Whether run state is left at `path`. On a local disk a folder is a thing of its own, so an empty one left by a
    crash counts. On object storage a folder is only a prefix of object names: it is left when objects are; some
    servers (SeaweedFS) go on listing an emptied prefix as a folder after its objects are deleted, and those are
    nothing of the run's."""
    if not fs.exists(path):
        return False
    if isinstance(fs, LocalFileSystem):
        return True
    return any(info.get("type") != "directory" for info in fs.find(path, detail=True).values())


def _check_counts(fs: Any, root: str, shards: list[dict[str, Any]], report: Report) -> None:
    """The manifest's row counts against stats.json: kept documents, and rejected ones when they were written."""
    stats_path = join(root, sink.STATS)
    if not fs.exists(stats_path):
        report.other.append(f"missing: {sink.STATS}")
        return
    with fs.open(stats_path, "r") as fh:
        stats = json.load(fh)
    kept = sum(s.get("rows", 0) for s in shards if s.get("kind") == "kept")
    if "output_docs" in stats and kept != stats["output_docs"]:
        report.other.append(f"counts: the manifest lists {kept:,} kept rows, stats.json {stats['output_docs']:,}")
    write_rejected = True
    if fs.exists(join(root, sink.PIPELINE)):
        with fs.open(join(root, sink.PIPELINE), "r") as fh:
            resolved = yaml.safe_load(fh) or {}
        write_rejected = (resolved.get("output") or {}).get("write_rejected", True)
    rejected = sum(s.get("rows", 0) for s in shards if s.get("kind") == "rejected")
    if write_rejected and "rejected_docs" in stats and rejected != stats["rejected_docs"]:
        report.other.append(
            f"counts: the manifest lists {rejected:,} rejected rows, stats.json {stats['rejected_docs']:,}"
        )


def _check_ids(fs: Any, root: str, paths: list[str], report: Report) -> None:
    """Ids that occur more than once across the listed shards: a 64-bit hash per id first (8 bytes per document
    in memory), then the ids behind colliding hashes compared exactly."""
    hashes, owners = [], []
    for i, path in enumerate(paths):
        h = id_hashes(_read_ids(fs, path))
        hashes.append(h)
        owners.append(np.full(len(h), i, dtype=np.uint32))
    every = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    report.ids = len(every)
    values, counts = np.unique(every, return_counts=True)
    suspects = values[counts > 1]
    if not len(suspects):
        return
    files_of = np.concatenate(owners)
    where: dict[str, list[int]] = {}
    for i in np.unique(files_of[np.isin(every, suspects)]):
        ids = _read_ids(fs, paths[i])
        for doc_id in ids.filter(pa.array(np.isin(id_hashes(ids), suspects))).to_pylist():
            where.setdefault(doc_id, []).append(int(i))
    for doc_id, files in sorted(where.items()):
        if len(files) < 2:
            continue  # a hash collision between different ids
        report.duplicates += len(files) - 1
        if len(report.duplicate_examples) < MAX_EXAMPLES:
            names = ", ".join(_rel(root, paths[i]) for i in files)
            report.duplicate_examples.append(f"{doc_id} occurs {len(files)} times ({names})")


def _read_ids(fs: Any, path: str) -> pa.Array:
    with fs.open(path, "rb") as fh:
        column = pq.read_table(fh, columns=["id"]).column("id")
    return pc.cast(column.combine_chunks(), pa.large_string())


_P = np.uint64(0x100000001B3)
_POW = np.cumprod(np.full(1 << 12, _P, dtype=np.uint64))


def id_hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit polynomial hash of each string (nulls as empty strings), all at once in numpy."""
    global _POW
    ids = pc.cast(pc.fill_null(ids, ""), pa.large_string())
    n = len(ids)
    if n == 0:
        return np.zeros(0, np.uint64)
    buffers = ids.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[ids.offset : ids.offset + n + 1]
    base = offsets[0]
    data = np.frombuffer(buffers[2], dtype=np.uint8)[base : offsets[-1]] if buffers[2] is not None else b""
    starts = offsets[:-1] - base
    lengths = np.diff(offsets)
    if len(data) == 0:
        return lengths.astype(np.uint64)
    longest = int(lengths.max())
    if longest > len(_POW):
        _POW = np.cumprod(np.full(longest, _P, dtype=np.uint64))
    position = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    terms = (np.asarray(data, dtype=np.uint64) + np.uint64(1)) * _POW[position]
    out = np.zeros(n, dtype=np.uint64)
    nonempty = lengths > 0
    out[nonempty] = np.add.reduceat(terms, starts[nonempty])
    return out ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def _live_holder(out: str) -> str | None:
    """The run holding the output's lock, described, while it is alive; None when there is none."""
    lock = OutputLock(out)
    try:
        holder, _ = lock._current()
    except OSError:
        return None
    if holder is None or verdict(holder) is not None:
        return None
    return holder.describe()


def _full(path: str, root: str) -> str:
    # fsspec's find() drops the leading "/" of local paths on some versions
    return path if path.startswith("/") or "://" in path or not root.startswith("/") else "/" + path


def _rel(root: str, path: str) -> str:
    return path[len(root.rstrip("/")) + 1 :] if path.startswith(root.rstrip("/") + "/") else path


# -- the command ----------------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    """Print what `verify` found: exit 0 for a clean output, 1 when anything is wrong (after --fix: left)."""
    report = verify(args.output, check_ids=not args.no_ids)
    if args.fix and report.unlisted:
        for rel in remove_unlisted(args.output, report):
            print(f"removed: {rel}", file=sys.stderr)
    problems = report.problems()
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        how = []
        if report.unlisted:
            how.append(f"curate verify {args.output} --fix removes the unlisted files")
        if report.missing or report.damaged or report.duplicates:
            how.append("rerun the pipeline with --overwrite to rebuild the output")
        print(
            f"{args.output}: {len(problems)} problem(s) in {report.shards} listed shard(s)"
            + (f" ({'; '.join(how)})" if how else ""),
            file=sys.stderr,
        )
        return 1
    ids = f", {report.ids:,} ids, none twice" if not args.no_ids else ""
    print(
        f"{args.output}: ok — {report.shards} shard(s), {report.rows:,} rows, all match the manifest{ids}; "
        "no unlisted files"
    )
    return 0


def register_cli(sub: Any) -> None:
    p = sub.add_parser("verify", help="check a finished output against its manifest (and the manifest against it)")
    p.add_argument("output", help="the run's output directory (a path or fsspec URL)")
    p.add_argument(
        "--fix", action="store_true", help="remove the files under the output that the manifest does not list"
    )
    p.add_argument("--no-ids", action="store_true", help="skip the duplicate-id check (it reads every shard's ids)")
    p.set_defaults(fn=cmd_verify)
