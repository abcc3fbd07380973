"""Pipelines built in Python: `curate.Pipeline(name=..., input=curate.inputs.warc(...), stages=[...])`.

Every constructor here turns its arguments into the mapping a pipeline file parses to and hands it to curate.config,
so that a pipeline built in Python is validated by the same checks, with the same messages, as a YAML file; with no
file lines to name, the messages name `<python>` and the stage. The stage constructors of `curate.stages` and the
input constructors of `curate.inputs` are generated from the registries (third-party stages and readers included),
each with a real signature (`inspect.signature`, what Jupyter's `?` and tab completion show) and a docstring.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from curate import config
from curate.config import registry
from curate.config.typecheck import type_name
from curate.config.yamlcheck import fields_of
from curate.errors import ConfigError
from curate.settings import Engine, Output
from curate.stage import REQUIRED, Stage, type_hints

_NOT_ID = re.compile(r"[^A-Za-z0-9_\-]")


def python_value(v: Any) -> Any:
    """A Python value as a pipeline file would hold it: paths as strings, tuples as lists."""
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, Mapping):
        return {k: python_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [python_value(x) for x in v]
    return v


# -- stages ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StageEntry:
    """One entry of a pipeline's `stages:` list, made in Python: `curate.stages.trafilatura(favour_precision=True)`.
    Its `id` defaults to the stage's name (numbered on when the name is used twice: minhash, minhash_2)."""

    uses: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    id: str | None = None
    resources: dict[str, float] | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        # Checked now, as the pipeline will check it, so that a notebook cell fails where the mistake is.
        config.stage_spec(self.to_dict())

    @property
    def default_id(self) -> str:
        base = self.uses.rpartition(":")[2] if ":" in self.uses else self.uses
        base = _NOT_ID.sub("_", base.rpartition(".")[2]) or "stage"
        return base if base[0].isalpha() else f"s_{base}"

    def to_dict(self, id: str | None = None) -> dict[str, Any]:
        """The entry as a pipeline file writes it: {id, uses, with, resources, deadline}."""
        out: dict[str, Any] = {"id": id or self.id or self.default_id, "uses": self.uses}
        if self.params:
            out["with"] = python_value(self.params)
        if self.resources:
            out["resources"] = dict(self.resources)
        if self.deadline is not None:
            out["deadline"] = self.deadline
        return out

    def __repr__(self) -> str:
        args = [f"id={self.id!r}"] if self.id else []
        args += [f"{k}={v!r}" for k, v in self.params.items()]
        args += [f"{k}={v!r}" for k in ("resources", "deadline") if (v := getattr(self, k)) is not None]
        return f"{self.uses}({', '.join(args)})"


_ENTRY_KEYS = ("id", "resources", "deadline")


def _entry(uses: str, kwargs: dict[str, Any]) -> StageEntry:
    keys = {k: kwargs.pop(k) for k in _ENTRY_KEYS if k in kwargs}
    return StageEntry(uses, kwargs, **keys)


def stage_constructor(name: str) -> Callable[..., StageEntry]:
    """The constructor of registered stage `name`: keyword arguments are its `with:` keys (plus id, resources and
    deadline), and its signature and docstring come from the stage class."""
    cls = registry.load(name)

    def make(**params: Any) -> StageEntry:
        return _entry(name, params)

    _describe(make, name, cls, _stage_signature(cls), _stage_doc(name, cls))
    return make


def _describe(fn: Callable[..., Any], name: str, cls: type, sig: inspect.Signature, doc: str) -> None:
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = "curate.stages" if issubclass(cls, Stage) else "curate.inputs"
    fn.__doc__ = doc
    fn.__signature__ = sig  # type: ignore[attr-defined]
    fn.__wrapped_class__ = cls  # type: ignore[attr-defined]  # the stage (or reader) class, for `??` and tests


def _stage_signature(cls: type[Stage]) -> inspect.Signature:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(p.name, kw, default=inspect.Parameter.empty if p.required else p.default, annotation=p.type)
        for p in cls.params()
    ]
    params += [
        inspect.Parameter("id", kw, default=None, annotation=str | None),
        inspect.Parameter("resources", kw, default=None, annotation=dict[str, float] | None),
        inspect.Parameter("deadline", kw, default=None, annotation=float | None),
    ]
    return inspect.Signature(params, return_annotation=StageEntry)


