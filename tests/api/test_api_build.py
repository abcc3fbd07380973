"""Pipelines built in Python (curate.Pipeline, curate.stages, curate.inputs): validated as YAML is, with the same
messages; constructors whose signatures are what `curate stages` lists; YAML round trips of the bundled pipelines."""

from __future__ import annotations

import contextlib
import inspect
import io
import json

import pytest
import yaml
from helpers import write_docs, write_pipeline

import curate
from curate import config
from curate.cli import _type_str, main
from curate.config import registry
from curate.config.yamlcheck import fields_of


def _cli_json(argv: list[str]) -> object:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def test_every_registered_stage_has_a_constructor_whose_signature_is_what_curate_stages_lists():
    rows = _cli_json(["stages", "--json"])
    assert sorted(r["name"] for r in rows) == registry.names()
    for row in rows:
        fn = getattr(curate.stages, row["name"])
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name not in ("id", "resources", "deadline")]
        assert [p.name for p in params] == [p["name"] for p in row["params"]], row["name"]
        for p, listed in zip(params, row["params"]):
            assert p.kind is inspect.Parameter.KEYWORD_ONLY
            assert _type_str(p.annotation) == listed["type"], (row["name"], p.name)
            if listed["required"]:
                assert p.default is inspect.Parameter.empty, (row["name"], p.name)
            else:
                assert json.loads(json.dumps(p.default, default=repr)) == listed["default"], (row["name"], p.name)
        assert registry.load(row["name"]).summary().split()[0] in fn.__doc__
        assert fn.__name__ == row["name"] and fn.__module__ == "curate.stages"
    assert set(registry.names()) <= set(dir(curate.stages))


def test_input_constructors_come_from_the_reader_registry():
    for fmt in registry.readers():
        fn = getattr(curate.inputs, fmt)
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        assert names[0] == "path" and names[-1] == "name"
        assert set(names[1:-1]) == set(fields_of(registry.load_reader(fmt))) - {"path"}
    with pytest.raises(AttributeError, match="did you mean 'warc'"):
        curate.inputs.wark  # noqa: B018
    with pytest.raises(AttributeError, match="did you mean 'minhash'"):
        curate.stages.minhsah  # noqa: B018


BAD = [
    ("favour_presicion: true", {"favour_presicion": True}),  # an unknown key, with a did-you-mean
    ("timeout: soon", {"timeout": "soon"}),  # a wrong type
    ("favour_precision: true, favour_recall: true", {"favour_precision": True, "favour_recall": True}),  # the stage's
]


@pytest.mark.parametrize("yaml_with, kwargs", BAD)
def test_a_bad_parameter_says_what_the_pipeline_file_says(tmp_path, monkeypatch, yaml_with, kwargs):
    monkeypatch.chdir(tmp_path)
    write_docs(tmp_path / "in.parquet", 5)
    write_pipeline(
        tmp_path / "p.yaml",
        f"""
        name: t
        input: {{format: parquet, path: in.parquet}}
        stages:
          - {{id: extract, uses: trafilatura, with: {{{yaml_with}}}}}
        """,
    )
    with pytest.raises(curate.ConfigError) as from_file:
        config.load("p.yaml")
    with pytest.raises(curate.ConfigError) as from_python:
        curate.stages.trafilatura(id="extract", **kwargs)
    file_prefix, python_prefix = "p.yaml:4: ", "<python>: "
    assert from_file.value.message.startswith(file_prefix)
    assert from_python.value.message.startswith(python_prefix)
    assert from_python.value.message[len(python_prefix) :] == from_file.value.message[len(file_prefix) :]
    assert from_python.value.hint == from_file.value.hint


def test_pipeline_checks_are_the_files_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_docs(tmp_path / "in.parquet", 5)
    inp = curate.inputs.parquet("in.parquet")
    with pytest.raises(curate.ConfigError, match=r"^<python>: stage id 'a' is used twice or reserved$"):
        curate.Pipeline(
            name="t", input=inp, stages=[curate.stages.sample(id="a", rate=0.5), curate.stages.sample(id="a", rate=0.5)]
        )
    with pytest.raises(curate.ConfigError, match=r"<python>: unknown key 'stagse'"):
        curate.Pipeline.from_dict({"name": "t", "input": {"format": "parquet", "path": "in.parquet"}, "stagse": []})
    with pytest.raises(curate.ConfigError, match=r"^<python>: output.shard_rows must be at least 1$"):
        curate.Pipeline(name="t", input=inp, output={"path": "o", "shard_rows": 0})
    with pytest.raises(curate.ConfigError, match=r"unknown stage 'minhsah'") as e:
        curate.stages.use("minhsah")
    assert e.value.hint == "did you mean 'minhash'?"
    with pytest.raises(curate.InputError):
        curate.Pipeline(name="t", input=curate.inputs.parquet("missing/*.parquet"))
    with pytest.raises(curate.ConfigError, match="give a format with the path"):
        curate.Pipeline(name="t", input="in.parquet")
    with pytest.raises(curate.ConfigError, match=r"<python>: input: unknown key 'colums'"):
        curate.inputs.parquet("in.parquet", colums=["id"])


