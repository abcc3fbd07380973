"""The stage API: decorators, Filter/Mapper contracts, and the engine's enforcement of them (no Ray)."""

from __future__ import annotations

from dataclasses import field
from functools import cached_property
from typing import ClassVar

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


def test_a_row_stage_puts_its_rejected_columns_on_rejected_rows_only():
    class Why(curate.Mapper):
        rejected_columns: ClassVar[dict[str, pa.DataType]] = {"why": pa.string()}

        def map(self, doc):
            if "bad" in doc.text:
                doc["why"] = f"matched {doc.text.split()[-1]}"
                return "bad_word"
            return None

    out = SegmentRunner([_spec(Why, "why")], Ledger())(_batch(["fine text", "a bad one", "also fine"]))
    kept = out.filter(pa.compute.is_null(out.column(REASON)))
    rejected = out.filter(pa.compute.is_valid(out.column(REASON)))
    # (kept rows carry it as null only where a batch holds both; the writer conforms them to the kept schema)
    assert kept.column("id").to_pylist() == ["d0", "d2"] and kept.column("why").null_count == 2
    assert rejected.column("why").to_pylist() == ["matched one"]
    assert rejected.column("text").to_pylist() == ["a bad one"]  # the row as it entered the stage


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
    assert ledger.figures.stages["lines"].counters == {"lines_removed": 4}
    assert ledger.figures.stages["lines"].docs_in == 2


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


# -- class attributes: an unannotated one is not a parameter, and says so -------------------------------------------


def test_an_unannotated_class_attribute_is_an_error_naming_the_fix():
    with pytest.raises(StageError) as info:

        class Loose(curate.Filter):
            threshold = 0.5

            def reject(self, doc):
                return None

    message = str(info.value)
    assert "Loose" in message and "'threshold = 0.5'" in message
    assert "threshold: float = 0.5" in message and "ClassVar[float]" in message


def test_methods_descriptors_private_names_and_declared_names_are_not_parameters():
    class Fine(curate.Mapper):
        name = "fine"  # annotated (ClassVar) on Stage
        output_columns = {"n": pa.int64()}
        input_columns = ("text",)
        reasons = ("too_long",)
        limit: ClassVar[int] = 3  # a constant
        words: list[str] = field(default_factory=list)  # a parameter
        _cache = {}

        class Helper:
            pass

        def map(self, doc):
            doc["n"] = self.limit

        @property
        def prop(self):
            return 1

        @cached_property
        def cached(self):
            return 2

        @classmethod
        def make(cls):
            return cls()

        @staticmethod
        def util():
            return 3

    assert [p.name for p in Fine.params()] == ["words"]

    class Child(Fine):
        limit = 4  # annotated on a base
        reasons = ()

    assert Child.limit == 4 and [p.name for p in Child.params()] == ["words"]


def test_a_parameter_may_not_hide_a_method_the_engine_calls():
    with pytest.raises(StageError, match="cannot be called 'columns'"):

        @curate.filter
        def picky(doc, columns: int = 2):
            return None


def test_decorated_stages_keep_their_name_and_columns():
    @curate.mapper(output_columns={"n_chars": pa.int32()}, name="chars")
    def count_chars(doc, scale: int = 1):
        doc["n_chars"] = len(doc.text) * scale

    assert count_chars.name == "chars" and [p.name for p in count_chars.params()] == ["scale"]
    assert count_chars(scale=2).columns().output == {"n_chars": pa.int32()}


# -- columns(): declared by the class, or following the parameters ------------------------------------------------


def test_columns_default_to_the_class_declarations():
    class Adds(curate.Mapper):
        output_columns = {"lang": pa.string()}
        rejected_columns = {"why": pa.string()}
        drop_columns = ("html",)
        input_columns = ("html",)

    assert Adds().columns() == curate.stage.StageColumns(
        {"lang": pa.string()}, {"why": pa.string()}, ("html",), ("html",)
    )