def _param_lines(params: Iterable[tuple[str, Any, Any]]) -> list[str]:
    lines = []
    for pname, ptype, default in params:
        shown = "required" if default is REQUIRED else f"default {default!r}"
        lines.append(f"    {pname}: {type_name(ptype)} ({shown})")
    return lines


def _stage_doc(name: str, cls: type[Stage]) -> str:
    lines = [inspect.getdoc(cls) or cls.summary() or f"The stage '{name}'.", ""]
    lines.append(f"Stage '{name}' ({cls.__module__}:{cls.__qualname__}); its parameters are its YAML `with:` keys:")
    lines += _param_lines((p.name, p.type, p.default) for p in cls.params()) or ["    (none)"]
    reasons = list(getattr(cls, "reasons", None) or ())
    lines += ["", f"Reasons it rejects with: {', '.join(reasons) if reasons else 'none declared'}."]
    lines += [
        "",
        f"id names the entry in the pipeline (default '{name}'); resources (e.g. {{'num_gpus': 1}}) and deadline",
        "(seconds per record) are the entry's own keys, as in YAML.",
    ]
    return "\n".join(lines)


def use(stage: str | type[Stage], /, **params: Any) -> StageEntry:
    """A stage by `uses:` value ('my_filters:no_lorem', a registered name) or by class (a stage defined in your
    notebook or module with @curate.filter, @curate.mapper or a curate.Filter subclass); keyword arguments are its
    parameters, plus id, resources and deadline."""
    return _entry(_uses_of(stage), params)


def _uses_of(stage: str | type[Stage]) -> str:
    if isinstance(stage, str):
        return stage
    if isinstance(stage, type) and issubclass(stage, Stage):
        path = f"{stage.__module__}:{stage.__qualname__}"
        for name, ep in registry.registered().items():
            if ep.value == path:
                return name
        return path
    raise ConfigError(
        f"{config.PYTHON}: a stage is named by a string or given as a stage class, not {type(stage).__name__}",
        hint="decorate the function with @curate.filter or @curate.mapper, or subclass curate.Filter",
    )


def _from_instance(stage: Stage) -> StageEntry:
    """A configured stage instance (`NoLorem(max_hits=1)`): its class and the parameters that differ from the
    defaults."""
    cls = type(stage)
    params = {}
    for p in cls.params():
        value = getattr(stage, p.name)
        if p.required or value != p.default:
            params[p.name] = value
    return StageEntry(_uses_of(cls), params)


def stage_entries(stages: Iterable[Any]) -> list[dict[str, Any]]:
    """The `stages:` list from what a Python caller gives: StageEntry objects, stage instances or classes, or the
    mappings a pipeline file holds. Entries without an id get their stage's name, numbered on when used twice."""
    items: list[Any] = []
    for s in stages:
        if isinstance(s, Stage):
            s = _from_instance(s)
        elif isinstance(s, type) and issubclass(s, Stage):
            s = StageEntry(_uses_of(s))
        elif isinstance(s, Mapping):
            s = python_value(s)
        elif not isinstance(s, StageEntry):
            raise ConfigError(
                f"{config.PYTHON}: stages: expected curate.stages.<name>(...), a stage or a mapping, "
                f"got {type(s).__name__}"
            )
        items.append(s)
    taken = {s.id for s in items if isinstance(s, StageEntry) and s.id} | {
        s.get("id") for s in items if isinstance(s, dict)
    }
    out = []
    for s in items:
        if isinstance(s, StageEntry):
            sid = s.id
            if sid is None:
                base = sid = s.default_id
                n = 1
                while sid in taken or sid in config.RESERVED_STAGE_IDS:
                    n += 1
                    sid = f"{base}_{n}"
                taken.add(sid)
            out.append(s.to_dict(sid))
        else:
            out.append(s)
    return out


# -- inputs ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class InputEntry:
    """The `input:` section made in Python: `curate.inputs.warc("crawl/*.warc.gz")`. `name` names a source when a
    pipeline reads several (a list of inputs)."""

    format: str
    params: dict[str, Any]
    name: str | None = None

    def __post_init__(self) -> None:
        config.input_reader(self.to_dict())  # checked now (the files are looked for when the pipeline is built)

    def to_dict(self) -> dict[str, Any]:
        return {**({"name": self.name} if self.name else {}), "format": self.format, **python_value(self.params)}

    def __repr__(self) -> str:
        args = [repr(self.params.get("path"))] + [f"{k}={v!r}" for k, v in self.params.items() if k != "path"]
        if self.name:
            args.append(f"name={self.name!r}")
        return f"inputs.{self.format}({', '.join(args)})"


