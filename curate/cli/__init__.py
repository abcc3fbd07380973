"""The `curate` command: run, validate, stages, and the subcommands other parts of the package add."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from curate.cli.args import add_pipeline_args
from curate.errors import CurateError

# Modules that add subcommands through register_cli(subparsers); each is optional and imported lazily enough
# that `curate --help` stays fast (no torch, no ray at import). Other packages (the built-in stage library among
# them) add theirs through the entry-point group `curate.commands`, whose values name such modules.
SUBCOMMAND_MODULES = (
    "curate.samples",
    "curate.train.cli",
    "curate.cli.cluster",
    "curate.output.verify",
    "curate.report",
)
COMMAND_GROUP = "curate.commands"


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("curate")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def cmd_run(args: argparse.Namespace) -> int:
    from curate import config, engine

    pipeline = config.load(args.pipeline, args.overrides, args.input, args.output)
    try:
        with _interrupts(ray=args.runner == "ray"):
            stats = engine.run(
                pipeline, runner=args.runner, address=args.address, overwrite=args.overwrite, take_over=args.take_over
            )
    except CurateInterrupted as e:
        _stop_ray()
        print(interrupted_line(e.signum, pipeline.output.path, getattr(args, "command_line", None)), file=sys.stderr)
        return e.exit_code
    except SystemExit as e:
        if e.code != signal.SIGTERM:
            raise
        # SIGTERM while ray.init() runs, before our handler is back: Ray's own handler exits with the signal number
        _stop_ray()
        print(interrupted_line(e.code, pipeline.output.path, getattr(args, "command_line", None)), file=sys.stderr)
        return 128 + signal.SIGTERM
    report = None
    if getattr(args, "report", False):
        from curate.report.html import write_report

        try:
            report = write_report(pipeline.output.path)
        except Exception as e:  # the run is committed either way; the report can be written again
            print(f"warning: the report could not be written: {e} (curate report {pipeline.output.path})")
    print(format_stats(stats, pipeline.output.path, report))
    return 0


class CurateInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread so that a run unwinds (its lock released, Ray shut down)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports a process they killed


def _on_signal(signum: int, frame: Any) -> None:
    # A second signal while the run unwinds kills the process at once (the output stays resumable either way).
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    raise CurateInterrupted(signum)


@contextlib.contextmanager
def _interrupts(ray: bool) -> Iterator[None]:
    """SIGINT and SIGTERM raise CurateInterrupted while a run is on. ray.init() installs its own SIGTERM handler
    and its C++ core a failure handler that dumps a stack trace on SIGTERM, so ours go in again after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}

    def install() -> None:
        for s in signals:
            signal.signal(s, _on_signal)

    install()
    hooks: list[Any] | None = None
    if ray:
        try:
            from ray._private import worker  # _post_init_hooks: called at the end of every ray.init()

            hooks = getattr(worker, "_post_init_hooks", None)
        except ImportError:
            hooks = None
        if hooks is not None:
            hooks.append(install)
    try:
        yield
    finally:
        if hooks is not None and install in hooks:
            hooks.remove(install)
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _stop_ray() -> None:
    """Shut an interrupted run's Ray down ourselves, quietly and at once (its workers stop with it)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.shutdown()


def interrupted_line(signum: int, out: str, command_line: list[str] | None) -> str:
    """One line for an interrupted run: the signal, what the run state says is committed, the command that resumes."""
    from curate.output import sink
    from curate.output.state import RunState

    name = signal.Signals(signum).name
    argv = [a for a in (command_line if command_line is not None else sys.argv[1:]) if a not in _ONCE_FLAGS]
    resume = shlex.join(["curate", *argv])
    try:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(out)
        if fs.exists(sink.join(root, sink.SUCCESS)):
            return f"interrupted by {name} after the run finished: {out} is complete"
        state = RunState(out)
        parts = []
        for phase in state.phases():
            commits = state.commits(phase)
            rejected = sum(sum(r.values()) for c in commits for r in c["counts"]["rejected"].values())
            docs = sum(c["counts"]["kept"] for c in commits) + rejected
            done = " (finished)" if state.phase_done(phase) else ""
            parts.append(f"phase {phase}{done}: {docs:,} documents in {len(commits)} bundle(s)")
        committed = "; ".join(parts) or "nothing yet"
    except Exception as e:  # the summary is best effort; the resume command is what matters
        committed = f"unknown ({e})"
    return f"interrupted by {name}; committed so far: {committed}; resume with: {resume}"


# Flags that must not be repeated when resuming: --overwrite would start over.
_ONCE_FLAGS = ("--overwrite", "--take-over")


def cmd_validate(args: argparse.Namespace) -> int:
    from curate import config
    from curate.engine.plan import plan_segments, stage_schemas

    pipeline = config.load(args.pipeline, args.overrides, args.input, args.output)
    _, kept = stage_schemas(pipeline)
    segments = plan_segments(pipeline.stages, pipeline.engine.stateful_stages)
    print(f"{pipeline.file}: ok — {len(pipeline.stages)} stage(s), {len(pipeline.input.files())} input file(s)")
    for seg in segments:
        how = "global" if seg.kind == "global" else "actor pool" if seg.in_actors else "tasks"
        print(f"  {seg.label}  [{how}]")
    print(f"  output columns: {', '.join(kept.names)}")
    if args.show:
        print(pipeline.to_yaml())
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    from curate.config import registry

    rows = []
    for name in registry.names():
        try:
            cls = registry.load(name)
        except CurateError as e:
            rows.append({"name": name, "error": e.message})
            continue
        kind = (
            "global"
            if cls.is_global
            else "filter"
            if _is("Filter", cls)
            else "mapper"
            if _is("Mapper", cls)
            else "stage"
        )
        params = [
            {
                "name": p.name,
                "type": _type_str(p.type),
                "default": None if p.required else p.default,
                "required": p.required,
            }
            for p in cls.params()
        ]
        rows.append({"name": name, "kind": kind, "doc": cls.summary(), "reasons": list(cls.reasons), "params": params})
    if args.json:
        print(json.dumps(rows, indent=2, default=repr))
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['name']}: cannot load ({row['error']})")
            continue
        print(f"{row['name']}  ({row['kind']})  {row['doc']}")
        print(f"    reasons: {', '.join(row['reasons']) or 'none (rejects nothing)'}")
        for p in row["params"]:
            default = "required" if p["required"] else f"default {p['default']!r}"
            print(
                f"    {p['name']}: {p['type']} = {default}"
                if not p["required"]
                else f"    {p['name']}: {p['type']} ({default})"
            )
    return 0


def _is(base: str, cls: type) -> bool:
    return any(k.__name__ == base and k.__module__ == "curate.stage" for k in cls.__mro__)


def _type_str(t: Any) -> str:
    from curate.config.typecheck import type_name

    return type_name(t)


def format_stats(stats: dict[str, Any], out: str, report: str | None = None) -> str:
    words = f"; {stats['output_words']:,} words kept" if "output_words" in stats else ""
    if stats.get("input_words"):
        words += f" of {stats['input_words']:,}"
    tokens = "tokenizer" in stats  # the pipeline named one: tokens in the headline and a column
    if tokens:
        words += f", {stats['output_tokens']:,} tokens"
        if stats["input_tokens"]:
            words += f" of {stats['input_tokens']:,}"
        if stats.get("written_tokens", stats["output_tokens"]) != stats["output_tokens"]:
            words += f" ({stats['written_tokens']:,} written with copies)"
    lines = [
        f"{stats['pipeline']}: {stats['input_docs']:,} documents in, {stats['output_docs']:,} kept, "
        f"{stats['rejected_docs']:,} rejected{words} ({stats['seconds']:.1f}s, {stats['runner']} runner)",
        f"{'stage':<22}{'in':>10}{'kept':>10}{'rejected':>10}{'words out':>12}"
        + (f"{'tokens out':>13}" if tokens else "")
        + f"{'seconds':>9}  top reasons",
    ]
    for s in stats["stages"]:
        if s["id"] == "input" and not s["rejected"]:
            continue
        top = ", ".join(f"{k} {v:,}" for k, v in list(s["reasons"].items())[:3])
        lines.append(
            f"{s['id']:<22}{s['docs_in']:>10,}{s['kept']:>10,}{s['rejected']:>10,}{s.get('words_out', 0):>12,}"
            + (f"{s.get('tokens_out', 0):>13,}" if tokens else "")
            + f"{s['seconds']:>9.1f}  {top}"
        )
    lines.append(f"output: {out}/data  (rejected: {out}/rejected, stats: {out}/stats.json)")
    if report:
        lines.append(f"report: {report}")
    return "\n".join(lines)


class _CommonSubparsers:
    """Subparsers that all accept -v/-q, after the subcommand as well as before it."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self._sub = sub
        self._common = common
        self.required = True

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", []).append(self._common)
        return self._sub.add_parser(name, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "required":
            object.__setattr__(self, name, value)
            if "_sub" in self.__dict__:
                self._sub.required = value
            return
        object.__setattr__(self, name, value)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's defaults must not reset a flag given before the subcommand
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="warnings only")
    parser = argparse.ArgumentParser(
        prog="curate", description="Turn raw web crawls into pretraining data.", parents=[common]
    )
    sub = _CommonSubparsers(parser.add_subparsers(dest="command", metavar="COMMAND"), common)

    p = sub.add_parser("run", help="run a pipeline")
    add_pipeline_args(p)
    p.add_argument("--runner", choices=("ray", "local"), default="ray", help="Ray Data (default) or in-process")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in the output directory")
    p.add_argument(
        "--take-over",
        action="store_true",
        help="take the output over from a run on another host that is dead but whose lock lease has not expired",
    )
    p.add_argument("--report", action="store_true", help="write OUT/report.html when the run has finished")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("validate", help="check a pipeline file without running it")
    add_pipeline_args(p)
    p.add_argument("--show", action="store_true", help="print the resolved pipeline")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("stages", help="list every registered stage with its parameters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_stages)

    from importlib.metadata import entry_points

    for module_name in SUBCOMMAND_MODULES + tuple(ep.value for ep in entry_points(group=COMMAND_GROUP)):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):
                continue
            raise
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(-1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0))
    try:
        return int(args.fn(args) or 0)
    except CurateError as e:
        # One line: what went wrong, where, and how to fix it.
        print(f"error: {e.message}" + (f" (hint: {e.hint})" if e.hint else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `curate stages | head`
        sys.stderr.close()
        return 0
