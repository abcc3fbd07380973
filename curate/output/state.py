"""The on-disk state of a run, which is what makes it resumable and its output exactly-once.

    OUT/_progress/attempts/<n>                       one marker per start of the run (n = 1, 2, ...)
    OUT/_progress/inputs.json                        {file: fingerprint} of the input when phase 0 first ran
    OUT/_progress/<phase>/units/<digest>.json        {key, docs}: a read unit was read to the end
    OUT/_progress/<phase>/commits/<write id>.json    a committed bundle: its files, row counts, sha256, counts
    OUT/_progress/<phase>/DONE                       every unit of the phase is committed
    OUT/_checkpoint/<phase>/part-*.parquet           live documents handed to the next phase (before a global stage)

A bundle's shard files become part of the output only when its commit file exists (written last, atomically), so a
worker that dies mid-write, a retried task or a killed driver can leave orphans but never a half-counted shard.
Units are pieces of input (files, row-group ranges), not workers: a resumed run may use any number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from fsspec.core import url_to_fs

from curate.errors import InputError
from curate.io.base import join
from curate.output.figures import StageFigures

PROGRESS = "_progress"
CHECKPOINT = "_checkpoint"
INPUTS = "inputs.json"

log = logging.getLogger("curate")

# What tells a rewritten file from the one read before, by filesystem: an ETag or checksum (object stores), else a
# modification time; the size is always part of it.
_STAMPS = ("ETag", "etag", "generation", "md5Hash", "crc32c", "mtime", "LastModified", "last_modified", "updated")


def file_fingerprints(files: list[str]) -> dict[str, str]:
    """`size:stamp` of each file, one directory listing per parent rather than a request per file."""
    out: dict[str, str] = {}
    listed: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    for f in files:
        fs, path = url_to_fs(f)
        parent = path.rstrip("/").rsplit("/", 1)[0]
        key = (id(fs), parent)
        if key not in listed:
            try:
                listed[key] = {fs._strip_protocol(i["name"]): i for i in fs.ls(parent, detail=True)}
            except OSError:
                listed[key] = {}
        info = listed[key].get(fs._strip_protocol(path))
        if info is None:
            try:
                info = fs.info(path)
            except OSError:
                out[f] = "missing"
                continue
        stamp = next((info[k] for k in _STAMPS if info.get(k) is not None), "")
        out[f] = f"{info.get('size')}:{stamp}"
    return out


def unit_digest(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


class RunState:
    """Reads and writes OUT/_progress. Every write is a whole small file put in place by rename."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.fs, self.root = url_to_fs(out)

    # -- paths -----------------------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return join(self.root, PROGRESS, *parts)

    def checkpoint_dir(self, phase: int) -> str:
        return f"{CHECKPOINT}/{phase}"

    def ids_dir(self, phase: int) -> str:
        """Where each commit's (id, unit) sidecar goes, relative to the output."""
        return f"{PROGRESS}/{phase}/ids"

    # -- attempts --------------------------------------------------------------------------------------
    def attempts(self) -> int:
        d = self._p("attempts")
        if not self._exists(d):
            return 0
        return sum(1 for p in self.fs.ls(d, detail=False) if p.rstrip("/").rsplit("/", 1)[-1].isdigit())

    def new_attempt(self) -> int:
        n = self.attempts() + 1
        self._put(self._p("attempts", str(n)), "")
        return n

    # -- the input's fingerprints -------------------------------------------------------------------
    def check_inputs(self, files: list[str], committed: bool) -> None:
        """Record the input files' fingerprints, or (when an earlier attempt committed documents) refuse to resume
        over files that changed or disappeared since: the committed documents came from the old ones. Files added
        since are fine (they are read like the rest)."""
        now = file_fingerprints(files)
        path = self._p(INPUTS)
        if committed and self.fs.exists(path):
            with self.fs.open(path, "r") as fh:
                before: dict[str, str] = json.load(fh)
            changed = [f for f in before if f in now and now[f] != before[f]]
            removed = [f for f in before if f not in now]
            if changed or removed:
                first = changed[0] if changed else removed[0]
                what = f"changed ({before[first]} -> {now[first]})" if changed else "is gone"
                raise InputError(
                    f"the input changed since the unfinished run in this output began: {first} {what}"
                    f" ({len(changed)} file(s) changed, {len(removed)} gone)",
                    hint="documents already committed came from the old files; restore them, or rerun with "
                    "--overwrite to start over",
                )
            added = len(set(now) - set(before))
            if not added:
                return
            log.info("resume: %d input file(s) added since the run began are read too", added)
            now = {**before, **now}
        self._put(path, json.dumps(now))

    # -- units -----------------------------------------------------------------------------------------
    def unit_done(self, phase: int, key: str, docs: int, counters: dict[str, int] | None = None) -> None:
        record = {"key": key, "docs": docs, "counters": counters or {}}
        self._put(self._p(str(phase), "units", f"{unit_digest(key)}.json"), json.dumps(record))

    def units(self, phase: int) -> dict[str, int]:
        return {u["key"]: u["docs"] for u in self._read_all(self._p(str(phase), "units"))}

    def unit_counters(self, phase: int) -> list[dict[str, int]]:
        """The reader's counters of every finished unit (a retried read rewrote the same marker: no double counts)."""
        return [u.get("counters", {}) for u in self._read_all(self._p(str(phase), "units"))]

    # -- commits ---------------------------------------------------------------------------------------
    def commit(self, phase: int, write_id: str, record: dict[str, Any]) -> None:
        self._put(self._p(str(phase), "commits", f"{write_id}.json"), json.dumps(record))

    def commits(self, phase: int) -> list[dict[str, Any]]:
        return self._read_all(self._p(str(phase), "commits"))

    def phases(self) -> list[int]:
        d = self._p()
        if not self._exists(d):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(d)]
        return sorted(int(n) for n in names if n.isdigit())

    # -- global stages: side tables and driver-side counters ------------------------------------------
    def side_commit(self, phase: int, sid: str, name: str, task: int, info: dict[str, Any], path: str | None) -> None:
        """A side table's part is written (the record names its file; a retried task rewrites the same record)."""
        record = {"stage": sid, "name": name, "task": task, "file": info, "external": path}
        self._put(self._p(str(phase), "side", f"{sid}.{name}.{task:05d}.json"), json.dumps(record))

    def side_files(self, phase: int) -> list[dict[str, Any]]:
        return [r["file"] for r in self._read_all(self._p(str(phase), "side"))]

    def global_done(self, phase: int, sid: str, figures: StageFigures) -> None:
        """A global stage's driver-side figures (clusters found, rounds, seconds): recorded once its phase is
        written."""
        record = {"stage": sid, "figures": figures.to_dict()}
        self._put(self._p(str(phase), "global", f"{sid}.json"), json.dumps(record))

    def global_records(self) -> dict[str, StageFigures]:
        return {
            r["stage"]: StageFigures.from_dict(r["figures"])
            for phase in self.phases()
            for r in self._read_all(self._p(str(phase), "global"))
        }

    # -- phases ----------------------------------------------------------------------------------------
    def phase_done(self, phase: int) -> bool:
        return self._exists(self._p(str(phase), "DONE"))

    def mark_phase_done(self, phase: int) -> None:
        self._put(self._p(str(phase), "DONE"), "")

    def discard_phase(self, phase: int) -> None:
        """Forget a phase's partial work (a phase that starts with a global stage cannot resume part-way)."""
        files = [f for commit in self.commits(phase) for f in commit["files"]] + self.side_files(phase)
        for f in files:
            fs, root = url_to_fs(f["root"]) if f.get("root") else (self.fs, self.root)
            path = join(root, f["path"])
            if fs.exists(path):
                fs.rm(path)
        d = self._p(str(phase))
        if self.fs.exists(d):
            self.fs.rm(d, recursive=True)

    def written_per_unit(self, phase: int) -> dict[str, int]:
        totals: dict[str, int] = {}
        for commit in self.commits(phase):
            for key, n in commit.get("units", {}).items():
                totals[key] = totals.get(key, 0) + n
        return totals

    def verify_files(self, commits: list[dict[str, Any]]) -> None:
        """Cheap check that every committed file is still there with its size; a damaged output says so."""
        for commit in commits:
            for f in commit["files"]:
                path = join(self.root, f["path"])
                self.fs.invalidate_cache(path)  # written by a worker: not in a listing this process cached
                try:
                    size = self.fs.size(path)
                except FileNotFoundError:
                    size = None
                if size != f["bytes"]:
                    raise InputError(
                        f"output shard {f['path']} is {'missing' if size is None else 'damaged'} "
                        f"(expected {f['bytes']} bytes, found {size})",
                        hint="the output was changed outside curate; rerun with --overwrite to start over",
                    )

    def clear(self) -> None:
        for d in (self._p(), join(self.root, CHECKPOINT)):
            if self.fs.exists(d):
                self.fs.rm(d, recursive=True)

    # -- io helpers ------------------------------------------------------------------------------------
    def _put(self, path: str, text: str) -> None:
        directory = path.rsplit("/", 1)[0]
        self.fs.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "w") as fh:
            fh.write(text)
        self.fs.mv(tmp, path)

    def _exists(self, path: str) -> bool:
        """Whether `path` exists now. Object-store filesystems (s3fs, gcsfs) cache listings for the life of the
        process, and the run state is written by other processes (Ray workers, another attempt): a listing this
        process made earlier would hide their records, and a resumed run would commit without them."""
        self.fs.invalidate_cache(path)
        return self.fs.exists(path)

    def _read_all(self, directory: str) -> list[dict[str, Any]]:
        if not self._exists(directory):
            return []
        out = []
        for path in sorted(self.fs.ls(directory)):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if not name.endswith(".json") or name.startswith("."):
                continue
            with self.fs.open(path, "r") as fh:
                out.append(json.load(fh))
        return out
