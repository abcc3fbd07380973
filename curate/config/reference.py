"""The stage reference of the documentation site, generated from the stage registry.

It lists what `curate stages` lists: every stage registered in the entry-point group `curate.stages`, with its kind,
its summary, its parameters (types written as `curate.config.typecheck.type_name` writes them for `curate stages`
and for config errors) and the rejection reasons it declares (`reasons`, a ClassVar of names). The MkDocs hook
`docs/hooks/stage_reference.py` puts `stage_reference_markdown()` into `docs/stages/reference.md` when the site is
built, so the page cannot drift from the registry; tests/docs/ checks it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from curate.config import registry
from curate.config.typecheck import type_name
from curate.errors import CurateError
from curate.stage import Filter, Mapper, Stage


@dataclass
class StageEntry:
    """One registered stage as the reference shows it; `error` is set (and the rest empty) when it cannot load."""

    name: str
    target: str  # the entry point's value, module:attribute
    kind: str = ""
    summary: str = ""
    params: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, default or "required")
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (reason, description, "" when none is given)
    error: str | None = None


def stage_kind(cls: type[Stage]) -> str:
    """global, filter or mapper (else stage), as `curate stages` prints it."""
    if cls.is_global:
        return "global"
    if issubclass(cls, Filter):
        return "filter"
    if issubclass(cls, Mapper):
        return "mapper"
    return "stage"


def declared_reasons(cls: type[Stage]) -> list[tuple[str, str]]:
    """The reasons a stage declares in its `reasons` ClassVar: names, or a mapping of name to description. A stage
    that declares none (or a `reasons` that is not a collection of names) gives an empty list."""
    reasons: Any = getattr(cls, "reasons", ())
    if isinstance(reasons, str):
        reasons = (reasons,)
    if isinstance(reasons, Mapping):
        return [(str(k), "" if v is None else str(v)) for k, v in reasons.items()]
    if not isinstance(reasons, (list, tuple, set, frozenset)):
        return []
    return [(str(r), "") for r in reasons]


def stage_entries() -> list[StageEntry]:
    """Every registered stage, sorted by name; one that cannot be imported carries its error."""
    entries = []
    for name in registry.names():
        target = registry.registered()[name].value
        try:
            cls = registry.load(name)
        except CurateError as e:
            entries.append(StageEntry(name, target, error=e.message))
            continue
        except Exception as e:  # a broken plugin (AttributeError, SyntaxError, ...) is reported, not fatal
            entries.append(StageEntry(name, target, error=f"{type(e).__name__}: {e}"))
            continue
        params = [(p.name, type_name(p.type), "required" if p.required else repr(p.default)) for p in cls.params()]
        entries.append(StageEntry(name, target, stage_kind(cls), cls.summary(), params, declared_reasons(cls)))
    return entries


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    """Plain text for a Markdown table cell: no line breaks, no column separators (a `|` inside a code span is not
    one, so code spans need no escaping)."""
    return _oneline(text).replace("|", "\\|")


def _prose(text: str) -> str:
    """A docstring's text as Markdown: code spans kept, `<` and `>` elsewhere escaped (`lines_removed_<why>` is not
    an HTML tag)."""
    parts = re.split(r"(`[^`]*`)", _oneline(text))
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in parts)


def _code(text: str) -> str:
    """A code span that holds any backticks in `text`."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def stage_reference_markdown(entries: list[StageEntry] | None = None) -> str:
    """The body of the stage reference page: an overview table, then one section per stage."""
    entries = stage_entries() if entries is None else entries
    lines = ["| stage | kind | rejects with |", "|---|---|---|"]
    for e in entries:
        kind = "cannot load" if e.error else e.kind
        shown = ", ".join(f"`{r}`" for r, _ in e.reasons[:3]) + (", ..." if len(e.reasons) > 3 else "")
        lines.append(f"| [`{e.name}`](#{e.name}) | {kind} | {shown or '-'} |")
    for e in entries:
        lines += ["", f"## `{e.name}` {{#{e.name}}}", ""]
        if e.error:
            lines += [f"`{e.target}` cannot be loaded here: {_oneline(e.error)}"]
            continue
        lines += [f"**{e.kind}** · `{e.target}`", "", _prose(e.summary) or "(no description)", ""]
        if e.params:
            lines += ["| parameter | type | default |", "|---|---|---|"]
            lines += [
                f"| `{n}` | {_cell(t)} | {_code(_oneline(d)) if d != 'required' else '**required**'} |"
                for n, t, d in e.params
            ]
        else:
            lines += ["No parameters."]
        lines += [""]
        if e.reasons:
            lines += ["Rejects with:", ""]
            lines += [f"- `{r}`" + (f" — {_prose(d)}" if d else "") for r, d in e.reasons]
        else:
            lines += ["Rejects with: none declared."]
    return "\n".join(lines) + "\n"
