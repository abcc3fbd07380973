"""Pipeline files: YAML -> validated Pipeline. Every error names the file, the line and the stage."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from curate import registry
from curate.errors import ConfigError, CurateError
from curate.io.base import Reader
from curate.stage import REQUIRED, Stage, _type_hints
from curate.typecheck import TypeMismatch, coerce

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
RESERVED_STAGE_IDS = {"input", "output"}


@dataclass(kw_only=True)
class Output:
    """Where and how kept and rejected documents are written."""

    path: str
    shard_rows: int = 100_000
    compression: str = "zstd"
    compression_level: int | None = None
    # Write rejected documents under OUT/rejected/<stage>/ (they are counted either way).
    write_rejected: bool = True


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


@dataclass
class StageSpec:
    """One entry of `stages:`, resolved to its class and validated parameters."""

    id: str
    uses: str
    cls: type[Stage]
    params: dict[str, Any]
    resources: dict[str, float] = field(default_factory=dict)
    line: int | None = None

    def build(self) -> Stage:
        return self.cls(**self.params)


@dataclass
class Pipeline:
    name: str
    file: str
    input: Reader
    output: Output
    stages: list[StageSpec]
    engine: Engine
    resolved: dict[str, Any]  # the pipeline as it will run, after --set overrides and defaults

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved, sort_keys=False, allow_unicode=True)


# -- finding pipeline files ---------------------------------------------------------------------------------


def bundled_dir() -> Path:
    """The folder of pipelines shipped with curate: pipelines/ beside the curate package, which is the
    repository's folder in an editable install and site-packages/pipelines in a regular one."""
    return Path(__file__).resolve().parent.parent / "pipelines"


def bundled_names() -> list[str]:
    d = bundled_dir()
    return sorted(p.name for p in d.glob("*.yaml")) if d.is_dir() else []


