"""The figures of a batch, a commit and a run, as one typed record.

A stage's figures over some documents (`StageFigures`): documents in and rejected by reason, seconds, the stage's
own counters, and words, UTF-8 bytes and (with a pipeline tokenizer, `output.tokenizer`) tokens in, kept, out and
rejected by reason (`Flow`). A batch's figures
(`Figures`) hold them per stage, plus the sizes of its rows written as kept. The segment runner fills them; they
ride with the rows to the writer (so that a retried task's figures count once, like its rows), which sums them into
its commit record; the ledger sums the same records for the live progress view; stats.json is built from the
commit records.

Standard library only: the Ray actor that holds the ledger imports this module, and starts faster without pyarrow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

UNITS = ("words", "bytes", "tokens")  # tokens stay 0 unless the pipeline names a tokenizer


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


@dataclass
class Flow:
    """One size unit (words, bytes or tokens) through a stage: what it got, what it kept (as they entered), what it
    handed on (as it left them), and what it rejected, by reason."""

    into: int = 0
    kept: int = 0
    out: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def add(self, other: Flow) -> None:
        self.into += other.into
        self.kept += other.kept
        self.out += other.out
        _add_counts(self.rejected, other.rejected)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class StageFigures:
    """One stage's figures over some documents (a batch, a commit, a run)."""

    docs_in: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # documents by reason
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    words: Flow = field(default_factory=Flow)
    bytes: Flow = field(default_factory=Flow)
    tokens: Flow = field(default_factory=Flow)
    # records isolated as poison (engine/isolate.py): {"id", "reason", "detail"} each
    failures: list[dict[str, str]] = field(default_factory=list)

    def add(self, other: StageFigures) -> None:
        self.docs_in += other.docs_in
        _add_counts(self.rejected, other.rejected)
        self.seconds += other.seconds
        _add_counts(self.counters, other.counters)
        self.words.add(other.words)
        self.bytes.add(other.bytes)
        self.tokens.add(other.tokens)
        self.failures.extend(other.failures)

    def flow(self, unit: str) -> Flow:
        """`words`, `bytes` or `tokens`."""
        return getattr(self, _unit(unit))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.docs_in:
            out["docs_in"] = self.docs_in
        if self.rejected:
            out["rejected"] = self.rejected
        if self.seconds:
            out["seconds"] = self.seconds
        if self.counters:
            out["counters"] = self.counters
        for unit in UNITS:
            f = self.flow(unit)
            if f.into or f.kept or f.out or f.rejected:
                out[unit] = [f.into, f.kept, f.out, f.rejected]
        if self.failures:
            out["failures"] = self.failures
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageFigures:
        flows = {unit: Flow(v[0], v[1], v[2], dict(v[3])) for unit in UNITS if (v := d.get(unit)) is not None}
        return cls(
            docs_in=int(d.get("docs_in", 0)),
            rejected=dict(d.get("rejected", {})),
            seconds=float(d.get("seconds", 0.0)),
            counters=dict(d.get("counters", {})),
            failures=list(d.get("failures", [])),
            **flows,
        )


@dataclass
class Sizes:
    """Words, UTF-8 bytes and tokens (0 without a pipeline tokenizer) of some documents."""

    words: int = 0
    bytes: int = 0
    tokens: int = 0

    def add(self, other: Sizes) -> None:
        self.words += other.words
        self.bytes += other.bytes
        self.tokens += other.tokens

    def get(self, unit: str) -> int:
        return int(getattr(self, _unit(unit)))

    def to_list(self) -> list[int]:
        return [self.words, self.bytes] + ([self.tokens] if self.tokens else [])

    @classmethod
    def from_list(cls, values: list[int] | tuple[int, ...]) -> Sizes:
        return cls(*(int(v) for v in values))


def _unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"unknown size unit {unit!r} (known: {', '.join(UNITS)})")
    return unit


@dataclass
class Figures:
    """The figures of a batch or of a commit: each stage's, the sizes of the rows written as kept, and the sizes of
    the extra rows written for documents kept more than once (`copies`: repeat, mix)."""

    stages: dict[str, StageFigures] = field(default_factory=dict)
    written: Sizes = field(default_factory=Sizes)
    copies: Sizes = field(default_factory=Sizes)

    def stage(self, sid: str) -> StageFigures:
        """The figures of stage `sid` (created empty on first use)."""
        fig = self.stages.get(sid)
        if fig is None:
            fig = self.stages[sid] = StageFigures()
        return fig

    def add(self, other: Figures) -> None:
        for sid, fig in other.stages.items():
            self.stage(sid).add(fig)
        self.written.add(other.written)
        self.copies.add(other.copies)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stages": {sid: fig.to_dict() for sid, fig in self.stages.items()},
            "written": self.written.to_list(),
        }
        if self.copies != Sizes():
            out["copies"] = self.copies.to_list()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Figures:
        stages = {sid: StageFigures.from_dict(f) for sid, f in d.get("stages", {}).items()}
        return cls(stages, Sizes.from_list(d.get("written", ())), Sizes.from_list(d.get("copies", ())))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Figures:
        return cls.from_dict(json.loads(text))
