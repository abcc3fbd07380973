"""The stage API: decorators, Filter/Mapper contracts, and the engine's enforcement of them (no Ray)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import curate
from curate.config import StageSpec
from curate.engine.segment import SegmentRunner
from curate.errors import StageError
from curate.ledger import Ledger
from curate.schema import REASON, STAGE


def _spec(cls, sid="s", **params):
    return StageSpec(sid, cls.name or sid, cls, params)


def _batch(texts):
    return pa.table(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "url": [None] * len(texts),
            "source": ["t"] * len(texts),
        }
    )


@curate.filter
def short(doc, min_chars: int = 5) -> str | None:
    """Reject short documents."""
    return "too_short" if len(doc.text) < min_chars else None


def test_decorated_function_becomes_a_filter_with_yaml_params():
    assert issubclass(short, curate.Filter)
    assert [(p.name, p.default) for p in short.params()] == [("min_chars", 5)]
    assert short.summary() == "Reject short documents."
    assert short(min_chars=3).reject(curate.Doc.of(text="ab")) == "too_short"
    assert short(min_chars=3).reject(curate.Doc.of(text="abcd")) is None


def test_subclass_without_decorator_is_a_keyword_only_dataclass():
    class Gate(curate.Filter):
        limit: int = 2

        def reject(self, doc):
            return "over" if len(doc.words()) > self.limit else None

    assert [p.name for p in Gate.params()] == ["limit"]
    with pytest.raises(TypeError):
        Gate(3)  # keyword-only
    assert Gate(limit=1).reject(curate.Doc.of(text="two words")) == "over"


def test_segment_runner_splits_kept_and_rejected_with_stage_and_reason():
    runner = SegmentRunner([_spec(short, "len", min_chars=6)], Ledger())
    out = runner(_batch(["long enough", "tiny", "also long"]))
    kept = out.filter(pa.compute.is_null(out.column(REASON)))
    rejected = out.filter(pa.compute.is_valid(out.column(REASON)))
    assert kept.column("id").to_pylist() == ["d0", "d2"]
    assert rejected.column("id").to_pylist() == ["d1"]
    assert rejected.column(STAGE).to_pylist() == ["len"]
    assert rejected.column(REASON).to_pylist() == ["too_short"]


def test_mapper_adds_declared_typed_column_and_may_reject():
    @curate.mapper(output_columns={"n_chars": pa.int32()})
    def chars(doc):
        if not doc.text:
            return "empty_text"
        doc["n_chars"] = len(doc.text)

    runner = SegmentRunner([_spec(chars, "chars")], Ledger())
    out = runner(_batch(["abc", "", "hello"]))
    kept = out.filter(pa.compute.is_null(out.column(REASON)))
    assert kept.schema.field("n_chars").type == pa.int32()
    assert kept.column("n_chars").to_pylist() == [3, 5]
    assert out.filter(pa.compute.is_valid(out.column(REASON))).column(REASON).to_pylist() == ["empty_text"]


def test_undeclared_column_is_a_stage_error():
    @curate.mapper
    def sneaky(doc):
        doc["secret"] = 1

    runner = SegmentRunner([_spec(sneaky, "sneaky")], Ledger())
    with pytest.raises(StageError, match="secret"):
        runner(_batch(["a"]))


def test_stage_that_drops_rows_breaks_the_contract():
    class Dropper(curate.Stage):
        def apply(self, batch):
            return curate.StageResult(batch.slice(0, batch.num_rows - 1), None)

    runner = SegmentRunner([_spec(Dropper, "dropper")], Ledger())
    with pytest.raises(StageError, match="returned 2 rows for 3"):
        runner(_batch(["a", "b", "c"]))


def test_a_document_a_stage_raises_on_is_rejected_as_stage_error_and_the_rest_go_on():
    @curate.filter
    def fragile(doc):
        if "boom" in doc.text:
            raise ValueError("cannot handle boom")
        return None

    ledger = Ledger()
    runner = SegmentRunner([_spec(fragile, "fragile")], ledger, max_stage_errors=5)
    out = runner(_batch(["fine", "boom here", "fine too"]))
    reasons = dict(zip(out.column("id").to_pylist(), out.column(REASON).to_pylist()))
    assert reasons == {"d0": None, "d2": None, "d1": "stage_error:fragile"}
    assert ledger.errors == {"fragile": 1}


def test_stage_errors_above_the_cap_stop_the_run():
    @curate.filter
    def always(doc):
        raise RuntimeError("broken stage")

    runner = SegmentRunner([_spec(always, "always")], Ledger(), max_stage_errors=2)
    with pytest.raises(StageError, match="more than engine.max_stage_errors=2"):
        runner(_batch(["a", "b", "c"]))


def test_counters_reach_the_ledger():
    class Lines(curate.Mapper):
        def map(self, doc):
            self.count("lines_removed", 2)

    ledger = Ledger()
    SegmentRunner([_spec(Lines, "lines")], ledger)(_batch(["a", "b"]))
    assert ledger.stages["lines"]["counters"] == {"lines_removed": 4}
    assert ledger.stages["lines"]["docs_in"] == 2


def test_setup_runs_once_per_runner():
    calls = []

    class Model(curate.Filter):
        def setup(self):
            calls.append(1)

        def reject(self, doc):
            return None

    runner = SegmentRunner([_spec(Model, "model")], Ledger())
    runner(_batch(["a"]))
    runner(_batch(["b"]))
    assert calls == [1]
    assert Model.needs_setup() and not short.needs_setup()


def test_default_factory_fields_survive_an_explicit_dataclass_decorator():
    from dataclasses import dataclass, field

    @dataclass(kw_only=True)
    class Decorated(curate.Filter):
        words: list[str] = field(default_factory=lambda: ["spam"])

        def reject(self, doc):
            return "word" if any(w in doc.text for w in self.words) else None

    class Plain(curate.Filter):
        words: list[str] = field(default_factory=lambda: ["eggs"])

    assert Decorated().words == ["spam"] and Plain().words == ["eggs"]
    assert [(p.name, p.default, p.required) for p in Decorated.params()] == [("words", ["spam"], False)]
