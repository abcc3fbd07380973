"""Pipeline files: YAML -> validated Pipeline. Every error names the file, the line and the stage."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from curate.config import registry
from curate.config.typecheck import TypeMismatch, coerce
from curate.config.yamlcheck import LocatedYaml, apply_overrides, check_params, plain
from curate.config.yamlutil import check_keys, find_file, read_text, required_name, top_mapping
from curate.errors import ConfigError, CurateError
from curate.settings import Engine, Output
from curate.stage import REQUIRED, Stage

if TYPE_CHECKING:
    # For the annotation only: readers come through the registry, so this module imports nothing from curate.io
    # and curate.io (its writer takes an Output, from curate.settings) never forms a loop with it.
    from curate.io.base import Reader

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
RESERVED_STAGE_IDS = {"input", "output"}


@dataclass
class StageSpec:
    """One entry of `stages:`, resolved to its class and validated parameters."""

    id: str
    uses: str
    cls: type[Stage]
    params: dict[str, Any]
    resources: dict[str, float] = field(default_factory=dict)
    line: int | None = None
    # seconds one record may take in this stage before it is isolated as stage_timeout (None: engine.record_deadline)
    deadline: float | None = None

    def build(self) -> Stage:
        """A new instance of the stage: each worker builds its own, and sets it up there."""
        return self.cls(**self.params)

    @cached_property
    def stage(self) -> Stage:
        """The stage built once on the driver, for validation, planning, schemas and preflight(); setup() never runs
        on it, and it is not shipped to workers (see __getstate__)."""
        return self.build()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("stage", None)  # workers build their own instance
        return state


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
    """The folder of pipelines shipped with curate: the package `curate_pipelines` (the repository's pipelines/
    folder, installed under that name), found without importing it; in a checkout that is not installed, the
    folder beside curate/."""
    spec = importlib.util.find_spec("curate_pipelines")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "pipelines"


def bundled_names() -> list[str]:
    d = bundled_dir()
    return sorted(p.name for p in d.glob("*.yaml")) if d.is_dir() else []


def find_pipeline(name_or_path: str) -> Path:
    """A pipeline file by path, or by the name of a bundled one (with or without .yaml)."""
    bundled = (bundled_dir() / name_or_path, bundled_dir() / f"{name_or_path}.yaml")
    return find_file(name_or_path, bundled, bundled_names, "pipeline file", "pipeline")


_TOP_KEYS = {"name", "description", "input", "output", "stages", "engine"}
_STAGE_KEYS = {"id", "uses", "with", "resources", "deadline"}
_SHAPE = "a pipeline file is a mapping with name, input, output and stages"


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
    text = read_text(path, "pipeline file")
    return from_text(text, overrides, input_path, output_path, check_input, file=file)


def from_text(
    text: str,
    overrides: list[str] | None = None,
    input_path: str | None = None,
    output_path: str | None = None,
    check_input: bool = True,
    file: str = "<yaml>",
) -> Pipeline:
    """A pipeline from the text of a pipeline file, validated as load() validates a file; errors name `file`."""
    doc, data = top_mapping(file, text, overrides, _SHAPE)
    return _build(doc, data, file, input_path, output_path, check_input)


PYTHON = "<python>"  # where a pipeline built in Python (not read from a file) comes from, in its errors


def from_dict(
    data: Any,
    overrides: list[str] | None = None,
    input_path: str | None = None,
    output_path: str | None = None,
    check_input: bool = True,
    file: str = PYTHON,
) -> Pipeline:
    """A pipeline from its mapping (what a pipeline file parses to), validated by the same checks as a file, with
    the same messages; with no lines to name, they name `file` (`<python>`) and the stage."""
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: {_SHAPE}")
    doc = LocatedYaml.of(file, data)
    data = copy.deepcopy(data)
    apply_overrides(data, overrides or [], doc)
    return _build(doc, data, file, input_path, output_path, check_input)


def _build(
    doc: LocatedYaml,
    data: dict[str, Any],
    file: str,
    input_path: str | None,
    output_path: str | None,
    check_input: bool,
) -> Pipeline:
    """The body of load(): `data` (the file's mapping, overrides applied) validated into a Pipeline."""
    _override_paths(data, input_path, output_path)
    check_keys(data, doc, sorted(_TOP_KEYS))
    name = required_name(data, doc)
    fmt, reader = _load_input(data, doc, check_input)
    output = _load_output(data, doc, name)
    engine = _load_engine(data, doc)
    _default_batch_rows(data["input"], reader, engine.batch_rows)
    stages = _load_stages(data, doc)
    _count_tokens_with(stages, output.tokenizer, doc)
    resolved = {
        "name": name,
        **({"description": data["description"]} if "description" in data else {}),
        "input": _resolved_input(fmt, reader),
        "output": plain(dataclasses.asdict(output)),
        "engine": plain(dataclasses.asdict(engine)),
        "stages": [_resolved_stage(s) for s in stages],
    }
    return Pipeline(name, file, reader, output, stages, engine, resolved)


def stage_spec(raw: Any, file: str = PYTHON) -> StageSpec:
    """One entry of `stages:` (a mapping with id, uses, with, ...) validated as in a pipeline, alone."""
    return _load_stage(raw, 0, LocatedYaml.of(file, {"stages": [raw]}), set())


def input_reader(inp: Any, file: str = PYTHON, check_input: bool = False) -> Reader:
    """The `input:` section (one source, or a list of named ones) validated as in a pipeline, alone."""
    return _load_input({"input": inp}, LocatedYaml.of(file, {"input": inp}), check_input)[1]


def _override_paths(data: dict[str, Any], input_path: str | None, output_path: str | None) -> None:
    """--input and --output replace input.path and output.path."""
    if input_path is not None:
        data.setdefault("input", {})
        if isinstance(data["input"], list):
            raise ConfigError("--input replaces one input's path; this pipeline lists several input sources")
        if isinstance(data["input"], dict):
            data["input"]["path"] = input_path
    if output_path is not None:
        if not isinstance(data.get("output"), dict):
            data["output"] = {}
        data["output"]["path"] = output_path


def _load_input(data: dict[str, Any], doc: LocatedYaml, check_input: bool) -> tuple[str, Reader]:
    """The `input:` section: its format's reader, built and (with check_input) shown to find files; or a list of
    named sources (`[{name: web, format: warc, ...}, ...]`), read as one by curate.io.multi.MultiReader."""
    inp = data.get("input")
    if isinstance(inp, list):
        return _load_sources(inp, doc, check_input)
    if not isinstance(inp, dict):
        raise ConfigError(f"{doc.where('input')}: 'input' must be a mapping with format and path")
    return _load_reader(inp, doc, ("input",), "input", check_input)


def _load_reader(
    inp: dict[str, Any], doc: LocatedYaml, where: tuple[Any, ...], what: str, check_input: bool, skip: tuple = ()
) -> tuple[str, Reader]:
    """One reader from its mapping (`format` and the reader's keys) at `where` in the file."""
    fmt = inp.get("format")
    if not isinstance(fmt, str):
        raise ConfigError(f"{doc.where(*where)}: {what}.format is required (parquet, jsonl, warc, ...)")
    try:
        reader_cls = registry.load_reader(fmt)
    except ConfigError as e:
        raise ConfigError(f"{doc.where(*where, 'format')}: {e.message}", hint=e.hint) from None
    reader_params = check_params(reader_cls, inp, doc, where, what, skip=("format", *skip))
    try:
        reader = reader_cls(**reader_params)
    except CurateError as e:
        raise type(e)(f"{doc.where(*where)}: {e.message}", hint=e.hint) from None
    if check_input:
        try:
            reader.files()
        except CurateError as e:
            raise type(e)(f"{doc.where(*where, 'path')}: {e.message}", hint=e.hint) from None
    return fmt, reader


def _load_sources(items: list[Any], doc: LocatedYaml, check_input: bool) -> tuple[str, Reader]:
    """`input:` as a list of named sources; each document's `source` column is its source's name."""
    from curate.io.multi import MultiReader

    if not items:
        raise ConfigError(f"{doc.where('input')}: 'input' lists no sources")
    names, readers = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{doc.where('input', i)}: each input source is a mapping with name, format and path")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{doc.where('input', i)}: input source #{i + 1} needs a 'name' (e.g. web, books)")
        _, reader = _load_reader(item, doc, ("input", i), f"input '{name}'", check_input, skip=("name",))
        names.append(name)
        readers.append(reader)
    try:
        return "multi", MultiReader(names=names, readers=readers)
    except CurateError as e:
        raise type(e)(f"{doc.where('input')}: {e.message}", hint=e.hint) from None


