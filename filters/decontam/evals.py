"""Evaluation sets read from local files: JSONL (one item per line), JSON (a list), Parquet, CSV/TSV or text (one
item per line), plain or compressed; which fields hold the question, the context, the choices and the answer, set
per file or taken from a preset (lm-eval-harness and lighteval exports, the original MMLU, GSM8K and HumanEval
files), or guessed from the first record's fields.

An item becomes a query (context, then question) and one or more gold answers, the two halves datatrove's
NGramsDecontIndexer hashes: a multiple-choice answer given as an index or a letter is the text of that choice.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from curate.errors import ConfigError, InputError
from curate.io.base import expand_paths, open_input

# Field roles of an evaluation record; each maps to a field name (dotted for nested records, `doc.question`), or for
# `choices` to one field holding a list or to a list of fields (MMLU's A, B, C, D).
ROLES = ("context", "question", "choices", "answer")
# answer_is: how the answer field names the gold answer
ANSWER_KINDS = ("auto", "text", "index", "index1", "letter")

PRESETS: dict[str, dict[str, Any]] = {
    # A record with a `text` field is the whole item (datatrove's plain-document input: text = the label).
    "text": {"answer": "text"},
    # docs/decontamination.md's lighteval export: lighteval's Doc as {query, choices, gold_index}; the golds are the
    # choices at gold_index, what datatrove's indexer hashes (Doc.get_golds()).
    "lighteval": {"question": "query", "choices": "choices", "answer": "gold_index", "answer_is": "index"},
    # docs/decontamination.md's lm-eval-harness export: a task's doc_to_text / doc_to_choice / doc_to_target per
    # document (the target is a choice index for multiple-choice tasks, the answer text for generation tasks).
    "lm_eval": {"question": "doc_to_text", "choices": "doc_to_choice", "answer": "doc_to_target"},
    # MMLU: Hugging Face's cais/mmlu layout (answer: an index), and the original CSV files without a header.
    "mmlu": {"question": "question", "choices": "choices", "answer": "answer", "answer_is": "index"},
    "mmlu_csv": {
        "columns": ["question", "A", "B", "C", "D", "answer"],
        "question": "question",
        "choices": ["A", "B", "C", "D"],
        "answer": "answer",
        "answer_is": "letter",
    },
    "gsm8k": {"question": "question", "answer": "answer"},
    # a record holding only a question (matched with find_query_ngrams)
    "question": {"question": "question"},
    "humaneval": {"question": "prompt", "answer": "canonical_solution", "id": "task_id"},
}
# Keys an `evals:` entry may hold besides the roles.
SPEC_KEYS = ("path", "name", "preset", "format", "columns", "id", "answer_is", *ROLES)
FORMATS = ("jsonl", "json", "parquet", "csv", "tsv", "text")


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item: its set, its key (an id field, else file:row), its query and its gold answers."""

    set: str
    key: str
    query: str | None
    golds: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(p for p in (self.query, *self.golds) if p)


@dataclass(frozen=True)
class EvalSpec:
    """An `evals:` entry resolved: files, a set name and the field mapping."""

    path: str
    name: str
    format: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # roles, id, columns, answer_is (preset applied)
    preset: str | None = None

    @classmethod
    def parse(cls, entry: str | dict[str, Any]) -> EvalSpec:
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            raise ConfigError(f"an evals entry must be a path or a mapping with a path, got {entry!r}")
        unknown = sorted(set(entry) - set(SPEC_KEYS))
        if unknown:
            raise ConfigError(
                f"evals entry {entry.get('path')!r}: unknown key(s) {', '.join(unknown)}",
                hint=f"known keys: {', '.join(SPEC_KEYS)}",
            )
        preset = entry.get("preset")
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"evals entry {entry['path']!r}: unknown preset {preset!r}", hint=_presets_hint())
        fields = dict(PRESETS.get(preset or "", {}))
        fields.update({k: v for k, v in entry.items() if k not in ("path", "name", "preset", "format")})
        if fields.get("answer_is", "auto") not in ANSWER_KINDS:
            raise ConfigError(f"evals entry {entry['path']!r}: answer_is must be one of {', '.join(ANSWER_KINDS)}")
        fmt = entry.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise ConfigError(f"evals entry {entry['path']!r}: format must be one of {', '.join(FORMATS)}")
        name = str(entry.get("name") or _default_name(str(entry["path"])))
        return cls(str(entry["path"]), name, fmt, fields, preset)

    def files(self) -> list[str]:
        return expand_paths(self.path)


def _presets_hint() -> str:
    return f"presets: {', '.join(sorted(PRESETS))}"


def _default_name(path: str) -> str:
    """A set's name from its path: a file's name without extensions, or the folder of a glob or a directory."""
    parts = [p for p in path.rstrip("/").split("/") if p]
    globbed = False
    while parts and any(c in parts[-1] for c in "*?["):
        parts.pop()
        globbed = True
    if not parts:
        return "evals"
    name = parts[-1]
    if globbed or os.path.isdir(path):
        return name
    for ext in (".gz", ".zst", ".bz2", ".xz"):
        name = name.removesuffix(ext)
    return name.rsplit(".", 1)[0] if "." in name else name


