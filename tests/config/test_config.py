"""Pipeline files: each kind of mistake gives exit code 2 and one line naming the file and line or stage."""

from __future__ import annotations

import pytest
from helpers import write_docs, write_pipeline

from curate import config
from curate.cli import main
from curate.errors import ConfigError, InputError

GOOD = """
name: t
input: {format: parquet, path: in.parquet}
output: {path: out, shard_rows: 10}
stages:
  - id: dedup
    uses: exact_dedup
    with:
      normalize: true
"""


@pytest.fixture
def workdir(make_workdir):
    return make_workdir(docs={"in.parquet": 20})


def _cli_error(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_good_pipeline_loads_and_resolves_defaults(workdir):
    p = config.load(str(write_pipeline(workdir / "p.yaml", GOOD)))
    assert p.name == "t" and p.output.shard_rows == 10
    assert [s.id for s in p.stages] == ["dedup"]
    assert p.resolved["stages"][0]["with"] == {"normalize": True}
    assert p.resolved["engine"]["batch_rows"] == 1000


@pytest.mark.parametrize(
    "body, expect",
    [
        ("name: t\ninput: {format: parquet, path: in.parquet\nstages: []\n", r"p\.yaml:\d+: YAML syntax error"),
        (
            GOOD.replace("uses: exact_dedup", "uses: exact_dedupe"),
            r"p\.yaml:6: stage 'dedup': unknown stage 'exact_dedupe'.*did you mean 'exact_dedup'",
        ),
        (
            GOOD.replace("normalize: true", "normalise: true"),
            r"p\.yaml:8: stage 'dedup' \(exact_dedup\): unknown key 'normalise'.*did you mean 'normalize'",
        ),
        (
            GOOD.replace("normalize: true", "normalize: maybe"),
            r"p\.yaml:8: stage 'dedup' \(exact_dedup\): normalize: expected true or false, got str 'maybe'",
        ),
        (
            GOOD.replace("path: in.parquet", "path: missing/*.parquet"),
            r"p\.yaml:2: input glob 'missing/\*\.parquet' matches no files",
        ),
        (
            GOOD.replace("path: in.parquet", "path: nowhere.parquet"),
            r"p\.yaml:2: input path 'nowhere\.parquet' does not exist",
        ),
        (GOOD.replace("shard_rows: 10", "shard_rows: ten"), r"p\.yaml:3: output: shard_rows: expected an integer"),
        (GOOD + "colour: blue\n", r"p\.yaml:9: unknown key 'colour'"),
        (
            GOOD.replace("    uses: exact_dedup\n", "    uses: exact_dedup\n    colour: red\n"),
            r"p\.yaml:7: stage 'dedup': unknown key 'colour'",
        ),
        (
            GOOD.replace("format: parquet", "format: parquett"),
            r"p\.yaml:2: unknown input format 'parquett'.*did you mean 'parquet'",
        ),
    ],
    ids=[
        "yaml-syntax",
        "unknown-stage",
        "unknown-key",
        "wrong-type",
        "empty-glob",
        "missing-input",
        "output-type",
        "top-level-key",
        "stage-key",
        "unknown-format",
    ],
)
def test_bad_pipeline_files_exit_2_with_one_line(workdir, capsys, body, expect):
    import re

    path = write_pipeline(workdir / "p.yaml", body)
    code, err = _cli_error(capsys, "validate", str(path))
    assert code == 2
    assert len([line for line in err if line.startswith("error:")]) == 1
    assert "Traceback" not in "\n".join(err)
    assert re.search(expect, err[0]), err[0]
    # `curate run` reports the same way
    code, err2 = _cli_error(capsys, "run", str(path), "--runner", "local")
    assert code == 2 and err2[0] == err[0]


def test_set_overrides_stage_and_output_values(workdir):
    path = write_pipeline(workdir / "p.yaml", GOOD)
    p = config.load(str(path), ["stages.dedup.normalize=false", "output.shard_rows=3"])
    assert p.stages[0].params == {"normalize": False}
    assert p.output.shard_rows == 3
    with pytest.raises(ConfigError, match="no stage with id 'nope'"):
        config.load(str(path), ["stages.nope.x=1"])
    with pytest.raises(ConfigError, match="normalize: expected true or false"):
        config.load(str(path), ["stages.dedup.normalize=7"])


def test_input_and_output_flags_override_paths(workdir):
    write_docs(workdir / "other" / "a.parquet", 5)
    p = config.load(str(write_pipeline(workdir / "p.yaml", GOOD)), input_path="other", output_path="elsewhere")
    assert p.input.files()[0].endswith("other/a.parquet")
    assert p.output.path == str(workdir / "elsewhere")  # made absolute: Ray workers have another cwd
    (workdir / "empty").mkdir()
    with pytest.raises(InputError, match="holds no files with extension .parquet"):
        config.load(str(workdir / "p.yaml"), input_path="empty")


def test_unknown_pipeline_name_lists_bundled_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _cli_error(capsys, "validate", "no-such-pipeline.yaml")
    assert code == 2 and "no pipeline file 'no-such-pipeline.yaml'" in err[0]


def test_module_path_errors_are_config_errors(workdir):
    body = GOOD.replace("uses: exact_dedup", "uses: 'not_a_module_xyz:thing'").replace("      normalize: true\n", "")
    body = body.replace("    with:\n", "")
    with pytest.raises(ConfigError, match="module 'not_a_module_xyz' not found"):
        config.load(str(write_pipeline(workdir / "p.yaml", body)))
    (workdir / "mymod.py").write_text("x = 1\n")
    body2 = body.replace("not_a_module_xyz:thing", "mymod:x")
    with pytest.raises(ConfigError, match="'mymod:x' is not a stage"):
        config.load(str(write_pipeline(workdir / "p.yaml", body2)))