def input_constructor(fmt: str) -> Callable[..., InputEntry]:
    """The constructor of input format `fmt`: `path` and the reader's keys."""
    cls = registry.load_reader(fmt)

    def make(path: Any = None, /, **params: Any) -> InputEntry:
        name = params.pop("name", None)
        if path is not None:
            params = {"path": path, **params}
        return InputEntry(fmt, params, name)

    fields = fields_of(cls)
    hints = type_hints(cls)
    pos, kw = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    params, lines = [], []
    for fname, f in fields.items():
        default: Any = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        empty = default is dataclasses.MISSING
        params.append(
            inspect.Parameter(
                fname,
                pos if fname == "path" else kw,
                default=inspect.Parameter.empty if empty else default,
                annotation=hints.get(fname, Any),
            )
        )
        lines.append((fname, hints.get(fname, Any), REQUIRED if empty else default))
    params.sort(key=lambda p: p.kind)
    params.append(inspect.Parameter("name", kw, default=None, annotation=str | None))
    doc = "\n".join(
        [
            inspect.getdoc(cls) or f"Input format '{fmt}'.",
            "",
            f"input: {{format: {fmt}, ...}} ({cls.__module__}:{cls.__qualname__}); its keys:",
            *_param_lines(lines),
            "",
            "name names the source when the pipeline reads several (input=[inputs.warc(..., name='web'), ...]).",
        ]
    )
    _describe(make, fmt, cls, inspect.Signature(params, return_annotation=InputEntry), doc)
    return make


def _input_value(inp: Any) -> Any:
    if isinstance(inp, InputEntry):
        return inp.to_dict()
    if isinstance(inp, (list, tuple)):
        return [_input_value(i) for i in inp]
    if isinstance(inp, Mapping):
        return python_value(inp)
    if isinstance(inp, (str, os.PathLike)):
        raise ConfigError(
            f"{config.PYTHON}: input: give a format with the path",
            hint=f"e.g. curate.inputs.parquet({os.fspath(inp)!r}); formats: {', '.join(sorted(registry.readers()))}",
        )
    raise ConfigError(f"{config.PYTHON}: input: expected curate.inputs.<format>(path), got {type(inp).__name__}")


# -- the registries as namespaces -----------------------------------------------------------------------------------


