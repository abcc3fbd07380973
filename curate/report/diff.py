"""`curate diff OUT_A OUT_B`: two runs of the same input compared document by document.

Every document's outcome (kept, or the stage and reason that rejected it) is read from both outputs and joined by
id: the documents one run kept and the other did not, grouped by the stage and reason that decided them in the
other run; the documents both rejected but at different stages or for different reasons; the pipeline settings
that differ; and the stats that changed. A changed threshold shows up as exactly the documents it moved.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.report.output import RunOutput

NUMBERS = ("docs_in", "kept", "rejected", "words_in", "words_out", "bytes_out")


def _outcomes(run: RunOutput, side: str) -> pa.Table:
    t = run.decisions()
    return pa.table(
        {
            "id": t.column("id"),
            f"stage_{side}": t.column("stage"),
            f"reason_{side}": t.column("reason"),
            f"in_{side}": pa.array([True] * t.num_rows, pa.bool_()),
        }
    )


def _label(stage: str | None, reason: str | None) -> str:
    return "kept" if stage is None else f"{stage}: {reason}"


def _groups(table: pa.Table, keys: list[str], examples: int) -> list[dict[str, Any]]:
    """Rows of `table` grouped by `keys`: count and the first ids, largest groups first."""
    if table.num_rows == 0:
        return []
    counts = table.group_by(keys).aggregate([("id", "count"), ("id", "list")])
    out = []
    for row in counts.to_pylist():
        out.append(
            {**{k: row[k] for k in keys}, "documents": row["id_count"], "ids": sorted(row["id_list"])[:examples]}
        )
    return sorted(out, key=lambda g: (-g["documents"], str([g[k] for k in keys])))


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def pipeline_changes(a: RunOutput, b: RunOutput) -> list[dict[str, Any]]:
    """Settings that differ between the two resolved pipelines (stages keyed by id; the output path left out)."""

    def keyed(p: dict[str, Any]) -> dict[str, Any]:
        q = {k: v for k, v in p.items() if k not in ("stages", "output", "name", "description")}
        q["stages"] = {s.get("id"): {"uses": s.get("uses"), "with": s.get("with") or {}} for s in p.get("stages", [])}
        q["output"] = {k: v for k, v in (p.get("output") or {}).items() if k != "path"}
        return q

    fa, fb = _flat(keyed(a.pipeline)), _flat(keyed(b.pipeline))
    return [{"setting": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def stats_changes(a: RunOutput, b: RunOutput) -> list[dict[str, Any]]:
    """Per stage, the counts (documents, words, each reason) that differ."""
    sa = {s["id"]: s for s in a.stats.get("stages", [])}
    sb = {s["id"]: s for s in b.stats.get("stages", [])}
    out = []
    for sid in list(sa) + [s for s in sb if s not in sa]:
        x, y = sa.get(sid, {}), sb.get(sid, {})
        for key in NUMBERS:
            if x.get(key, 0) != y.get(key, 0):
                out.append({"stage": sid, "figure": key, "a": x.get(key, 0), "b": y.get(key, 0)})
        rx, ry = x.get("reasons", {}), y.get("reasons", {})
        for reason in sorted(set(rx) | set(ry)):
            if rx.get(reason, 0) != ry.get(reason, 0):
                out.append({"stage": sid, "figure": f"reason {reason}", "a": rx.get(reason, 0), "b": ry.get(reason, 0)})
    return out


def diff(a: RunOutput, b: RunOutput, examples: int = 5) -> dict[str, Any]:
    """The comparison of two outputs (see the module docstring) as a dict."""
    joined = _outcomes(a, "a").join(_outcomes(b, "b"), keys="id", join_type="full outer")
    in_a = pc.fill_null(joined.column("in_a"), False)
    in_b = pc.fill_null(joined.column("in_b"), False)
    both = joined.filter(pc.and_(in_a, in_b))
    kept_a = pc.is_null(both.column("stage_a"))
    kept_b = pc.is_null(both.column("stage_b"))
    lost = both.filter(pc.and_(kept_a, pc.invert(kept_b)))  # kept by A, not by B
    gained = both.filter(pc.and_(kept_b, pc.invert(kept_a)))
    rejected_both = both.filter(pc.and_(pc.invert(kept_a), pc.invert(kept_b)))
    differs = pc.or_(
        pc.not_equal(rejected_both.column("stage_a"), rejected_both.column("stage_b")),
        pc.not_equal(rejected_both.column("reason_a"), rejected_both.column("reason_b")),
    )
    moved = rejected_both.filter(differs)
    return {
        "a": a.path,
        "b": b.path,
        "documents": {
            "in_both": both.num_rows,
            "only_in_a": joined.num_rows - pc.sum(in_b).as_py() if joined.num_rows else 0,
            "only_in_b": joined.num_rows - pc.sum(in_a).as_py() if joined.num_rows else 0,
            "kept_by_a_not_b": lost.num_rows,
            "kept_by_b_not_a": gained.num_rows,
            "rejected_differently": moved.num_rows,
            "same_outcome": both.num_rows - lost.num_rows - gained.num_rows - moved.num_rows,
        },
        "kept_by_a_not_b": _groups(lost, ["stage_b", "reason_b"], examples),
        "kept_by_b_not_a": _groups(gained, ["stage_a", "reason_a"], examples),
        "rejected_differently": _groups(moved, ["stage_a", "reason_a", "stage_b", "reason_b"], examples),
        "pipeline": pipeline_changes(a, b),
        "stats": stats_changes(a, b),
    }


def format_diff(d: dict[str, Any]) -> str:
    n = d["documents"]
    lines = [
        f"A = {d['a']}",
        f"B = {d['b']}",
        f"{n['in_both']:,} documents in both; {n['same_outcome']:,} same outcome",
    ]
    if n["only_in_a"] or n["only_in_b"]:
        lines.append(
            f"not the same input: {n['only_in_a']:,} documents only in A, {n['only_in_b']:,} only in B "
            "(only documents in both are compared)"
        )
    lines.append("")
    lines.append(f"kept by A, not by B: {n['kept_by_a_not_b']:,}  (what rejected them in B)")
    for g in d["kept_by_a_not_b"]:
        lines.append(f"  {g['documents']:>8,}  {_label(g['stage_b'], g['reason_b'])}   e.g. {', '.join(g['ids'])}")
    lines.append(f"kept by B, not by A: {n['kept_by_b_not_a']:,}  (what rejected them in A)")
    for g in d["kept_by_b_not_a"]:
        lines.append(f"  {g['documents']:>8,}  {_label(g['stage_a'], g['reason_a'])}   e.g. {', '.join(g['ids'])}")
    lines.append(f"rejected by both, differently: {n['rejected_differently']:,}")
    for g in d["rejected_differently"]:
        was, now = _label(g["stage_a"], g["reason_a"]), _label(g["stage_b"], g["reason_b"])
        lines.append(f"  {g['documents']:>8,}  A {was} -> B {now}   e.g. {', '.join(g['ids'])}")
    lines.append("")
    lines.append("pipeline settings that differ:" if d["pipeline"] else "pipeline settings: the same")
    for c in d["pipeline"]:
        lines.append(f"  {c['setting']}: {c['a']!r} -> {c['b']!r}")
    lines.append("stats that changed:" if d["stats"] else "stats: the same")
    for c in d["stats"]:
        delta = c["b"] - c["a"] if isinstance(c["a"], (int, float)) and isinstance(c["b"], (int, float)) else ""
        lines.append(f"  {c['stage']:<16} {c['figure']:<28} {c['a']:>12,} -> {c['b']:>12,}  ({delta:+,})")
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    d = diff(RunOutput.open(args.out_a), RunOutput.open(args.out_b), examples=args.examples)
    print(json.dumps(d, indent=2, default=str) if args.json else format_diff(d))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("diff", help="compare two runs of the same input, document by document")
    p.add_argument("out_a", metavar="OUT_A")
    p.add_argument("out_b", metavar="OUT_B")
    p.add_argument("--examples", type=int, default=5, help="document ids shown per group (default 5)")
    p.add_argument("--json", action="store_true")
    from curate.report.inspect import _paged

    p.set_defaults(fn=_paged(cmd_diff))