def file_format(path: str, given: str | None = None) -> str:
    if given:
        return given
    name = path.lower()
    for ext in (".gz", ".zst", ".bz2", ".xz"):
        name = name.removesuffix(ext)
    for ext, fmt in ((".jsonl", "jsonl"), (".json", "json"), (".parquet", "parquet"), (".csv", "csv")):
        if name.endswith(ext):
            return fmt
    return "tsv" if name.endswith(".tsv") else "text"


# -- records ---------------------------------------------------------------------------------------------------


def read_records(path: str, fmt: str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The records of one evaluation file, as dicts (a text line is {'text': line})."""
    if fmt == "parquet":
        with open_input(path, "rb", compression=None) as fh:
            yield from pq.read_table(fh).to_pylist()
        return
    with open_input(path, "rt") as fh:
        if fmt == "jsonl" or fmt == "json":
            data = fh.read()
            stripped = data.lstrip()
            if fmt == "json" and stripped.startswith("["):
                yield from json.loads(data)
                return
            for row, line in enumerate(io.StringIO(data), 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise InputError(f"{path}:{row}: not JSON: {e}") from e
        elif fmt in ("csv", "tsv"):
            delimiter = "," if fmt == "csv" else "\t"
            if columns:
                for values in csv.reader(fh, delimiter=delimiter):
                    if values:
                        yield dict(zip(columns, values))
            else:
                yield from csv.DictReader(fh, delimiter=delimiter)
        else:
            for line in fh:
                if line.strip():
                    yield {"text": line.rstrip("\r\n")}


def guess_preset(record: dict[str, Any]) -> str | None:
    """The preset whose fields a record has (lighteval and lm-eval exports, MMLU, GSM8K, HumanEval, text)."""
    keys = set(record)
    for preset in ("lighteval", "lm_eval", "humaneval", "mmlu", "gsm8k", "text", "question"):
        wanted = {v for k, v in PRESETS[preset].items() if k in ROLES and isinstance(v, str)}
        if wanted <= keys:
            return preset
    return None


def _get(record: dict[str, Any], name: str) -> Any:
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "\n".join(str(v) for v in value if v is not None) or None
    text = str(value)
    return text if text.strip() else None


def golds_of(answer: Any, choices: list[str] | None, kind: str) -> list[str]:
    """The gold answer texts: the answer itself, or the choice(s) it points at (an index, a 1-based index, a
    letter; `auto` decides by the value: an integer or a single capital letter with choices given points)."""
    if answer is None:
        return []
    values = answer if isinstance(answer, list) else [answer]
    out: list[str] = []
    for v in values:
        k = kind
        if k == "auto":
            if choices and isinstance(v, int) and not isinstance(v, bool):
                k = "index"
            elif choices and isinstance(v, str) and len(v.strip()) == 1 and "A" <= v.strip() <= "Z":
                k = "letter"
            else:
                k = "text"
        if k == "text" or not choices:
            text = _text(v)
            if text:
                out.append(text)
            continue
        try:
            i = ord(str(v).strip()) - ord("A") if k == "letter" else int(v) - (1 if k == "index1" else 0)
        except (TypeError, ValueError):
            continue
        if 0 <= i < len(choices) and choices[i]:
            out.append(choices[i])
    return out


def items_of(spec: EvalSpec) -> Iterator[EvalItem]:
    """Every item of an evaluation set, file by file, in order."""
    for path in spec.files():
        fmt = file_format(path, spec.format)
        fields = spec.fields
        records = read_records(path, fmt, fields.get("columns"))
        if not any(r in fields for r in ROLES):
            first = next(records, None)
            if first is None:
                continue
            preset = guess_preset(first)
            if preset is None:
                raise ConfigError(
                    f"evaluation file {path}: cannot tell which fields are the question and the answer "
                    f"(fields: {', '.join(map(str, first)) or 'none'})",
                    hint=f"give question/answer/choices/context in its evals entry, or a preset ({_presets_hint()})",
                )
            fields = {**PRESETS[preset], **fields}
            records = _chain(first, records)
        name = os.path.basename(path)
        for row, rec in enumerate(records):
            item = _item(spec.name, rec, fields, f"{name}:{row}")
            if item is not None:
                yield item


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def _item(set_name: str, rec: dict[str, Any], fields: dict[str, Any], default_key: str) -> EvalItem | None:
    choices_field = fields.get("choices")
    choices: list[str] | None = None
    if isinstance(choices_field, list):
        choices = [str(_get(rec, c) or "") for c in choices_field]
    elif choices_field:
        value = _get(rec, choices_field)
        choices = [str(c) for c in value] if isinstance(value, list) else None
    query_parts = [_text(_get(rec, fields[r])) for r in ("context", "question") if fields.get(r)]
    query = "\n".join(p for p in query_parts if p) or None
    golds = []
    if "answer" in fields:
        golds = golds_of(_get(rec, fields["answer"]), choices, fields.get("answer_is", "auto"))
    if not golds and query is None:
        return None
    key = _get(rec, fields["id"]) if fields.get("id") else rec.get("id")
    return EvalItem(set_name, str(key) if key is not None else default_key, query, tuple(golds))


def read_sets(entries: list[str | dict[str, Any]]) -> list[EvalSpec]:
    """The `evals:` entries parsed; set names must be unique."""
    specs = [EvalSpec.parse(e) for e in entries]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"two evaluation sets are named {', '.join(dup)}", hint="give each a distinct `name:`")
    return specs
