"""curate.run from Python gives what `curate run` gives: on a path, a bundled name, a mapping and a Pipeline; the same
error messages; twice in one process; on the local runner and on the (shared, embedded) Ray."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import write_pipeline

import curate
from curate.cli import format_stats, main

pytestmark = pytest.mark.e2e

PIPELINE = """
name: sample
input: {format: warc, path: "sample:crawl?pages=120"}
output: {path: out}
engine: {progress_seconds: 0}
stages:
  - {id: url, uses: url_filter}
  - {id: extract, uses: trafilatura, with: {favour_precision: true}}
  - {id: lang, uses: fasttext_langid, with: {languages: [en], language_threshold: 0.65}}
  - {id: gopher_qual, uses: gopher_quality}
  - {id: dedup, uses: exact_dedup}
"""


def _python_pipeline(output: str, threshold: float = 0.65) -> curate.Pipeline:
    """PIPELINE, built in Python."""
    return curate.Pipeline(
        name="sample",
        input=curate.inputs.warc("sample:crawl?pages=120"),
        output=output,
        engine={"progress_seconds": 0},
        stages=[
            curate.stages.url_filter(id="url"),
            curate.stages.trafilatura(id="extract", favour_precision=True),
            curate.stages.fasttext_langid(id="lang", languages=["en"], language_threshold=threshold),
            curate.stages.gopher_quality(id="gopher_qual"),
            curate.stages.exact_dedup(id="dedup"),
        ],
    )


def _outcome(out: Path) -> dict[str, list[str]]:
    """Every document's fate, read from the Parquet files themselves: kept ids, and each stage's rejected ids."""
    found = {"kept": sorted(pq.read_table(out / "data").column("id").to_pylist())}
    for d in sorted((out / "rejected").iterdir()) if (out / "rejected").is_dir() else []:
        found[d.name] = sorted(pq.read_table(d).column("id").to_pylist())
    return found


def _counts(stats: dict) -> list[tuple]:
    return [(s["id"], s["uses"], s["docs_in"], s["kept"], s["rejected"], s["reasons"]) for s in stats["stages"]]


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_pipeline(tmp_path / "p.yaml", PIPELINE)
    return tmp_path


def test_a_path_a_mapping_and_a_pipeline_run_as_curate_run_does(workdir):
    code, printed, _ = _cli("run", "p.yaml", "--runner", "local", "--output", "cli")
    assert code == 0
    expected = _outcome(workdir / "cli")
    assert set(expected) == {"kept", "url", "lang", "gopher_qual", "dedup"}  # every kind of outcome is compared
    cli_stats = curate.open("cli").stats

    by_path = curate.run("p.yaml", output="by-path", runner="local")
    by_dict = curate.run(yaml.safe_load(PIPELINE), output="by-dict", runner="local")
    by_python = curate.run(_python_pipeline("by-python"), runner="local")
    for result, name in ((by_path, "by-path"), (by_dict, "by-dict"), (by_python, "by-python")):
        assert _outcome(workdir / name) == expected, name
        assert _counts(result) == _counts(cli_stats), name
        assert result.output == str(workdir / name) and result.data == str(workdir / name / "data")
        # the result is the dict of stats.json it always was, and prints the CLI's table
        assert result == result.stats == curate.open(name).stats
        assert result["output_docs"] == len(expected["kept"])
        assert str(result) == format_stats(result.stats, result.output)
    head = [line.split()[0] for line in printed.splitlines()[2:-1]]
    assert [r["stage"] for r in by_path.table()] == head == ["url", "extract", "lang", "gopher_qual", "dedup"]


def test_a_bundled_pipeline_by_name_runs_as_curate_run_does(workdir):
    args = ("--input", "sample:crawl?pages=150", "--set", "engine.progress_seconds=0")
    assert _cli("run", "extract", *args, "--output", "cli", "--runner", "local")[0] == 0
    result = curate.run(
        "extract",
        input="sample:crawl?pages=150",
        output="api",
        overrides={"engine.progress_seconds": 0},
        runner="local",
    )
    assert _outcome(workdir / "api") == _outcome(workdir / "cli")
    assert _counts(result) == _counts(curate.open("cli").stats)
    assert result.pipeline.file.endswith("extract.yaml")


def test_a_bad_parameter_raises_what_the_cli_prints(workdir):
    write_pipeline(
        workdir / "bad.yaml",
        """
        name: bad
        input: {format: warc, path: "sample:crawl?pages=10"}
        stages:
          - {id: lang, uses: fasttext_langid, with: {language_treshold: 0.5}}
        """,
    )
    cases = [
        (("bad.yaml",), {}),
        (
            ("p.yaml", "--set", "stages.lang.language_threshold=high"),
            {"overrides": ["stages.lang.language_threshold=high"]},
        ),
        (("p.yaml", "--set", "stages.nope.x=1"), {"overrides": {"stages.nope.x": 1}}),
        (("nope.yaml",), {}),
        (("p.yaml", "--input", "missing/*.warc.gz"), {"input": "missing/*.warc.gz"}),
    ]
    for argv, kwargs in cases:
        code, _, err = _cli("run", *argv, "--runner", "local", "--output", "never")
        assert code == 2, argv
        with pytest.raises(curate.CurateError) as e:
            curate.run(argv[0], output="never", runner="local", **kwargs)
        assert err.strip() == f"error: {e.value.message}" + (f" (hint: {e.value.hint})" if e.value.hint else ""), argv
    with pytest.raises(curate.ConfigError, match=r"^bad.yaml:4: stage 'lang' .*did you mean 'language_threshold'"):
        curate.run("bad.yaml", runner="local")
    with pytest.raises(curate.CurateError, match="unknown runner"):
        curate.run("p.yaml", output="never", runner="spark")
    assert not (workdir / "never").exists() or not (workdir / "never" / "_SUCCESS").exists()


def test_two_runs_in_one_process_and_a_rerun_after_changing_a_threshold(workdir):
    p = _python_pipeline("a")
    first = p.run(runner="local")
    again = curate.run(p, runner="local", overwrite=True)
    assert _counts(again) == _counts(first)
    with pytest.raises(curate.CurateError) as finished:  # as the CLI refuses a finished output without --overwrite
        curate.run(p, runner="local")
    code, _, err = _cli("run", "p.yaml", "--runner", "local", "--output", "a")
    assert code == 2 and err.strip().startswith(f"error: {finished.value.message}")

    stricter = curate.run(p, overrides={"stages.lang.language_threshold": 0.9}, output="b", runner="local")
    lang_a = next(s for s in first["stages"] if s["id"] == "lang")
    lang_b = next(s for s in stricter["stages"] if s["id"] == "lang")
    assert lang_b["rejected"] > lang_a["rejected"] and stricter["output_docs"] < first["output_docs"]
    d = curate.open(first).diff(stricter.output)
    assert d["documents"]["kept_by_b_not_a"] == 0
    assert d["documents"]["kept_by_a_not_b"] == first["output_docs"] - stricter["output_docs"]
    assert {"setting": "stages.lang.with.language_threshold", "a": 0.65, "b": 0.9} in d["pipeline"]
    assert "kept by A, not by B" in str(d)


def test_the_result_shows_as_the_cli_table_in_jupyter_and_rich(workdir):
    result = curate.run(_python_pipeline("a"), runner="local")
    rows = result.table()
    frame = result.to_pandas()
    assert list(frame.index) == [r["stage"] for r in rows]
    assert frame.loc["lang", "rejected"] == next(s["rejected"] for s in result["stages"] if s["id"] == "lang")
    html = result._repr_html_()
    assert all(f"<b>{r['stage']}</b>" in html for r in rows) and "wrong_language" in html
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(result)
    text = console.export_text()
    assert all(r["stage"] in text for r in rows) and result.data in text
    assert result.rejected == {r["stage"]: str(workdir / "a" / "rejected" / r["stage"]) for r in rows if r["rejected"]}
    report = result.report()
    assert Path(report).is_file() and report == str(workdir / "a" / "report.html")


@pytest.mark.ray
def test_on_ray_the_same_output_as_curate_run_and_two_runs_in_one_process(workdir, ray_session):
    assert _cli("run", "p.yaml", "--output", "cli")[0] == 0
    expected = _outcome(workdir / "cli")
    first = curate.run(_python_pipeline("ray-a"), runner="ray")
    assert _outcome(workdir / "ray-a") == expected
    assert first["runner"] == "ray"
    second = curate.run(_python_pipeline("ray-b", threshold=0.9), runner="ray")
    assert second["output_docs"] < first["output_docs"]
    assert ray_session.is_initialized()