def _default_batch_rows(inp: Any, reader: Reader, batch_rows: int) -> None:
    """Readers without their own batch_rows read engine.batch_rows documents per batch."""
    if isinstance(inp, list):
        for item, inner in zip(inp, reader.readers):  # type: ignore[attr-defined]
            if "batch_rows" not in item:
                inner.batch_rows = batch_rows
        reader.batch_rows = batch_rows
    elif "batch_rows" not in inp:
        reader.batch_rows = batch_rows


def _resolved_input(fmt: str, reader: Reader) -> Any:
    """The input as it will run: one mapping, or the list of named sources."""
    if fmt == "multi":
        return [
            {"name": n, "format": r.format, **plain(dataclasses.asdict(r))}
            for n, r in zip(reader.names, reader.readers)  # type: ignore[attr-defined]
        ]
    return {"format": fmt, **plain(dataclasses.asdict(reader))}


def _load_output(data: dict[str, Any], doc: LocatedYaml, name: str) -> Output:
    """The `output:` section; the path defaults to out/<name> and is made absolute."""
    out = data.get("output") or {}
    if not isinstance(out, dict):
        raise ConfigError(f"{doc.where('output')}: 'output' must be a mapping")
    out = {"path": os.path.join("out", name), **out}
    output = Output(**check_params(Output, out, doc, ("output",), "output"))
    if "://" not in output.path:
        # Workers (Ray, or a cluster sharing a filesystem) must write where the driver means, whatever their cwd.
        output.path = os.path.abspath(output.path)
    if output.shard_rows < 1:
        raise ConfigError(f"{doc.where('output', 'shard_rows')}: output.shard_rows must be at least 1")
    if output.tokenizer is not None:
        if not os.path.isfile(output.tokenizer):
            raise ConfigError(
                f"{doc.where('output', 'tokenizer')}: output.tokenizer '{output.tokenizer}' is not a file",
                hint="give a local tokenizer.json (the one your trainer uses; `curate train` writes one)",
            )
        output.tokenizer = os.path.abspath(output.tokenizer)  # the workers' cwd may differ
    return output


