"""Committing a run: shards no commit lists removed, the manifest and stats.json written, then _SUCCESS last; the
run's scratch state (progress records, checkpoints) dropped after."""

from __future__ import annotations

import logging
from typing import Any

from curate.output import sink
from curate.output.state import CHECKPOINT, PROGRESS, RunState

log = logging.getLogger("curate")


def commit_run(out: str, state: RunState, last_phase: int, stats: dict[str, Any]) -> None:
    """Commit the run: orphans out, manifest and stats in, _SUCCESS last; then drop the run's scratch state."""
    final = [
        f
        for phase in state.phases()
        for c in state.commits(phase)
        for f in c["files"]
        if f["kind"] == "rejected" or phase == last_phase  # kept rows of earlier phases are checkpoints
    ]
    side = [f for phase in state.phases() for f in state.side_files(phase)]
    for root, files in _by_root([f for f in side if f.get("root")]).items():
        sink.write_json(root, sink.SIDE_MANIFEST, {"pipeline": stats["pipeline"], "output": out, "files": files})
    final += [f for f in side if not f.get("root")]
    removed = sink.remove_orphans(out, [f["path"] for f in final])
    if removed:
        log.info("removed %d shard file(s) that no commit lists (failed attempts)", removed)
    manifest: dict[str, Any] = {"pipeline": stats["pipeline"], "shards": final}
    if any(f.get("root") for f in side):
        manifest["external"] = [f for f in side if f.get("root")]
    sink.write_json(out, sink.MANIFEST, manifest)
    sink.write_json(out, sink.STATS, stats)
    sink.write_text(out, sink.SUCCESS, "")
    sink.remove_tree(out, CHECKPOINT)
    sink.remove_tree(out, PROGRESS)


def _by_root(files: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        out.setdefault(f["root"], []).append(f)
    return out
