"""url_dedup: one document per URL; `keep: longest` (the default) keeps the longest text, `keep: newest` the latest
capture date (LLaMA 3, sec. 3.1.1), with missing dates oldest, then the longest text, then the smallest id."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError, StageError
from curate.stage import KEY_COLUMN
from curate_filters.dedup.exact import UrlDedup


def _decide(stage: UrlDedup, table: pa.Table) -> dict[str, str | None]:
    """id -> reason, as the engine's group step sees it (key, id and the rank columns of one batch)."""
    cols = {KEY_COLUMN: stage.key_batch(table), "id": table.column("id"), **stage.rank_batch(table)}
    reasons = stage.reject_group(pa.table(cols))
    return dict(zip(table.column("id").to_pylist(), reasons))


# one URL in five spellings, then a URL of its own; dates out of order, one missing, one unreadable
ROWS = [
    ("a", "https://example.org/page", "long text of the oldest capture", "2023-01-01T00:00:00Z"),
    ("b", "http://EXAMPLE.org/page/", "newest", "2024-06-01T12:00:00Z"),
    ("c", "https://example.org/page#top", "a middle capture", "2024-06-01T11:59:59.999Z"),
    ("d", "https://example.org/page", "the longest text of all, with no date at all", None),
    ("e", "https://example.org/page", "an unreadable date", "yesterday"),
    ("f", "https://example.org/other", "alone", "2020-01-01T00:00:00Z"),
]


def _table(rows=ROWS) -> pa.Table:
    ids, urls, texts, dates = zip(*rows)
    return pa.table({"id": list(ids), "url": list(urls), "text": list(texts), "date": list(dates)})


def test_newest_keeps_the_latest_capture():
    got = _decide(UrlDedup(keep="newest"), _table())
    assert got == {
        "a": "duplicate_url",
        "b": None,
        "c": "duplicate_url",
        "d": "duplicate_url",
        "e": "duplicate_url",
        "f": None,
    }


def test_longest_is_the_default_and_unchanged():
    assert UrlDedup().keep == "longest"
    got = _decide(UrlDedup(), _table())
    assert [i for i, r in got.items() if r is None] == ["d", "f"]


def test_newest_ties_go_to_the_longest_then_the_smallest_id():
    rows = [
        ("z", "u.org/x", "same date, long", "2024-01-01T00:00:00Z"),
        ("y", "u.org/x", "same date", "2024-01-01T00:00:00+00:00"),  # the same instant written otherwise
        ("q", "u.org/x", "same date, long", "2024-01-01T01:00:00+01:00"),  # also the same instant
        ("m", "u.org/y", "no date", None),
        ("k", "u.org/y", "no date either", None),  # all missing: the longest
        ("p", "u.org/z", "nodate", None),
        ("o", "u.org/z", "nodate", None),  # all missing, same length: the smallest id
    ]
    got = _decide(UrlDedup(keep="newest"), _table(rows))
    assert [i for i, r in got.items() if r is None] == ["q", "k", "o"]


def test_newest_reads_timestamp_and_date_columns():
    ts = [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), None]
    base = {"id": ["a", "b", "c"], "url": ["h/p"] * 3, "text": ["x", "x", "longest of all"]}
    for col in (
        pa.array(ts, pa.timestamp("s")),
        pa.array(ts, pa.timestamp("ms", tz="UTC")),
        pa.array([None if t is None else t.date() for t in ts], pa.date32()),
    ):
        got = _decide(UrlDedup(keep="newest", date_column="seen"), pa.table({**base, "seen": col}))
        assert got == {"a": "duplicate_url", "b": None, "c": "duplicate_url"}
    with pytest.raises(StageError, match="not dates"):
        _decide(UrlDedup(keep="newest", date_column="seen"), pa.table({**base, "seen": [1.0, 2.0, 3.0]}))


def test_newest_reads_its_date_column_and_config_errors():
    assert UrlDedup(keep="newest").columns().input == ("url", "text", "date")
    assert UrlDedup(keep="newest", date_column="fetched").columns().input == ("url", "text", "fetched")
    assert UrlDedup().columns().input == ("url", "text")
    with pytest.raises(ConfigError, match="longest' or 'newest"):
        UrlDedup(keep="latest")