def _count_tokens_with(stages: list[StageSpec], tokenizer: str | None, doc: LocatedYaml) -> None:
    """Stages that count tokens (`counts_tokens`: token_budget, mix, score_top, score_buckets) count them with the
    pipeline's tokenizer unless they name their own, so that their budgets and cuts are in the tokens stats.json
    counts and `curate tokenize` writes; naming a different one is an error."""
    if tokenizer is None:
        return
    for i, spec in enumerate(stages):
        if not getattr(spec.cls, "counts_tokens", False):
            continue
        own = spec.params.get("tokenizer")
        if own is None:
            spec.params["tokenizer"] = tokenizer
            spec.__dict__.pop("stage", None)  # built again with it
        elif os.path.abspath(own) != tokenizer:
            raise ConfigError(
                f"{doc.where('stages', i, 'with', 'tokenizer')}: stage '{spec.id}' counts tokens with '{own}' but "
                f"the pipeline counts them with '{tokenizer}' (output.tokenizer)",
                hint="drop the stage's tokenizer (it then uses the pipeline's), or name the same file in both",
            )


def _load_engine(data: dict[str, Any], doc: LocatedYaml) -> Engine:
    """The `engine:` section (all optional)."""
    engine = Engine(**check_params(Engine, data.get("engine"), doc, ("engine",), "engine"))
    if engine.batch_rows < 1:
        raise ConfigError(f"{doc.where('engine', 'batch_rows')}: engine.batch_rows must be at least 1")
    return engine


def _load_stages(data: dict[str, Any], doc: LocatedYaml) -> list[StageSpec]:
    """The `stages:` list, each entry resolved to its class with validated parameters; ids are unique."""
    raw_stages = data.get("stages")
    if raw_stages is None:
        raw_stages = []
    if not isinstance(raw_stages, list):
        raise ConfigError(f"{doc.where('stages')}: 'stages' must be a list")
    stages: list[StageSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_stages):
        stages.append(_load_stage(raw, i, doc, seen))
    return stages


def _load_stage(raw: Any, i: int, doc: LocatedYaml, seen: set[str]) -> StageSpec:
    """Entry i of `stages:`: its keys, id (added to `seen`), stage class, parameters and resources; built once to
    validate it."""
    where = doc.where("stages", i)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each stage is a mapping with id, uses and with")
    sid = raw.get("id")
    label = f"stage '{sid}'" if sid else f"stage #{i + 1}"
    for key in raw:
        if key not in _STAGE_KEYS:
            raise ConfigError(
                f"{doc.where('stages', i, key)}: {label}: unknown key '{key}' "
                "(known: id, uses, with, resources, deadline)"
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
    params = check_params(cls, raw.get("with"), doc, ("stages", i, "with"), f"{label} ({uses})")
    res = raw.get("resources") or {}
    try:
        res = coerce(res, dict[str, float])
    except TypeMismatch as e:
        raise ConfigError(f"{doc.where('stages', i, 'resources')}: {label}: resources: {e}") from None
    deadline = raw.get("deadline")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline < 0):
        raise ConfigError(
            f"{doc.where('stages', i, 'deadline')}: {label}: deadline must be seconds per record (0: none)"
        )
    spec = StageSpec(sid, uses, cls, params, {**cls.resources, **res}, doc.lines.get(("stages", i)))
    spec.deadline = None if deadline is None else float(deadline)
    try:
        _ = spec.stage  # built once here (and cached): a stage may validate its parameters in __post_init__
    except CurateError as e:
        raise ConfigError(f"{where}: {label} ({uses}): {e.message}", hint=e.hint) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {label} ({uses}): {e}") from None
    return spec


def _resolved_stage(s: StageSpec) -> dict[str, Any]:
    """A stage as it will run: every parameter with its value or default (required ones only when given)."""
    return {
        "id": s.id,
        "uses": s.uses,
        "with": plain(
            {
                p.name: s.params.get(p.name, p.default)
                for p in s.cls.params()
                if p.default is not REQUIRED or p.name in s.params
            }
        ),
        **({"resources": s.resources} if s.resources else {}),
        **({"deadline": s.deadline} if s.deadline is not None else {}),
    }