class Namespace:
    """Constructors generated from a registry on first access (module-level __getattr__ of curate.stages and
    curate.inputs)."""

    def __init__(self, what: str, names: Callable[[], list[str]], make: Callable[[str], Callable[..., Any]]) -> None:
        self.what = what
        self.names = names
        self.make = make
        self.cache: dict[str, Callable[..., Any]] = {}

    def get(self, module: str, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(f"module '{module}' has no attribute '{name}'")
        fn = self.cache.get(name)
        if fn is None:
            if name not in self.names():
                near = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
                hint = f" (did you mean '{near[0]}'?)" if near else f" (known: {', '.join(self.names())})"
                raise AttributeError(f"module '{module}' has no {self.what} '{name}'{hint}")
            fn = self.cache[name] = self.make(name)
        return fn


STAGES = Namespace("stage", registry.names, stage_constructor)
INPUTS = Namespace("input format", lambda: sorted(registry.readers()), input_constructor)


# -- the pipeline ---------------------------------------------------------------------------------------------------


class Pipeline(config.Pipeline):
    """A validated pipeline, built in Python or read from YAML; the object `curate run` runs.

    `Pipeline(name=..., input=curate.inputs.warc(...), output="out/x", stages=[curate.stages.trafilatura(), ...])`
    checks everything a pipeline file's loader checks, with the same messages (naming `<python>` where a file names
    its line); `engine` is a mapping of the `engine:` section, `output` a path or a mapping of the `output:` section,
    and stages may also be mappings as in YAML ({"id": ..., "uses": ..., "with": {...}}) or stage instances.
    """

    def __init__(
        self,
        name: str,
        *,
        input: Any,
        output: str | os.PathLike[str] | Mapping[str, Any] | Output | None = None,
        stages: Iterable[Any] = (),
        engine: Mapping[str, Any] | Engine | None = None,
        description: str | None = None,
        check_input: bool = True,
    ) -> None:
        data: dict[str, Any] = {"name": name}
        if description is not None:
            data["description"] = description
        data["input"] = _input_value(input)
        if isinstance(output, (str, os.PathLike)):
            data["output"] = {"path": os.fspath(output)}
        elif isinstance(output, Output):
            data["output"] = dataclasses.asdict(output)
        elif output is not None:
            data["output"] = python_value(output)
        if isinstance(engine, Engine):
            data["engine"] = dataclasses.asdict(engine)
        elif engine is not None:
            data["engine"] = python_value(engine)
        data["stages"] = stage_entries(stages)
        self._adopt(config.from_dict(data, check_input=check_input))

    def _adopt(self, p: config.Pipeline) -> None:
        self.__dict__.update(p.__dict__)

    @classmethod
    def of(cls, p: config.Pipeline) -> Pipeline:
        """This class's view of a pipeline curate.config loaded (the same object's fields)."""
        if isinstance(p, cls):
            return p
        out = cls.__new__(cls)
        out._adopt(p)
        return out

    @classmethod
    def from_yaml(
        cls,
        source: str | os.PathLike[str],
        overrides: list[str] | Mapping[str, Any] | None = None,
        *,
        input: str | None = None,
        output: str | None = None,
        check_input: bool = True,
    ) -> Pipeline:
        """A pipeline file (a path or a bundled name such as 'fineweb') or the text of one (YAML with a newline in
        it), as `curate run` reads it: overrides are `--set` values ('stages.lang.language_threshold=0.8', or a
        mapping of them), input and output replace input.path and output.path."""
        sets = override_list(overrides)
        if isinstance(source, str) and "\n" in source:
            return cls.of(config.from_text(source, sets, input, output, check_input))
        return cls.of(config.load(os.fspath(source), sets, input, output, check_input))

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        overrides: list[str] | Mapping[str, Any] | None = None,
        *,
        check_input: bool = True,
    ) -> Pipeline:
        """A pipeline from the mapping a pipeline file holds."""
        return cls.of(config.from_dict(python_value(data), override_list(overrides), check_input=check_input))

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as it will run (every parameter with its value or default): what OUT/pipeline.yaml holds."""
        return copy.deepcopy(self.resolved)

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The resolved pipeline as YAML (what `curate validate --show` prints); written to `path` if given."""
        text = super().to_yaml()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def set(self, *overrides: str | Mapping[str, Any], input: str | None = None, output: str | None = None) -> Pipeline:
        """A copy with `--set` overrides applied ('stages.lang.language_threshold=0.9', or a mapping of them) and
        input.path / output.path replaced, validated again; this pipeline is not changed."""
        sets = [s for o in overrides for s in override_list(o)]
        return type(self).of(config.from_dict(self.to_dict(), sets, input, output, file=self.file))

    def run(self, **kwargs: Any) -> Any:
        """curate.run(this pipeline, **kwargs)."""
        from curate.api.runs import run

        return run(self, **kwargs)

    @property
    def stage_ids(self) -> list[str]:
        return [s.id for s in self.stages]

    def __repr__(self) -> str:
        inp = self.resolved.get("input")
        if isinstance(inp, dict):
            src = f"{inp.get('format')} {inp.get('path')!r}"
        else:
            src = " + ".join(f"{i.get('name')}: {i.get('format')} {i.get('path')!r}" for i in inp or [])
        stages = ", ".join(f"{s.id}={s.uses}" for s in self.stages)
        return f"Pipeline({self.name!r}: {src} -> {self.output.path!r}; stages: {stages or 'none'})"

    def __str__(self) -> str:
        return self.to_yaml()


def override_list(overrides: str | list[str] | Mapping[str, Any] | None) -> list[str]:
    """`--set` values from a string, a list of them, or a mapping {'stages.lang.language_threshold': 0.9} (values
    written as JSON, which YAML reads back as the same value)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, Mapping):
        return [f"{k}={json.dumps(python_value(v))}" for k, v in overrides.items()]
    return list(overrides)