PIPE = """
name: u
input: {format: parquet, path: in}
output: {path: OUT}
engine: {batch_rows: 2}
stages:
  - {id: urls, uses: url_dedup, with: WITH}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    t = _table()
    pq.write_table(t.slice(0, 3), tmp_path / "in" / "a.parquet")
    pq.write_table(t.slice(3), tmp_path / "in" / "b.parquet")
    return tmp_path


def _run(workdir, with_, out, runner="local"):
    body = PIPE.replace("OUT", out).replace("WITH", with_)
    stats = engine.run(config.load(str(write_pipeline(workdir / f"{out}.yaml", body))), runner=runner)
    kept = sorted(pq.read_table(workdir / out / "data").column("id").to_pylist())
    rejected = pq.read_table(workdir / out / "rejected" / "urls")
    return stats, kept, dict(zip(rejected.column("id").to_pylist(), rejected.column("duplicate_of").to_pylist()))


def test_pipeline_keep_newest_and_longest(workdir):
    stats, kept, dup = _run(workdir, "{keep: newest}", "newest")
    assert kept == ["b", "f"] and dup == {"a": "b", "c": "b", "d": "b", "e": "b"}
    assert {s["id"]: s for s in stats["stages"]}["urls"]["reasons"] == {"duplicate_url": 4}
    _, kept, _ = _run(workdir, "{}", "longest")
    assert kept == ["d", "f"]


def test_pipeline_without_the_date_column_is_a_config_error(workdir):
    body = PIPE.replace("OUT", "x").replace("WITH", "{keep: newest, date_column: crawled}")
    with pytest.raises(ConfigError, match="crawled"):
        engine.run(config.load(str(write_pipeline(workdir / "x.yaml", body))), runner="local")


@pytest.mark.ray
def test_newest_same_on_both_runners(workdir, ray_session):
    _, local, local_dup = _run(workdir, "{keep: newest}", "n-local")
    _, on_ray, ray_dup = _run(workdir, "{keep: newest}", "n-ray", runner="ray")
    assert on_ray == local == ["b", "f"] and ray_dup == local_dup


# a real crawl: the Dolma sample WARC holds three captures of https://allenai.org/ (16:27:50, :51 and :54, the
# same extracted text); newest keeps the :54 one, longest (equal lengths) the smallest record id, the :51 one
OLDEST = "<urn:uuid:4E3DEF08-49CD-44B7-8211-7D93270996EE>"
MIDDLE = "<urn:uuid:08C18C73-AB2D-4484-8857-E4BF3557B6F2>"
NEWEST = "<urn:uuid:B2721337-6105-49C6-9BDE-0676EB27B94E>"


@pytest.mark.parametrize("keep, kept", [("newest", NEWEST), ("longest", MIDDLE)])
def test_real_warc_with_three_captures_of_one_url(corpus, tmp_path, monkeypatch, keep, kept):
    monkeypatch.chdir(tmp_path)
    warc = corpus / "warc-dolma-samples" / "sample-0001.warc.gz"
    body = (
        f"name: w\ninput: {{format: warc, path: '{warc}'}}\noutput: {{path: out}}\nstages:\n"
        f"  - {{id: extract, uses: trafilatura}}\n  - {{id: urls, uses: url_dedup, with: {{keep: {keep}}}}}\n"
    )
    stats = engine.run(config.load(str(write_pipeline(tmp_path / "w.yaml", body))), runner="local")
    assert {s["id"]: s for s in stats["stages"]}["urls"]["reasons"] == {"duplicate_url": 2}
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "urls").to_pylist()
    assert sorted(r["id"] for r in rejected) == sorted({OLDEST, MIDDLE, NEWEST} - {kept})
    assert {r["duplicate_of"] for r in rejected} == {kept} and {r["url"] for r in rejected} == {"https://allenai.org/"}
    data = pq.read_table(tmp_path / "out" / "data", columns=["id", "url", "date"]).to_pylist()
    assert [r["id"] for r in data if r["url"] == "https://allenai.org/"] == [kept]