def test_a_python_pipeline_is_the_yaml_pipeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_docs(tmp_path / "in.parquet", 5)
    write_pipeline(
        tmp_path / "p.yaml",
        """
        name: t
        input: {format: parquet, path: in.parquet, batch_rows: 7}
        output: {path: out, shard_rows: 10}
        engine: {progress_seconds: 0}
        stages:
          - {id: gopher_quality, uses: gopher_quality, with: {min_doc_words: 3}}
          - {id: sample, uses: sample, with: {rate: 0.5}}
          - {id: sample_2, uses: sample, with: {rate: 0.5, seed: 3}, deadline: 2}
        """,
    )
    p = curate.Pipeline(
        name="t",
        input=curate.inputs.parquet(tmp_path / "in.parquet", batch_rows=7),
        output={"path": "out", "shard_rows": 10},
        engine={"progress_seconds": 0},
        stages=[
            curate.stages.gopher_quality(min_doc_words=3),
            curate.stages.sample(rate=0.5),
            curate.stages.sample(rate=0.5, seed=3, deadline=2),
        ],
    )
    from_file = config.load("p.yaml")
    assert isinstance(p, config.Pipeline) and p.file == "<python>"
    assert {**p.resolved, "input": None} == {**from_file.resolved, "input": None}
    assert p.resolved["input"]["path"] == str(tmp_path / "in.parquet")
    assert [s.id for s in p.stages] == ["gopher_quality", "sample", "sample_2"]
    # a copy with --set values, validated again; the original is unchanged
    q = p.set("stages.sample.rate=0.25", {"stages.gopher_quality.min_doc_words": 5}, output="out2")
    assert q.resolved["stages"][1]["with"]["rate"] == 0.25 and p.resolved["stages"][1]["with"]["rate"] == 0.5
    assert q.resolved["stages"][0]["with"]["min_doc_words"] == 5
    assert q.output.path == str(tmp_path / "out2")
    with pytest.raises(curate.ConfigError, match="no stage with id 'nope'"):
        p.set("stages.nope.rate=1")
    # a file written back reads as the same pipeline
    p.to_yaml(tmp_path / "back.yaml")
    assert config.load("back.yaml").resolved == p.resolved


CUSTOM = '''
import curate


@curate.filter
def no_lorem(doc, max_hits: int = 0) -> str | None:
    """Reject placeholder text."""
    return "lorem_ipsum" if doc.text.lower().count("lorem ipsum") > max_hits else None
'''


def test_stages_of_your_own_by_class_instance_or_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "api_custom_filters.py").write_text(CUSTOM)
    write_docs(tmp_path / "in.parquet", 5)
    import api_custom_filters as mod

    by_class = curate.stages.use(mod.no_lorem, max_hits=2)
    by_path = curate.stages.use("api_custom_filters:no_lorem", max_hits=2)
    assert (
        by_class.to_dict()
        == by_path.to_dict()
        == {
            "id": "no_lorem",
            "uses": "api_custom_filters:no_lorem",
            "with": {"max_hits": 2},
        }
    )
    p = curate.Pipeline(
        name="t",
        input=curate.inputs.parquet("in.parquet"),
        stages=[by_class, mod.no_lorem(max_hits=2), {"id": "lorem", "uses": "api_custom_filters:no_lorem"}],
    )
    assert [(s.id, s.params) for s in p.stages] == [
        ("no_lorem", {"max_hits": 2}),
        ("no_lorem_2", {"max_hits": 2}),
        ("lorem", {}),
    ]
    # a built-in stage's instance is written with its registered name
    from curate_filters.heuristics.gopher import GopherQuality

    assert curate.stages.use(GopherQuality).uses == "gopher_quality"


@pytest.mark.parametrize("name", config.bundled_names())
def test_bundled_pipelines_round_trip_through_python(name):
    p = curate.Pipeline.from_yaml(name, check_input=False)
    assert isinstance(p, curate.Pipeline)
    again = curate.Pipeline.from_yaml(p.to_yaml(), check_input=False)
    assert again.resolved == p.resolved
    as_dict = yaml.safe_load((config.bundled_dir() / name).read_text())
    assert curate.Pipeline.from_dict(as_dict, check_input=False).resolved == p.resolved
    assert p.set().resolved == p.resolved
    assert curate.Pipeline.from_yaml(p.to_yaml(), check_input=False).to_yaml() == again.to_yaml()


def test_overrides_as_a_mapping_are_the_cli_strings():
    from curate.api.build import override_list

    assert override_list({"stages.lang.languages": ["en", "fr"], "output.path": "o", "x": 0.8}) == [
        'stages.lang.languages=["en", "fr"]',
        'output.path="o"',
        "x=0.8",
    ]
    assert override_list("a=1") == ["a=1"] and override_list(None) == []
