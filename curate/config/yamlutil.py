"""What pipeline files (curate.config) and training configs (curate.train.config) have in common: finding a file by
path or bundled name, reading it, and its top-level mapping with the `--set` overrides applied and its keys and name
checked. Errors name the file and line (curate.config.yamlcheck.LocatedYaml)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from curate.config.yamlcheck import LocatedYaml, apply_overrides
from curate.errors import ConfigError


def find_file(name_or_path: str, bundled: Iterable[Path], known: Callable[[], list[str]], what: str, kind: str) -> Path:
    """`name_or_path` when it is a file; else, for a bare name, the first of the `bundled` candidates that is one.
    Not found: a ConfigError "no {what} 'x'" that lists `known()`, the bundled {kind}s."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for candidate in bundled:
        if "/" not in name_or_path and candidate.is_file():
            return candidate
    names = ", ".join(known()) or "none"
    raise ConfigError(f"no {what} '{name_or_path}'", hint=f"give a path, or a bundled {kind}: {names}")


def read_text(path: Path, what: str) -> str:
    """The file's text (UTF-8); a ConfigError "cannot read {what} FILE" where it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None


def top_mapping(file: str, text: str, overrides: list[str] | None, shape: str) -> tuple[LocatedYaml, dict[str, Any]]:
    """The file's YAML (with its lines) and a copy of its top-level mapping with `overrides` applied; not a mapping:
    a ConfigError "FILE: {shape}"."""
    doc = LocatedYaml(file, text)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{file}: {shape}")
    data = copy.deepcopy(doc.data)
    apply_overrides(data, overrides or [], doc)
    return doc, data


def check_keys(data: dict[str, Any], doc: LocatedYaml, known: Iterable[str]) -> None:
    """A ConfigError at the first top-level key not in `known` (listed in the given order)."""
    known = tuple(known)
    for key in data:
        if key not in known:
            raise ConfigError(f"{doc.where(key)}: unknown key '{key}' (known: {', '.join(known)})")


def required_name(data: dict[str, Any], doc: LocatedYaml) -> str:
    """The top-level `name`: a non-empty string."""
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{doc.where('name')}: 'name' must be a non-empty string")
    return name
