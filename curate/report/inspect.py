"""`curate inspect OUT` prints documents of a finished output readably (id, url, reason, scores, the start of the
text), one block per document, for a terminal or `less`; `--json` prints one JSON object per line for scripts.
`curate explain OUT DOC_ID` says what happened to one document: each stage it passed, where it stopped and why
(with that stage's parameters), its scores against the thresholds the pipeline cut at.

Styling (bold headers) only on a terminal: piped into `less` or a file, the output is plain text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from curate.errors import ConfigError, InputError
from curate.report.output import CORE, RunOutput, thresholds

SHOWN = ("id", "url", "text", "reason", "duplicate_of")


def _console() -> Any:
    from rich.console import Console

    class PagerConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError  # rich would exit 1; a pager that quit early is no error (see _paged)

    # soft_wrap: long lines are left to the terminal or pager, never cut or broken by us
    return PagerConsole(file=sys.stdout, highlight=False, soft_wrap=True, markup=False, emoji=False)


def _paged(fn: Any) -> Any:
    """Run a printing command so that a pager or `head` that quits early ends it quietly with exit status 0
    (stdout is pointed at /dev/null, so that Python's final flush has nowhere to fail)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0

    return run


def _excerpt(text: str | None, chars: int) -> str:
    if not text:
        return "(no text: rejected before extraction)" if text is None else "(empty text)"
    flat = " ".join(text.split())
    if chars <= 0 or len(flat) <= chars:
        return flat
    return flat[: chars - 1].rstrip() + "\u2026"


def _scores(doc: dict[str, Any]) -> dict[str, Any]:
    """The document's language and numbers (language_score, quality scores, cluster sizes...)."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k in CORE or k in SHOWN or v is None or isinstance(v, bool):
            continue
        if isinstance(v, float):
            out[k] = round(v, 4)
        elif isinstance(v, int) or k == "language":
            out[k] = v
    return out


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The document's other short values (date, content type, crawl...)."""
    scores = _scores(doc)
    return {
        k: v
        for k, v in doc.items()
        if k not in CORE
        and k not in SHOWN
        and k != "stage"
        and k not in scores
        and v is not None
        and (isinstance(v, bool) or (isinstance(v, str) and len(v) <= 60))
    }


def _status(doc: dict[str, Any]) -> str:
    return f"rejected by {doc['stage']}: {doc.get('reason')}" if doc.get("stage") else "kept"


def format_doc(doc: dict[str, Any], chars: int = 300) -> list[tuple[str, str]]:
    """(label, value) lines of one document."""
    lines = [("", f"{doc.get('id')}  {_status(doc)}")]
    if doc.get("url"):
        lines.append(("url", str(doc["url"])))
    if doc.get("duplicate_of"):
        lines.append(("duplicate of", str(doc["duplicate_of"])))
    for label, values in (("scores", _scores(doc)), ("fields", _fields(doc))):
        if values:
            lines.append((label, "  ".join(f"{k}={v}" for k, v in values.items())))
    lines.append(("text", _excerpt(doc.get("text"), chars)))
    return lines


def _print_doc(console: Any, doc: dict[str, Any], chars: int) -> None:
    from rich.text import Text

    for label, value in format_doc(doc, chars):
        if not label:
            console.print(Text(value, style="bold"))
        else:
            console.print(Text(f"  {label:<12} ") + Text(value))
    console.print()


def _check_filters(run: RunOutput, args: argparse.Namespace) -> None:
    if args.kept and (args.stage or args.reason):
        raise ConfigError("--kept shows kept documents; --stage and --reason choose rejected ones", hint="use one")
    if args.stage and args.stage not in run.stage_ids:
        raise ConfigError(f"no stage '{args.stage}' in {run.path}", hint=f"stages: {', '.join(run.stage_ids)}")
    if args.reason:
        known = {
            r for s in run.stats.get("stages", []) if not args.stage or s["id"] == args.stage for r in s["reasons"]
        }
        if args.reason not in known:
            where = f"stage '{args.stage}'" if args.stage else run.path
            raise ConfigError(
                f"no document of {where} was rejected as '{args.reason}'",
                hint=f"reasons: {', '.join(sorted(known)) or 'none'}",
            )


def cmd_inspect(args: argparse.Namespace) -> int:
    run = RunOutput.open(args.out)
    _check_filters(run, args)
    docs = run.documents(
        stage=args.stage,
        reason=args.reason,
        kept=True if args.kept else None,
        n=args.n,
        sample=args.sample,
        seed=args.seed,
    )
    console = None if args.json else _console()
    shown = 0
    for doc in docs:
        shown += 1
        if args.json:
            record = {
                "id": doc.get("id"),
                "url": doc.get("url"),
                "kept": doc.get("stage") is None,
                "stage": doc.get("stage"),
                "reason": doc.get("reason"),
                "duplicate_of": doc.get("duplicate_of"),
                "scores": _scores(doc),
                "fields": _fields(doc),
                "text": doc.get("text") if args.chars <= 0 else _excerpt(doc.get("text"), args.chars),
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            _print_doc(console, doc, args.chars)
    if not shown and not args.json:
        print("no documents match", file=sys.stderr)
    return 0


def explain(run: RunOutput, doc_id: str) -> dict[str, Any]:
    """What happened to one document: its path through the stages, the stage that decided, its scores."""
    found = run.find(doc_id)
    if found is None:
        raise InputError(
            f"document '{doc_id}' is in no shard of {run.path}",
            hint="ids are the `id` column; `curate inspect OUT --json` lists some",
        )
    doc, shard = found
    stopped = doc.get("stage")
    path = []
    state = "passed"
    for sid in run.stage_ids:
        if sid == stopped:
            path.append({"stage": sid, "uses": run.stage_uses(sid), "outcome": "rejected", "reason": doc.get("reason")})
            state = "not reached"
            continue
        path.append({"stage": sid, "uses": run.stage_uses(sid), "outcome": state})
    cuts = []
    for column, where in thresholds(run).items():
        if isinstance(doc.get(column), (int, float)):
            cuts += [{"column": column, "value": doc[column], "stage": s, "param": p, "at": v} for s, p, v in where]
    # what sub-document dedup (line_dedup, substring_dedup, bloom_dedup) cut out of the text: `<stage>_cut` columns
    removed = [
        {"stage": column.removesuffix("_cut"), "pieces": value, "chars": sum(len(p or "") for p in value)}
        for column, value in doc.items()
        if column.endswith("_cut") and isinstance(value, list) and value
    ]
    # a poison record (engine/isolate.py): what happened to its worker
    isolated = [f for s in run.stats.get("stages", []) if s["id"] == stopped for f in s.get("isolated", [])]
    failure = next((f for f in isolated if f["id"] == doc_id), None)
    return {
        "id": doc_id,
        "kept": stopped is None,
        "stage": stopped,
        "reason": doc.get("reason"),
        "failure": failure["detail"] if failure else None,
        "shard": shard.path,
        "url": doc.get("url"),
        "source": doc.get("source"),
        "duplicate_of": doc.get("duplicate_of"),
        "stage_params": run.stage_params(stopped) if stopped else {},
        "path": path,
        "scores": _scores(doc),
        "thresholds": cuts,
        "cut": removed,
        "text": doc.get("text"),
    }


def cmd_explain(args: argparse.Namespace) -> int:
    run = RunOutput.open(args.out)
    info = explain(run, args.doc_id)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2, default=str))
        return 0
    from rich.text import Text

    console = _console()
    if info["kept"]:
        head = f"{info['id']}: kept (passed every stage); in {info['shard']}"
    else:
        head = f"{info['id']}: rejected by {info['stage']} ({run.stage_uses(info['stage'])}) as {info['reason']}"
    console.print(Text(head, style="bold"))
    if info["failure"]:
        note = "a poison record: the rest of its batch ran again without it"
        console.print(f"  {'failure':<8} {info['failure']} ({note})")
    for label in ("url", "source"):
        if info.get(label):
            console.print(f"  {label:<8} {info[label]}")
    console.print()
    for step in info["path"]:
        outcome = step["outcome"] + (f": {step['reason']}" if step.get("reason") else "")
        console.print(Text(f"  {step['stage']:<16} {outcome:<30} ") + Text(step["uses"], style="dim"))
    if info["stage_params"]:
        params = "  ".join(f"{k}={v}" for k, v in info["stage_params"].items())
        console.print(f"\n  {info['stage']} ran with: {params}")
    if info.get("duplicate_of"):
        console.print(f"  duplicate of: {info['duplicate_of']}")
    console.print()
    state = "as it left the last stage" if info["kept"] else f"as it entered {info['stage']}"
    if info["scores"]:
        console.print(f"  scores ({state}): " + "  ".join(f"{k}={v}" for k, v in info["scores"].items()))
    for cut in info["thresholds"]:
        side = "above" if cut["value"] >= cut["at"] else "below"
        console.print(f"  {cut['column']} {cut['value']:.4g} is {side} {cut['stage']}.{cut['param']} = {cut['at']:g}")
    for cut in info["cut"]:
        n = len(cut["pieces"])
        console.print(f"  {cut['stage']} cut {n} piece{'s' * (n != 1)} ({cut['chars']:,} characters) from the text:")
        for piece in cut["pieces"][:8]:
            console.print(Text(f"    - {_excerpt(piece, 160)}", style="dim"))
        if n > 8:
            console.print(f"    ... and {n - 8} more (--json shows them all)")
    console.print(f"  text ({state}): {_excerpt(info['text'], 600)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="print documents of a finished output: kept, or rejected by stage and reason")
    p.add_argument("out", metavar="OUT", help="the output directory of a finished run")
    p.add_argument("--stage", help="documents this stage rejected")
    p.add_argument("--reason", help="documents rejected with this reason")
    p.add_argument("--kept", action="store_true", help="kept documents only")
    p.add_argument("-n", type=int, default=10, help="how many documents (default 10)")
    p.add_argument("--sample", action="store_true", help="a random sample instead of the first ones")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--chars", type=int, default=300, help="characters of text shown (0: all; default 300)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=_paged(cmd_inspect))

    p = sub.add_parser("explain", help="what happened to one document: the stages it passed, where it stopped, why")
    p.add_argument("out", metavar="OUT", help="the output directory of a finished run")
    p.add_argument("doc_id", metavar="DOC_ID", help="the document's id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_paged(cmd_explain))
