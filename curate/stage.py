"""The stage API: Filter, Mapper, GlobalStage and the decorators that turn a plain function into a stage.

A stage is a keyword-only dataclass whose fields are exactly its YAML `with:` keys. Every stage reduces to one
batch contract, `apply(batch) -> StageResult`: the same rows in the same order (possibly rewritten or with added
columns) plus one reason per row (null = keep). The engine owns streaming, counting and the rejected sink.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from curate.counting import Counting
from curate.doc import Columns, Doc
from curate.errors import StageError
from curate.schema import COPIES  # noqa: F401  (the stage API's name for the column `repeat` and `mix` set)

# A reason: snake_case words, optionally qualified with ':' '.' '-' (stage_error:dedup). Reasons key stats.json.
_REASON = re.compile(r"^[a-z0-9][a-z0-9_:.\-]*$")
# A placeholder in a declared reason whose real value varies: top_{n}_gram.
_PLACEHOLDER = re.compile(r"\{[a-z_]*\}")
# Methods the engine calls on a stage instance: a field of that name would hide them.
_ENGINE_METHODS = ("setup", "preflight", "apply", "columns")


class StageResult(NamedTuple):
    """What a stage returns for a batch: rows in input order, and a reason per row (null keeps it)."""

    table: pa.Table
    reasons: pa.Array | None = None


class StageColumns(NamedTuple):
    """The columns of a configured stage (Stage.columns()): what it adds, keeps on rejected rows, removes, reads."""

    output: dict[str, pa.DataType]
    rejected: dict[str, pa.DataType]
    drop: tuple[str, ...]
    input: tuple[str, ...]


@dataclass(kw_only=True)
class Stage(Counting):
    """Base of every stage; subclass Filter, Mapper or GlobalStage rather than this. `self.count(name, n)` adds a
    counter to stats.json under the stage."""

    name: ClassVar[str] = ""
    # Typed columns this stage adds, e.g. {"language": pa.string()}; the engine casts to these types.
    output_columns: ClassVar[dict[str, pa.DataType]] = {}
    # Typed columns this stage's rejected rows keep in OUT/rejected/<stage>/ (`duplicate_of`); kept rows drop them.
    rejected_columns: ClassVar[dict[str, pa.DataType]] = {}
    # Columns this stage consumes and removes (extraction drops `html`).
    drop_columns: ClassVar[tuple[str, ...]] = ()
    # Columns the stage reads; checked against the pipeline's schema before anything runs.
    input_columns: ClassVar[tuple[str, ...]] = ("text",)
    # Ray resources one worker of this stage needs, e.g. {"num_gpus": 1}. Stages with different needs run in
    # different worker pools; everything else in a chain is fused into one pass over each batch.
    resources: ClassVar[dict[str, float]] = {}
    # True for stages that need to see every document (dedup); they run between streaming segments.
    is_global: ClassVar[bool] = False
    # The reasons this stage can give, for `curate stages` and readers of stats.json: snake_case names; one whose
    # value varies is written as a template, e.g. "top_{n}_gram". The engine checks the names it receives.
    reasons: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every stage is a keyword-only dataclass, decorated or not: its annotated fields are its YAML keys.
        super().__init_subclass__(**kwargs)
        _check_class_attributes(cls)
        declared = {k: v for k, v in cls.__dict__.items() if isinstance(v, dataclasses.Field)}
        dataclass(kw_only=True)(cls)
        # dataclass() removes field(default_factory=...) attributes from the class; put them back so that an
        # explicit @dataclass applied after this (the decorated form) sees the same fields and defaults.
        for name, f in declared.items():
            if name not in cls.__dict__:
                setattr(cls, name, f)

    def setup(self) -> None:
        """Load expensive state (a model, a word list). Called once per worker, before the first batch."""

    def preflight(self) -> None:
        """Cheap checks on the driver before any worker starts (a file exists, a package imports), raising the
        errors setup() would raise, so that a run stops in seconds. Must not load a model: it runs on the instance
        the driver plans with, which never runs setup()."""

    def columns(self) -> StageColumns:
        """The columns of this stage as configured; the engine reads them only through this method. By default the
        class's declarations (output_columns, rejected_columns, drop_columns, input_columns); a stage whose columns
        follow its parameters overrides it, e.g. `return super().columns()._replace(output={self.column: ...})`."""
        return StageColumns(self.output_columns, self.rejected_columns, self.drop_columns, self.input_columns)

    def apply(self, batch: pa.Table) -> StageResult:
        raise NotImplementedError

    # -- introspection ------------------------------------------------------------------------------
    @classmethod
    def needs_setup(cls) -> bool:
        return cls.setup is not Stage.setup

    @classmethod
    def summary(cls) -> str:
        doc = (inspect.getdoc(cls) or "").strip()
        return " ".join(doc.split("\n\n", 1)[0].split())  # the first paragraph, on one line

    @classmethod
    def params(cls) -> list[Param]:
        hints = type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if not f.init or f.name.startswith("_"):
                continue
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = REQUIRED
            out.append(Param(f.name, hints.get(f.name, Any), default))
        return out


def _check_class_attributes(cls: type) -> None:
    """A public class attribute of a stage must be annotated: `threshold = 0.5` is not a parameter (only annotated
    attributes are fields), so that silent mistake is an error naming the fix. Methods, descriptors, nested classes
    and names annotated here or on a base (name, output_columns, ...) are fine."""
    annotated: set[str] = set()
    for klass in cls.__mro__:
        annotated.update(inspect.get_annotations(klass))
    for attr, value in vars(cls).items():
        if attr.startswith("_") or attr in annotated or _is_member(value):
            continue
        shown, kind = _short_repr(value), type(value).__name__
        raise StageError(
            f"stage class {cls.__qualname__}: class attribute '{attr} = {shown}' is not annotated, so it is not a "
            "parameter",
            hint=f"annotate it: `{attr}: {kind} = {shown}` to make it a parameter (a YAML key), or "
            f"`{attr}: ClassVar[{kind}] = {shown}` for a constant",
        )
    own = inspect.get_annotations(cls)
    for attr in _ENGINE_METHODS:
        if attr in own and not _is_classvar(own[attr]):
            raise StageError(
                f"stage class {cls.__qualname__}: a parameter cannot be called '{attr}' (a method of every stage)",
                hint="rename the parameter",
            )


def _is_member(value: Any) -> bool:
    """Methods and other descriptors (classmethod, staticmethod, property, cached_property), nested classes and
    dataclass fields: not plain class data."""
    return inspect.isroutine(value) or isinstance(value, (type, dataclasses.Field)) or hasattr(type(value), "__get__")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return typing.get_origin(annotation) is ClassVar or annotation is ClassVar


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


class Param(NamedTuple):
    name: str
    type: Any
    default: Any

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an unresolvable forward reference: fall back to the raw annotations
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            out.update(getattr(klass, "__annotations__", {}))
        return out


def _reasons_array(reasons: list[str | None] | pa.Array, n: int, stage: Stage) -> pa.Array | None:
    arr = reasons if isinstance(reasons, (pa.Array, pa.ChunkedArray)) else pa.array(reasons, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) != n:
        raise StageError(f"stage {stage.name or type(stage).__name__} returned {len(arr)} reasons for {n} documents")
    if arr.null_count == n:
        return None
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


@dataclass(kw_only=True)
class Filter(Stage):
    """Keep or reject each document. reject() returns None to keep it, else a snake_case reason."""

    def reject(self, doc: Doc) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} must implement reject() or reject_batch()")

    def reject_batch(self, batch: pa.Table) -> pa.Array | list[str | None]:
        """Batch form for vectorised filters: one reason per row, null = keep. Default loops over reject()."""
        return [self.reject(doc) for doc in Columns(batch).docs()]

    def apply(self, batch: pa.Table) -> StageResult:
        return StageResult(batch, _reasons_array(self.reject_batch(batch), batch.num_rows, self))


@dataclass(kw_only=True)
class Mapper(Stage):
    """Rewrite or annotate each document. map() sets fields (`doc.text = ...`, `doc["language"] = "en"`) and
    returns None, or returns a reason to reject the document (e.g. extraction failed)."""

    def map(self, doc: Doc) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} must implement map() or map_batch()")

    def map_batch(self, batch: pa.Table) -> pa.Table | tuple[pa.Table, pa.Array | list[str | None] | None]:
        """Batch form: return the rewritten table (same rows, same order), optionally with reasons."""
        cols = Columns(batch)
        reasons = [self.map(doc) for doc in cols.docs()]
        declared = self.columns()
        table = batch
        for name, values in cols.updates.items():
            dtype = declared.output.get(name, declared.rejected.get(name))
            if dtype is None and name in table.column_names:
                dtype = table.schema.field(name).type
            if dtype is None:
                raise StageError(
                    f"stage {self.name or type(self).__name__} set column '{name}' that it does not declare",
                    hint=f"add it to output_columns, e.g. output_columns = {{'{name}': pa.string()}}",
                )
            arr = pa.array(values, dtype)
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, arr) if idx >= 0 else table.append_column(name, arr)
        for name in declared.drop:
            if name in table.column_names:
                table = table.drop_columns([name])
        return table, reasons

    def apply(self, batch: pa.Table) -> StageResult:
        out = self.map_batch(batch)
        table, reasons = out if isinstance(out, tuple) else (out, None)
        arr = None if reasons is None else _reasons_array(reasons, batch.num_rows, self)
        return StageResult(table, arr)


class Table(Protocol):
    """A table derived from the documents (band keys, edges, labels): any number of rows, any columns, spread over
    the workers (Ray) or held in memory (local). Functions receive and return pyarrow tables. Every operation is
    lazy until `materialize`, `count` or `collect`; results must not depend on how rows are split into calls."""

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> Table:
        """fn on each piece; it may return any number of rows."""
        ...

    def group_by(self, key: str | list[str], fn: Callable[[pa.Table], pa.Table]) -> Table:
        """fn on pieces that hold whole groups of `key` (a call holds many groups; rows with a null key form no
        group and never meet each other); it may return any number of rows. Memory per call: a 1/N share of the
        table, N = engine.shuffle_partitions (auto: from the table's size)."""
        ...

    def union(self, *others: Table) -> Table:
        """The rows of this table and the others (columns missing on one side are null)."""
        ...

    def materialize(self) -> Table:
        """Compute the table once (into the object store / memory); later uses read the result."""
        ...

    def count(self) -> int: ...

    def collect(self) -> pa.Table:
        """The whole table on the driver: for small results (a convergence count, a cut point, a histogram)."""
        ...


class Docs(Protocol):
    """The engine's handle on all live documents, given to a global stage. Functions receive and return
    pyarrow tables; a table returned with a string column `reason` rejects the rows where it is not null."""

    def map_batches(self, fn: Callable[[pa.Table], pa.Table]) -> Docs:
        """fn on batches of live documents; same rows, same order (it may add columns and a `reason`)."""
        ...

    def partition_by(self, key: str, fn: Callable[[pa.Table], pa.Table]) -> Docs:
        """Call fn on partitions such that all rows sharing `key` are in the same call (a call holds many keys).
        fn must decide each key group on its own, so that results do not depend on the partitioning. Documents
        whose key is null are spread evenly and each is its own group."""
        ...

    def derive(self, fn: Callable[[pa.Table], pa.Table]) -> Table:
        """A Table of any row count from batches of live documents (one row per document and band, say)."""
        ...

    def join(self, table: Table, on: str = "id") -> Docs:
        """Left-join `table`'s other columns onto the documents by `on` (at most one row per value), keeping the
        documents and their order; documents without a match get nulls. The documents' text is not shuffled."""
        ...

    def table(self, data: pa.Table | list[str]) -> Table:
        """A Table from a driver-side table, or from Parquet files (paths or fsspec URLs), read in parallel."""
        ...

    def write_side(self, name: str, table: Table, path: str | None = None) -> list[dict[str, Any]]:
        """Write `table` as a side output committed with the run: Parquet files under OUT/side/<stage>/<name>/ (or
        under `path`, with `path/_manifest.json` written last), listed with their SHA-256 in OUT/manifest.json and
        redone, never doubled, when the run resumes. Returns the file records (path, rows, bytes, sha256)."""
        ...


@dataclass(kw_only=True)
class GlobalStage(Stage):
    """A stage that needs every document (dedup, global sampling). It runs between streaming segments."""

    is_global: ClassVar[bool] = True

    def apply_global(self, docs: Docs) -> Docs:
        raise NotImplementedError

    def apply(self, batch: pa.Table) -> StageResult:
        raise StageError(f"global stage {type(self).__name__} cannot run on a single batch")


KEY_COLUMN = "__group_key__"


@dataclass(kw_only=True)
class GroupFilter(GlobalStage):
    """A global filter that decides by looking at all documents sharing a key (exact dedup, URL dedup).

    Only the key, the id and the stage's rank columns are shuffled, never the text; a document whose key is null
    is in no group. A rejected document's `duplicate_of` names the document its group kept."""

    rejected_columns: ClassVar[dict[str, pa.DataType]] = {"duplicate_of": pa.string()}

    def key_batch(self, batch: pa.Table) -> pa.Array:
        """One grouping key per document (e.g. a text hash); null: the document is in no group."""
        raise NotImplementedError

    def rank_batch(self, batch: pa.Table) -> dict[str, pa.Array]:
        """Extra columns reject_group decides by (e.g. the text's length), computed before the shuffle."""
        return {}

    def reject_group(self, batch: pa.Table) -> pa.Array | list[str | None]:
        """Reasons for a table that holds whole key groups (columns KEY_COLUMN, id and the rank columns)."""
        raise NotImplementedError

    def apply_global(self, docs: Docs) -> Docs:
        def rows(batch: pa.Table) -> pa.Table:
            cols = {KEY_COLUMN: self.key_batch(batch), "id": batch.column("id"), **self.rank_batch(batch)}
            return pa.table(cols)

        def decide(group: pa.Table) -> pa.Table:
            reasons = _reasons_array(self.reject_group(group), group.num_rows, self)
            if reasons is None:
                return pa.table({})
            kept = group.filter(pc.is_null(reasons))
            first = kept.group_by(KEY_COLUMN).aggregate([("id", "min")]).rename_columns([KEY_COLUMN, "duplicate_of"])
            out = group.select([KEY_COLUMN, "id"]).append_column("reason", reasons).filter(pc.is_valid(reasons))
            keys = pc.index_in(out.column(KEY_COLUMN), value_set=first.column(KEY_COLUMN))
            return out.drop_columns([KEY_COLUMN]).append_column("duplicate_of", first.column("duplicate_of").take(keys))

        return docs.join(docs.derive(rows).group_by(KEY_COLUMN, decide), on="id")


# -- decorators: a plain function becomes a stage -----------------------------------------------------------


def _stage_from_function(fn: Callable[..., Any], base: type[Stage], method: str, **class_attrs: Any) -> type[Stage]:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if not params:
        raise TypeError(f"{fn.__name__} must take the document as its first argument")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    fields: list[tuple[str, Any, Any]] = []
    for p in params[1:]:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"{fn.__name__}: parameter {p.name} must be a plain or keyword-only parameter")
        annotation = hints.get(p.name, Any if p.default is p.empty else type(p.default))
        default = dataclasses.field() if p.default is p.empty else dataclasses.field(default=p.default)
        fields.append((p.name, annotation, default))
    names = [f[0] for f in fields]

    def call(self: Stage, doc: Doc) -> str | None:
        return fn(doc, **{n: getattr(self, n) for n in names})

    namespace = {method: call, "__doc__": fn.__doc__ or f"{fn.__name__} (a function stage)", **class_attrs}
    cls = dataclasses.make_dataclass(fn.__name__, fields, bases=(base,), namespace=namespace, kw_only=True)
    cls.__module__ = fn.__module__
    cls.__qualname__ = fn.__qualname__
    cls.name = class_attrs.get("name") or fn.__name__
    cls.__wrapped__ = fn  # type: ignore[attr-defined]
    return cls