def test_columns_named_in_yaml_come_from_columns_not_from_instance_attributes():
    from curate_filters.quality.score import QualityScore, ScoreThreshold
    from curate_filters.sampling.by_score import ScoreBuckets
    from curate_filters.sampling.sample import Repeat

    stage = QualityScore(model="m.bin", column="edu")
    assert stage.columns().output == {"edu": pa.float32()} and QualityScore.output_columns == {}
    assert ScoreThreshold(column="edu", min_score=0.5).columns().input == ("id", "edu")
    buckets = ScoreBuckets(column="edu", cuts={"en": [0.5]}, bucket_column="b").columns()
    assert buckets.input == ("id", "text", "edu", "language") and buckets.output == {"b": pa.int32()}
    assert Repeat(column="b", times={"1": 2}).columns().output == {"copies": pa.int32()}


def test_no_bundled_stage_writes_its_class_declarations_on_the_instance():
    from curate import config

    names = ("output_columns", "rejected_columns", "drop_columns", "input_columns", "reasons")
    for path in sorted(config.bundled_dir().glob("*.yaml")):
        for spec in config.load(str(path), check_input=False).stages:
            assert not set(names) & set(vars(spec.stage)), (path.name, spec.id)


# -- one build on the driver, none of it shipped -----------------------------------------------------------------


