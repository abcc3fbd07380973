"""YAML checked against dataclasses: line numbers for every key, `--set` overrides, parameter validation.

Pipeline files (curate.config) and training configs (curate.train.config) share these, so that both report a
mistake the same way: one line naming the file, the line and what is wrong."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from curate.config.typecheck import TypeMismatch, coerce
from curate.errors import ConfigError
from curate.stage import type_hints


class LocatedYaml:
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

    @classmethod
    def of(cls, file: str, data: Any) -> LocatedYaml:
        """Data that comes from no file text (a pipeline built in Python): errors name `file` and no line."""
        doc = cls.__new__(cls)
        doc.file = file
        doc.lines = {}
        doc.data = data
        return doc

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


def apply_overrides(data: dict[str, Any], overrides: list[str], doc: LocatedYaml) -> None:
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


def fields_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The dataclass fields a YAML mapping may set (init fields, not _private ones)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}


def check_params(
    cls: type, values: Any, doc: LocatedYaml, path: tuple[Any, ...], what: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate a mapping against a dataclass's fields: unknown keys, wrong types, missing required keys.

    A class may accept old names for renamed fields through a class attribute `aliases` ({old: new}): the value
    given under the old name is returned under the new one."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{doc.where(*path)}: {what}: expected a mapping of parameters, got {type(values).__name__}")
    known = fields_of(cls)
    hints = type_hints(cls)
    aliases: dict[str, str] = getattr(cls, "aliases", None) or {}
    out: dict[str, Any] = {}
    given: dict[str, Any] = {}  # field name -> the key it was given under (for the line of an error)
    for key, value in values.items():
        if key in skip:
            continue
        name = aliases.get(key, key) if isinstance(key, str) else key
        if name in given:
            raise ConfigError(
                f"{doc.where(*path, key)}: {what}: '{key}' and '{given[name]}' set the same parameter; give one"
            )
        if name not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (known: {', '.join(known) or 'none'})"
            raise ConfigError(f"{doc.where(*path, key)}: {what}: unknown key '{key}'{hint}")
        given[name] = key
        try:
            out[name] = coerce(value, hints.get(name, Any))
        except TypeMismatch as e:
            raise ConfigError(f"{doc.where(*path, key)}: {what}: {key}: {e}") from None
    for name, f in known.items():
        if name in out or name in skip:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise ConfigError(f"{doc.where(*path)}: {what}: missing required key '{name}'")
    return out


def plain(value: Any) -> Any:
    """Make a value safe for yaml.safe_dump (tuples -> lists, paths -> str)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