def filter(fn: Callable[..., str | None] | None = None, *, name: str | None = None) -> Any:  # noqa: A001
    """Turn `def f(doc, param=default) -> reason | None` into a Filter stage; params become YAML keys."""

    def wrap(f: Callable[..., str | None]) -> type[Stage]:
        return _stage_from_function(f, Filter, "reject", **({"name": name} if name else {}))

    return wrap(fn) if fn is not None else wrap


def mapper(
    fn: Callable[..., str | None] | None = None,
    *,
    name: str | None = None,
    output_columns: dict[str, pa.DataType] | None = None,
) -> Any:
    """Turn `def f(doc, param=default)` that sets fields on doc into a Mapper; it may return a reason."""

    def wrap(f: Callable[..., str | None]) -> type[Stage]:
        attrs: dict[str, Any] = {"output_columns": dict(output_columns or {})}
        if name:
            attrs["name"] = name
        return _stage_from_function(f, Mapper, "map", **attrs)

    return wrap(fn) if fn is not None else wrap


# -- reasons -------------------------------------------------------------------------------------------------------


def valid_reason(reason: str, template: bool = False) -> bool:
    """Reasons are snake_case words (optionally with ':' '.' '-' qualifiers) so that they are stable keys in stats;
    with `template`, a declared reason may hold placeholders ({n}) where its value varies."""
    return bool(_REASON.fullmatch(_PLACEHOLDER.sub("0", reason) if template else reason))


def check_reasons(sid: str, reasons: pa.Array | pa.ChunkedArray) -> None:
    """Raise StageError naming the stage unless every reason it gave is a valid name. Looks at the distinct values
    only (a batch holds a handful), so it costs little beside the stage."""
    if reasons.null_count == len(reasons):
        return
    for reason in pc.unique(reasons).to_pylist():
        if reason is not None and not (isinstance(reason, str) and _REASON.fullmatch(reason)):
            raise StageError(
                f"stage '{sid}' gave the reason {reason!r}, which is not a snake_case name",
                hint="a reason is lower-case words joined by '_' (qualifiers after ':', '.' or '-'), e.g. too_short; "
                "reasons are the keys of stats.json",
            )