def find_pipeline(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    for candidate in (name_or_path, f"{name_or_path}.yaml"):
        b = bundled_dir() / candidate
        if "/" not in name_or_path and b.is_file():
            return b
    known = ", ".join(bundled_names()) or "none"
    raise ConfigError(f"no pipeline file '{name_or_path}'", hint=f"give a path, or a bundled pipeline: {known}")


# -- YAML with line numbers ---------------------------------------------------------------------------------


class _Located:
    """Parsed YAML plus the line of every key path, e.g. ('stages', 2, 'with', 'languages') -> 12."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
                self.data = self._convert(loader, node, ()) if node is not None else None
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{file}{line}: YAML syntax error: {e.problem or e.context}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{file}: YAML syntax error: {e}") from None

    def _convert(self, loader: yaml.SafeLoader, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if key in out:
                    raise ConfigError(f"{self.file}:{key_node.start_mark.line + 1}: duplicate key '{key}'")
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self._convert(loader, value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(loader, item, path + (i,)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    def where(self, *path: Any) -> str:
        """`file:line` of the deepest known prefix of `path`."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return f"{self.file}:{line}"
        return self.file


# -- --set overrides -----------------------------------------------------------------------------------------


def apply_overrides(data: dict[str, Any], overrides: list[str], doc: _Located) -> None:
    """Apply `--set a.b.c=value` (value parsed as YAML); stages are addressed by id: stages.<id>.<key>."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. stages.lang.language_threshold=0.8")
        key, _, raw = item.partition("=")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        if parts[0] == "stages":
            if len(parts) < 3:
                raise ConfigError(f"--set {item}: address a stage value as stages.<id>.<key>")
            stage = next((s for s in data.get("stages") or [] if isinstance(s, dict) and s.get("id") == parts[1]), None)
            if stage is None:
                ids = [s.get("id") for s in data.get("stages") or [] if isinstance(s, dict)]
                raise ConfigError(f"--set {item}: no stage with id '{parts[1]}' (stages: {', '.join(map(str, ids))})")
            target = stage
            rest = parts[2:]
            if rest[0] not in ("with", "resources"):
                rest = ["with"] + rest
        else:
            target, rest = data, parts
        for part in rest[:-1]:
            nxt = target.get(part)
            if nxt is None:
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item}: '{part}' is not a mapping")
            target = nxt
        target[rest[-1]] = value


# -- validation ----------------------------------------------------------------------------------------------


def _fields_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}


def _check_params(
    cls: type, values: Any, doc: _Located, path: tuple[Any, ...], what: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate a mapping against a dataclass's fields: unknown keys, wrong types, missing required keys."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{doc.where(*path)}: {what}: expected a mapping of parameters, got {type(values).__name__}")
    known = _fields_of(cls)
    hints = _type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in skip:
            continue
        if key not in known:
            import difflib

            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (known: {', '.join(known) or 'none'})"
            raise ConfigError(f"{doc.where(*path, key)}: {what}: unknown key '{key}'{hint}")
        try:
            out[key] = coerce(value, hints.get(key, Any))
        except TypeMismatch as e:
            raise ConfigError(f"{doc.where(*path, key)}: {what}: {key}: {e}") from None
    for name, f in known.items():
        if name in out or name in skip:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise ConfigError(f"{doc.where(*path)}: {what}: missing required key '{name}'")
    return out


_TOP_KEYS = {"name", "description", "input", "output", "stages", "engine"}
_STAGE_KEYS = {"id", "uses", "with", "resources"}


def load(
    name_or_path: str,
    overrides: list[str] | None = None,
    input_path: str | None = None,
    output_path: str | None = None,
    check_input: bool = True,
) -> Pipeline:
    """Read, override and validate a pipeline file. Raises ConfigError/InputError with file:line."""
    path = find_pipeline(name_or_path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read pipeline file {file}: {e}") from None
    doc = _Located(file, text)
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a pipeline file is a mapping with name, input, output and stages")
    data = copy.deepcopy(data)
    apply_overrides(data, overrides or [], doc)
    if input_path is not None:
        data.setdefault("input", {})
        if isinstance(data["input"], dict):
            data["input"]["path"] = input_path
    if output_path is not None:
        if not isinstance(data.get("output"), dict):
            data["output"] = {}
        data["output"]["path"] = output_path

    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{doc.where(key)}: unknown key '{key}' (known: {', '.join(sorted(_TOP_KEYS))})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{doc.where('name')}: 'name' must be a non-empty string")

    # input
    inp = data.get("input")
    if not isinstance(inp, dict):
        raise ConfigError(f"{doc.where('input')}: 'input' must be a mapping with format and path")
    fmt = inp.get("format")
    if not isinstance(fmt, str):
        raise ConfigError(f"{doc.where('input')}: input.format is required (parquet, jsonl, warc, ...)")
    try:
        reader_cls = registry.load_reader(fmt)
    except ConfigError as e:
        raise ConfigError(f"{doc.where('input', 'format')}: {e.message}", hint=e.hint) from None
    reader_params = _check_params(reader_cls, inp, doc, ("input",), "input", skip=("format",))
    try:
        reader = reader_cls(**reader_params)
    except CurateError as e:
        raise type(e)(f"{doc.where('input')}: {e.message}", hint=e.hint) from None
    if check_input:
        try:
            reader.files()
        except CurateError as e:
            raise type(e)(f"{doc.where('input', 'path')}: {e.message}", hint=e.hint) from None

    # output
    out = data.get("output") or {}
    if not isinstance(out, dict):
        raise ConfigError(f"{doc.where('output')}: 'output' must be a mapping")
    out = {"path": os.path.join("out", name), **out}
    output = Output(**_check_params(Output, out, doc, ("output",), "output"))
    if "://" not in output.path:
        # Workers (Ray, or a cluster sharing a filesystem) must write where the driver means, whatever their cwd.
        output.path = os.path.abspath(output.path)
    if output.shard_rows < 1:
        raise ConfigError(f"{doc.where('output', 'shard_rows')}: output.shard_rows must be at least 1")

    engine = Engine(**_check_params(Engine, data.get("engine"), doc, ("engine",), "engine"))
    if engine.batch_rows < 1:
        raise ConfigError(f"{doc.where('engine', 'batch_rows')}: engine.batch_rows must be at least 1")
    reader.batch_rows = engine.batch_rows if "batch_rows" not in inp else reader.batch_rows

    # stages
    raw_stages = data.get("stages")
    if raw_stages is None:
        raw_stages = []
    if not isinstance(raw_stages, list):
        raise ConfigError(f"{doc.where('stages')}: 'stages' must be a list")
    stages: list[StageSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_stages):
        where = doc.where("stages", i)
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: each stage is a mapping with id, uses and with")
        sid = raw.get("id")
        label = f"stage '{sid}'" if sid else f"stage #{i + 1}"
        for key in raw:
            if key not in _STAGE_KEYS:
                raise ConfigError(
                    f"{doc.where('stages', i, key)}: {label}: unknown key '{key}' (known: id, uses, with, resources)"
                )
        if not isinstance(sid, str) or not _ID.match(sid):
            raise ConfigError(f"{where}: {label}: 'id' must be a name like 'lang' or 'gopher_rep'")
        if sid in seen or sid in RESERVED_STAGE_IDS:
            raise ConfigError(f"{doc.where('stages', i, 'id')}: stage id '{sid}' is used twice or reserved")
        seen.add(sid)
        uses = raw.get("uses")
        if not isinstance(uses, str) or not uses:
            raise ConfigError(f"{where}: {label}: 'uses' must name a stage (see `curate stages`)")
        try:
            cls = registry.load(uses)
        except ConfigError as e:
            raise ConfigError(f"{doc.where('stages', i, 'uses')}: {label}: {e.message}", hint=e.hint) from None
        params = _check_params(cls, raw.get("with"), doc, ("stages", i, "with"), f"{label} ({uses})")
        res = raw.get("resources") or {}
        try:
            res = coerce(res, dict[str, float])
        except TypeMismatch as e:
            raise ConfigError(f"{doc.where('stages', i, 'resources')}: {label}: resources: {e}") from None
        spec = StageSpec(sid, uses, cls, params, {**cls.resources, **res}, doc.lines.get(("stages", i)))
        try:
            spec.build()  # a stage may validate its parameters in __post_init__
        except CurateError as e:
            raise ConfigError(f"{where}: {label} ({uses}): {e.message}", hint=e.hint) from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {label} ({uses}): {e}") from None
        stages.append(spec)

    resolved = {
        "name": name,
        **({"description": data["description"]} if "description" in data else {}),
        "input": {"format": fmt, **_plain(dataclasses.asdict(reader))},
        "output": _plain(dataclasses.asdict(output)),
        "engine": _plain(dataclasses.asdict(engine)),
        "stages": [
            {
                "id": s.id,
                "uses": s.uses,
                "with": _plain(
                    {
                        p.name: s.params.get(p.name, p.default)
                        for p in s.cls.params()
                        if p.default is not REQUIRED or p.name in s.params
                    }
                ),
                **({"resources": s.resources} if s.resources else {}),
            }
            for s in stages
        ],
    }
    return Pipeline(name, file, reader, output, stages, engine, resolved)


def _plain(value: Any) -> Any:
    """Make a value safe for yaml.safe_dump (tuples -> lists, paths -> str)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