def test_planning_builds_each_stage_once_and_workers_get_no_instance(tmp_path):
    import pickle

    from curate import config
    from curate.engine.plan import rejected_schemas, stage_schemas

    (tmp_path / "counted_stage.py").write_text(
        "import curate\n\nBUILT = []\n\n\nclass Counted(curate.Filter):\n"
        "    def __post_init__(self):\n        BUILT.append(1)\n\n    def reject(self, doc):\n        return None\n"
    )
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "x"}\n')
    (tmp_path / "p.yaml").write_text(
        f"name: t\ninput: {{format: jsonl, path: {tmp_path / 'in.jsonl'}}}\n"
        "stages:\n  - {id: c, uses: 'counted_stage:Counted'}\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        pipeline = config.load(str(tmp_path / "p.yaml"))
        schemas, _ = stage_schemas(pipeline)
        rejected_schemas(pipeline, schemas)
        import counted_stage

        assert counted_stage.BUILT == [1]
        spec = pipeline.stages[0]
        assert spec.stage is spec.stage
        shipped = pickle.loads(pickle.dumps(spec))
        assert "stage" not in vars(shipped) and shipped.build() is not spec.stage
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("counted_stage", None)


# -- preflight(): cheap checks on the driver; setup() only where batches are processed ---------------------------


def test_preflight_runs_the_hook_and_never_setup_on_the_driver():
    from curate.engine.segment import preflight

    calls = []

    class Checked(curate.Filter):
        def preflight(self):
            calls.append("preflight")

        def setup(self):
            calls.append("setup")

    class OldPlugin(curate.Filter):  # setup() and no preflight(): set up once on a throwaway instance, as before
        def setup(self):
            calls.append(("old setup", id(self)))

    gpu = StageSpec("gpu", "gpu", OldPlugin, {}, {"num_gpus": 1.0})
    specs = [
        _spec(Checked, "checked"),
        _spec(OldPlugin, "old"),
        gpu,
        StageSpec("gpu2", "g", Checked, {}, {"num_gpus": 1}),
    ]
    preflight(specs)
    assert calls[0] == "preflight" and calls[2] == "preflight" and len(calls) == 3
    assert calls[1][0] == "old setup" and calls[1][1] != id(specs[1].stage)  # not the planning instance


def test_preflight_errors_name_the_stage_and_keep_the_hint():
    from curate.engine.segment import preflight

    class Needs(curate.Filter):
        def preflight(self):
            raise curate.MissingDependency("somepkg", "extra", what="this stage")

    with pytest.raises(StageError, match="stage 'needs': the package 'somepkg'") as info:
        preflight([_spec(Needs, "needs")])
    assert info.value.hint == "pip install 'curate[extra]'"


def test_builtin_preflights_raise_the_setup_errors_without_loading(tmp_path):
    from curate_filters.annotation.langid import FastTextLangID
    from curate_filters.extraction.fast import FastExtract
    from curate_filters.heuristics.c4 import C4BadWords
    from curate_filters.quality.score import QualityScore

    with pytest.raises(StageError, match="fastText model not found") as info:
        QualityScore(model=str(tmp_path / "nope.bin")).preflight()
    assert "curate classifier train" in info.value.hint
    with pytest.raises(StageError, match="not found"):
        FastTextLangID(model=str(tmp_path / "nope.bin")).preflight()
    with pytest.raises(curate.CurateError, match="not found"):
        FastExtract(model=str(tmp_path / "nope.json")).preflight()
    with pytest.raises(StageError, match="is not a file"):
        C4BadWords(badwords_file=str(tmp_path / "words.txt")).preflight()
    C4BadWords(badwords_file=str(tmp_path / "words.txt"), fail_on_missing_language=False).preflight()
    FastExtract().preflight()


def test_perplexity_preflight_checks_the_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from curate_filters.quality.perplexity import Perplexity

    with pytest.raises(StageError, match="no checkpoint"):
        Perplexity(model=str(tmp_path / "nope"), device="cpu").preflight()


def test_a_missing_word_splitter_package_is_found_by_preflight():
    from curate.text import kiwi_available
    from curate_filters.heuristics.gopher import GopherQuality

    if kiwi_available():
        pytest.skip("kiwipiepy is installed")
    with pytest.raises(curate.MissingDependency, match="kiwipiepy"):
        GopherQuality(language="ko", word_splitter="kiwi").preflight()


# -- reasons: declared for the reader, checked where the engine receives them ------------------------------------


BAD_REASONS = '''
import pyarrow as pa
import curate


@curate.filter
def shouty(doc):
    """Rejects with a reason that is not a name."""
    return "Not Snake Case!" if "1" in doc.text else None


class ShoutyGlobal(curate.GlobalStage):
    def apply_global(self, docs):
        def mark(t):
            return t.append_column("reason", pa.array(["Not Snake Case!"] * t.num_rows, pa.string()))

        return docs.map_batches(mark)
'''


@pytest.mark.parametrize("uses", ["bad_reasons:shouty", "bad_reasons:ShoutyGlobal"])
def test_a_reason_that_is_not_snake_case_stops_the_run(make_workdir, uses):
    from curate import config, engine

    make_workdir(
        files={"bad_reasons.py": BAD_REASONS},
        docs={"in/a.parquet": 20},
        pipeline=f"""
        name: t
        input: {{format: parquet, path: in}}
        output: {{path: out}}
        stages:
          - {{id: loud, uses: "{uses}"}}
        """,
    )
    with pytest.raises(StageError, match="stage 'loud' gave the reason 'Not Snake Case!'"):
        engine.run(config.load("p.yaml"), runner="local")


def test_reasons_are_checked_on_distinct_values():
    from curate.stage import check_reasons, valid_reason

    check_reasons("s", pa.array(["too_short", None, "stage_error:x", "a.b-c"] * 1000, pa.string()))
    with pytest.raises(StageError, match="'Too_short'"):
        check_reasons("s", pa.chunked_array([["ok"], ["Too_short"]]))
    assert valid_reason("top_{n}_gram", template=True) and not valid_reason("top_{n}_gram")
    assert not valid_reason("ends_in_newline\n")


def test_every_builtin_stage_declares_its_reasons():
    from curate.config import registry
    from curate.stage import valid_reason

    rejects_nothing = {"score_buckets", "topic"}  # global stages that only add columns (a bucket, a topic)
    for name in registry.names():
        cls = registry.load(name)
        if not cls.__module__.startswith("curate_filters."):
            continue
        assert "reasons" in {k for klass in cls.__mro__[:-1] for k in vars(klass)}, name
        assert isinstance(cls.reasons, tuple), name
        assert all(isinstance(r, str) and valid_reason(r, template=True) for r in cls.reasons), (name, cls.reasons)
        if (issubclass(cls, curate.Filter) or cls.is_global) and name not in rejects_nothing:
            assert cls.reasons, f"{name} declares no reasons"


def test_curate_stages_lists_the_reasons(capsys):
    import json

    from curate.cli import main

    assert main(["stages", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["score_top"]["reasons"] == ["below_top_cut", "missing_score"]
    assert main(["stages"]) == 0
    assert "    reasons: below_top_cut, missing_score" in capsys.readouterr().out
