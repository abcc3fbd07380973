"""curate.open(OUT): the kept documents and each stage's rejected ones, as the Parquet files hold them, in every form
(pyarrow dataset, Arrow table, pandas, Ray Dataset, Hugging Face datasets); explain and diff as the CLI has them."""

from __future__ import annotations

import contextlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from curate.cli import main

pytestmark = pytest.mark.e2e  # the session's sample runs (conftest.sample_runs) are two local runs of the sample crawl


def _files(out, sub: str) -> pa.Table:
    """The rows of OUT/<sub>'s Parquet files, read directly."""
    return pq.read_table(out / sub)


def _rows(table: pa.Table) -> list[dict]:
    """Rows without the `stage` column, in id order: comparable whatever form they came through."""
    if "stage" in table.column_names:
        table = table.drop_columns(["stage"])
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def _choices(out):
    """(what, the Documents of curate.open, the expected table, its stage) for kept and each rejecting stage."""
    opened = curate.open(out)
    yield "kept", opened.kept(), _files(out, "data"), None
    rejecting = sorted(d.name for d in (out / "rejected").iterdir())
    assert set(rejecting) == {sid for sid, r in opened.reasons().items() if r}
    for sid in rejecting:
        yield sid, opened.rejected(sid), _files(out, f"rejected/{sid}"), sid


def _same(got: pa.Table, expected: pa.Table, stage: str | None, what: str) -> None:
    assert got.num_rows == expected.num_rows, what
    if stage is not None:
        assert set(got.column("stage").to_pylist()) == {stage}, what
    # the union schema of several stages adds null columns; one stage's own columns are exactly its files'
    assert _rows(got.select(expected.column_names)) == _rows(expected), what


def test_kept_and_each_rejected_stage_as_arrow_dataset_and_pandas(sample_runs):
    out = sample_runs["A"]
    for what, docs, expected, stage in _choices(out):
        assert len(docs) == expected.num_rows, what
        _same(docs.dataset().to_table(), expected, stage, what)
        _same(docs.to_arrow(), expected, stage, what)
        _same(pa.Table.from_pandas(docs.to_pandas(n=None), preserve_index=False), expected, stage, what)
        assert len(docs.to_pandas(n=3)) == min(3, expected.num_rows)
        assert [r["id"] for r in docs.head(2)] == expected.column("id").to_pylist()[:2]


def test_rejected_by_reason_and_all_rejected_at_once(sample_runs):
    out = curate.open(sample_runs["A"])
    lang = _files(sample_runs["A"], "rejected/lang")
    wrong = lang.filter(pa.compute.equal(lang.column("reason"), "wrong_language"))
    docs = out.rejected("lang", reason="wrong_language")
    assert 0 < len(docs) == wrong.num_rows < lang.num_rows
    _same(docs.to_arrow(), wrong, "lang", "lang: wrong_language")
    everything = out.rejected().to_arrow()
    assert everything.num_rows == out.stats["rejected_docs"]
    by_stage = {
        sid: n for sid, n in zip(*everything.group_by("stage").aggregate([("id", "count")]).to_pydict().values())
    }
    assert by_stage == {sid: sum(r.values()) for sid, r in out.reasons().items()}
    assert len(out.documents()) == out.stats["input_docs"]
    with pytest.raises(curate.ConfigError, match="no stage 'nope'"):
        out.rejected("nope")
    with pytest.raises(curate.ConfigError, match="was rejected as 'no_such_reason'"):
        out.rejected("lang", reason="no_such_reason")
    with pytest.raises(curate.InputError, match="not a curate output"):
        curate.open(sample_runs["root"])


def test_as_hugging_face_datasets_from_the_local_parquet(sample_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    out = sample_runs["A"]
    for what, docs, expected, stage in _choices(out):
        hf = docs.to_hf(cache_dir=str(tmp_path / "hf"))
        assert isinstance(hf, datasets.Dataset), what
        _same(hf.data.table, expected, stage, what)
    by_reason = curate.open(out).rejected("lang", reason="wrong_language").to_hf()
    assert set(by_reason["reason"]) == {"wrong_language"}


@pytest.mark.ray
def test_as_ray_datasets(sample_runs, ray_session):
    """The kept documents, one stage's rejected ones, and every stage's at once (Ray Data takes seconds a dataset
    here, so not each stage)."""
    out = sample_runs["A"]
    opened = curate.open(out)
    rejected = pq.read_table(out / "rejected", partitioning=None)
    for what, docs, expected, stage in (
        ("kept", opened.kept(), _files(out, "data"), None),
        ("lang", opened.rejected("lang"), _files(out, "rejected/lang"), "lang"),
    ):
        got = pa.concat_tables([ray_session.get(r) for r in docs.to_ray().to_arrow_refs()])
        _same(got, expected, stage, what)
    everything = pa.concat_tables([ray_session.get(r) for r in opened.rejected().to_ray().to_arrow_refs()])
    assert everything.schema == opened.rejected().dataset().schema
    assert sorted(everything.column("id").to_pylist()) == sorted(rejected.column("id").to_pylist())
    by_stage = everything.group_by("stage").aggregate([("id", "count")]).to_pylist()
    assert {r["stage"]: r["id_count"] for r in by_stage} == {s: sum(r.values()) for s, r in opened.reasons().items()}


def _cli_json(*argv: str) -> object:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(list(argv)) == 0
    return json.loads(buf.getvalue())


def test_explain_and_diff_are_the_clis(sample_runs):
    a, b = curate.open(sample_runs["A"]), curate.open(str(sample_runs["B"]))
    for doc in (a.kept().head(1)[0], a.rejected("lang").head(1)[0]):
        expected = _cli_json("explain", str(sample_runs["A"]), doc["id"], "--json")
        assert json.loads(json.dumps(a.explain(doc["id"]), default=str)) == expected
    assert a.explain(doc["id"])["stage"] == "lang"
    d = a.diff(b)
    assert json.loads(json.dumps(d, default=str)) == _cli_json(
        "diff", str(sample_runs["A"]), str(sample_runs["B"]), "--json"
    )
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["diff", str(sample_runs["A"]), str(sample_runs["B"])]) == 0
    assert str(d) == buf.getvalue().rstrip("\n")
    with pytest.raises(curate.InputError, match="in no shard"):
        a.explain("no-such-id")
