"""The plan of a run: row stages fused into segments, global stages between them, phases split at global stages,
and the schema at each stage's input (checked against the columns each stage reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from curate.config import Pipeline, StageSpec
from curate.errors import ConfigError
from curate.schema import INPUT_STAGE

if TYPE_CHECKING:
    from curate.io.base import Reader, ReadUnit
    from curate.output.resume import UnitSkip
    from curate.output.sink import ShardWriter


@dataclass
class Segment:
    """Stages that run fused on each batch (kind 'row'), or one global stage (kind 'global')."""

    kind: str
    specs: list[StageSpec]
    resources: dict[str, float] = field(default_factory=dict)
    mode: str = "auto"  # engine.stateful_stages

    @property
    def in_actors(self) -> bool:
        """Run in an actor pool: a row segment with a stage that has setup(), under `actors`, or under `auto`
        when it needs a GPU (a model on the device, loaded once per actor)."""
        if self.kind != "row" or not self.stateful:
            return False
        return self.mode == "actors" or (self.mode == "auto" and bool(self.resources.get("num_gpus")))

    @property
    def stateful(self) -> bool:
        return any(s.cls.needs_setup() for s in self.specs)

    @property
    def label(self) -> str:
        return "+".join(s.id for s in self.specs)


def plan_segments(specs: list[StageSpec], mode: str = "auto") -> list[Segment]:
    """Fuse row stages into segments; a global stage or different resources start a new one.

    `mode` (engine.stateful_stages) says where stages with setup() run. "tasks": everything fuses into Ray tasks
    (fused with the read; setup once per worker process). "actors": from the first stage with setup() on, the chain
    runs in an actor pool (setup once per actor). "auto" (default): tasks, except GPU stages, which get actors."""
    segments: list[Segment] = []
    for spec in specs:
        if spec.cls.is_global:
            segments.append(Segment("global", [spec], spec.resources, mode))
            continue
        last = segments[-1] if segments else None
        fits = (
            last is not None
            and last.kind == "row"
            and last.resources == spec.resources
            and (mode != "actors" or last.stateful or not spec.cls.needs_setup())
        )
        if fits:
            last.specs.append(spec)  # type: ignore[union-attr]
        else:
            segments.append(Segment("row", [spec], spec.resources, mode))
    return segments


@dataclass
class Phase:
    """Segments that stream from one input to one writer. A pipeline splits into phases at its global stages:
    each phase but the last hands its live documents to the next through a checkpoint on disk, so that a global
    stage sees every document and a killed run resumes from the last finished phase."""

    index: int
    segments: list[Segment]
    final: bool

    @property
    def starts_global(self) -> bool:
        return bool(self.segments) and self.segments[0].kind == "global"

    @property
    def first_stage(self) -> str | None:
        return self.segments[0].specs[0].id if self.segments else None


class PhaseJob(NamedTuple):
    """One phase for an executor: its plan, what it reads (the units left to read, and for each partly committed
    unit the documents to leave out), the writer its rows go to, and the prefix of its write ids."""

    phase: Phase
    reader: Reader
    units: list[ReadUnit]
    skip: dict[str, UnitSkip] | None
    writer: ShardWriter
    write_prefix: str


def plan_phases(specs: list[StageSpec], mode: str = "auto") -> list[Phase]:
    groups: list[list[Segment]] = [[]]
    for seg in plan_segments(specs, mode):
        if seg.kind == "global" and groups[-1]:
            groups.append([])
        groups[-1].append(seg)
    return [Phase(i, segs, i == len(groups) - 1) for i, segs in enumerate(groups)]


def stage_schemas(pipeline: Pipeline) -> tuple[dict[str, pa.Schema], pa.Schema]:
    """The schema at each stage's input, and the schema of kept documents. Checks each stage's input columns."""
    schema = pipeline.input.schema()
    out: dict[str, pa.Schema] = {INPUT_STAGE: schema}
    for spec in pipeline.stages:
        # From the built stage, not its class: a stage's columns may follow its parameters (a score column named in
        # YAML).
        columns = spec.stage.columns()
        missing = [c for c in columns.input if c not in schema.names]
        if missing:
            raise ConfigError(
                f"{pipeline.file}:{spec.line or '?'}: stage '{spec.id}' ({spec.uses}) needs column(s) "
                f"{', '.join(missing)}, which the input and earlier stages do not provide "
                f"(available: {', '.join(schema.names)})",
                hint="an HTML extraction stage (trafilatura) must come before stages that read text"
                if "text" in missing or "html" in missing
                else None,
            )
        out[spec.id] = schema
        keep = [f for f in schema if f.name not in columns.drop and f.name not in columns.output]
        schema = pa.schema(keep + [pa.field(n, t) for n, t in columns.output.items()])
    return out, schema


def rejected_schemas(pipeline: Pipeline, schemas: dict[str, pa.Schema]) -> dict[str, pa.Schema]:
    """The schema of each stage's rejected rows: as they entered the stage, plus its rejected_columns."""
    out = dict(schemas)
    for spec in pipeline.stages:
        declared = spec.stage.columns().rejected
        extra = [pa.field(n, t) for n, t in declared.items() if n not in schemas[spec.id].names]
        if extra:
            out[spec.id] = pa.schema(list(schemas[spec.id]) + extra)
    return out
