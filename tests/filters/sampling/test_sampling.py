"""sample: a hash of (seed, id) decides, so the kept set is the same on any runner, worker count and batch size."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError
from curate_filters.sampling.sample import Sample

PIPE = """
name: sample
input: {format: parquet, path: in}
output: {path: OUT}
engine: {batch_rows: BATCH, max_workers: WORKERS}
stages:
  - {id: s, uses: sample, with: {rate: 0.3, seed: 17}}
"""

N = 10_000


def _docs(k: int) -> pa.Table:
    ids = [f"doc-{i:06d}" for i in range(k, N, 4)]
    return pa.table({"id": ids, "text": [f"text of {i}" for i in ids]})


@pytest.fixture
def workdir(make_workdir):
    return make_workdir(docs={f"in/p{k}.parquet": _docs(k) for k in range(4)})


def _run(workdir, runner, batch=1000, workers=1, name=None):
    out = name or f"out-{runner}-{batch}-{workers}"
    body = PIPE.replace("OUT", out).replace("BATCH", str(batch)).replace("WORKERS", str(workers))
    pipe = write_pipeline(workdir / f"{out}.yaml", body)
    stats = engine.run(config.load(str(pipe)), runner=runner)
    kept = sorted(pq.read_table(workdir / out / "data").column("id").to_pylist())
    return kept, stats


def test_rate_within_two_percent_and_identical_across_runs(workdir):
    first, stats = _run(workdir, "local", name="a")
    assert abs(len(first) / N - 0.3) <= 0.02
    assert stats["stages"][1]["reasons"] == {"not_sampled": N - len(first)}
    again, _ = _run(workdir, "local", name="b")
    assert again == first
    rebatched, _ = _run(workdir, "local", batch=37, name="c")
    assert rebatched == first


@pytest.mark.ray
def test_identical_on_both_runners_and_worker_counts(workdir, ray_session):
    local, _ = _run(workdir, "local")
    one, _ = _run(workdir, "ray", batch=500, workers=1)
    two, _ = _run(workdir, "ray", batch=128, workers=2)
    assert abs(len(local) / N - 0.3) <= 0.02
    assert one == local and two == local


def test_seed_and_rate():
    table = pa.table({"id": [f"d{i}" for i in range(2000)], "text": ["x"] * 2000})
    a = Sample(rate=0.5, seed=1).apply(table).reasons.to_pylist()
    b = Sample(rate=0.5, seed=2).apply(table).reasons.to_pylist()
    assert a != b
    # a lower rate keeps a subset of what a higher rate keeps (same seed): samples nest
    low = Sample(rate=0.2, seed=1).apply(table).reasons.to_pylist()
    assert all(x is not None for x, y in zip(low, a) if y is not None)
    assert Sample(rate=0.0).apply(table).reasons.null_count == 0
    assert Sample(rate=1.0).apply(table).reasons is None
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Sample(rate=1.5)


# -- several sources, mixtures, budgets, repetition ----------------------------------------------------------------

MIX = """
name: mix
input:
  - {name: web, format: parquet, path: web}
  - {name: books, format: jsonl, path: books.jsonl}
output: {path: OUT, shard_rows: 500}
engine: {batch_rows: 128}
stages:
  - {id: mix, uses: mix, with: {tokens: TOKENS, weights: {web: 0.7, books: 0.3}}}
"""


@pytest.fixture
def two_sources(tmp_path, monkeypatch):
    """web: 3,000 short documents (~150k words) in 3 Parquet files; books: 80 long ones (~28k words) in JSONL."""
    import json
    import random

    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    (tmp_path / "web").mkdir()
    for k in range(3):
        ids = [f"w{i:05d}" for i in range(k, 3000, 3)]
        texts = [" ".join(["web"] * rng.randint(10, 90)) for _ in ids]
        pq.write_table(pa.table({"id": ids, "text": texts}), tmp_path / "web" / f"p{k}.parquet")
    with open(tmp_path / "books.jsonl", "w") as fh:
        for i in range(80):
            fh.write(json.dumps({"id": f"b{i:03d}", "text": " ".join(["book"] * rng.randint(150, 550))}) + "\n")
    return tmp_path


def _run_mix(workdir, tokens, runner="local", name="out"):
    pipe = write_pipeline(workdir / f"{name}.yaml", MIX.replace("OUT", name).replace("TOKENS", str(tokens)))
    stats = engine.run(config.load(str(pipe)), runner=runner)
    table = pq.read_table(workdir / name / "data")
    words = {"web": 0, "books": 0}
    for src, text in zip(table.column("source").to_pylist(), table.column("text").to_pylist()):
        words[src] += len(text.split())
    return stats, table, words


def _sources_words(workdir):
    web = sum(len(t.split()) for t in pq.read_table(workdir / "web").column("text").to_pylist())
    books = sum(len(__import__("json").loads(line)["text"].split()) for line in open(workdir / "books.jsonl"))
    return web, books


def test_two_sources_carry_their_name(two_sources):
    pipe = write_pipeline(
        two_sources / "s.yaml",
        MIX.replace("OUT", "plain").replace(
            "  - {id: mix, uses: mix, with: {tokens: TOKENS, weights: {web: 0.7, books: 0.3}}}",
            "  - {id: s, uses: sample, with: {rate: 1.0}}",
        ),
    )
    pipeline = config.load(str(pipe))
    assert [u.key.split(":")[0] for u in pipeline.input.units()].count("books") == 1
    assert pipeline.resolved["input"][0]["name"] == "web" and pipeline.resolved["input"][1]["format"] == "jsonl"
    stats = engine.run(pipeline, runner="local")
    table = pq.read_table(two_sources / "plain" / "data")
    assert stats["input_docs"] == 3080 and stats["input_units"] == 4
    assert sorted(set(table.column("source").to_pylist())) == ["books", "web"]
    assert table.filter(pa.compute.equal(table.column("source"), "books")).num_rows == 80


def test_mix_honours_weights_by_sampling(two_sources):
    web, books = _sources_words(two_sources)
    stats, table, words = _run_mix(two_sources, 40_000)  # both sources have more than their share
    total = words["web"] + words["books"]
    assert abs(words["web"] / total - 0.7) <= 0.02 and abs(total - 40_000) / 40_000 <= 0.02
    assert stats["copies"] == 0 and table.num_rows == stats["output_docs"]
    counters = {s["id"]: s for s in stats["stages"]}["mix"]["counters"]
    assert counters["tokens:web"] == words["web"] and counters["tokens:books"] == words["books"]
    assert counters["available_tokens:web"] == web and counters["budget_scale"] == 1.0


def test_mix_repeats_the_small_source_up_to_the_epoch_cap(two_sources):
    web, books = _sources_words(two_sources)
    # 0.3 of 200k words is 60k of books: more than 2 epochs of the 28k there are, within the cap of 4
    stats, table, words = _run_mix(two_sources, 200_000, name="two-epochs")
    total = words["web"] + words["books"]
    assert abs(words["books"] / total - 0.3) <= 0.02 and abs(total - 200_000) / 200_000 <= 0.02
    counters = {s["id"]: s for s in stats["stages"]}["mix"]["counters"]
    assert 2 < counters["epochs:books"] < 3 and counters["epochs:web"] == pytest.approx(words["web"] / web)
    assert stats["copies"] > 0 and table.num_rows == stats["output_docs"] + stats["copies"]
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids)  # copies carry derived ids: <id>#2, <id>#3 ...
    assert any(i.endswith("#3") for i in ids) and not any(i.endswith("#4") for i in ids if i.startswith("b"))
    assert stats["input_docs"] == stats["output_docs"] + stats["rejected_docs"]  # copies are not documents

    # 0.3 of 1M words would be 300k of books, 10.6 epochs: the budget shrinks until books sit at the cap
    stats, table, words = _run_mix(two_sources, 1_000_000, name="capped")
    counters = {s["id"]: s for s in stats["stages"]}["mix"]["counters"]
    assert counters["epochs:books"] == pytest.approx(4.0, abs=0.01) and counters["budget_scale"] < 0.5
    assert words["books"] == pytest.approx(4 * books, rel=0.01)
    total = words["web"] + words["books"]
    assert abs(words["books"] / total - 0.3) <= 0.02  # the weights still hold
    assert max(int(i.rsplit("#", 1)[1]) for i in table.column("id").to_pylist() if "#" in i and i[0] == "b") <= 4


@pytest.mark.ray
def test_mix_same_on_both_runners(two_sources, ray_session):
    _, local, _ = _run_mix(two_sources, 200_000, "local", name="mix-local")
    _, on_ray, _ = _run_mix(two_sources, 200_000, "ray", name="mix-ray")
    assert sorted(local.column("id").to_pylist()) == sorted(on_ray.column("id").to_pylist())


def test_token_budget(two_sources):
    body = MIX.replace("OUT", "budget").replace(
        "  - {id: mix, uses: mix, with: {tokens: TOKENS, weights: {web: 0.7, books: 0.3}}}",
        "  - {id: b, uses: token_budget, with: {tokens: 2.5e4}}",
    )
    stats = engine.run(config.load(str(write_pipeline(two_sources / "b.yaml", body))), runner="local")
    table = pq.read_table(two_sources / "budget" / "data")
    words = sum(len(t.split()) for t in table.column("text").to_pylist())
    assert 25_000 - 600 < words <= 25_000  # at most the budget, short of it by less than one document
    counters = {s["id"]: s for s in stats["stages"]}["b"]["counters"]
    assert counters["kept_tokens"] == words and counters["kept_docs"] == table.num_rows
    assert {s["id"]: s for s in stats["stages"]}["b"]["reasons"] == {"over_token_budget": 3080 - table.num_rows}


def test_repeat_writes_copies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    buckets = ["high", "mid", "low", None]
    rows = [{"id": f"d{i}", "text": f"document {i}", "bucket": buckets[i % 4]} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "a.parquet")
    write_pipeline(
        tmp_path / "p.yaml",
        """
        name: rep
        input: {format: parquet, path: in}
        output: {path: out, shard_rows: 7}
        stages:
          - {id: rep, uses: repeat, with: {column: bucket, times: {high: 3, mid: 2}}}
          - {id: s, uses: sample, with: {rate: 0.5}}
        """,
    )
    stats = engine.run(config.load("p.yaml"), runner="local")
    table = pq.read_table(tmp_path / "out" / "data")
    kept = [r for r in rows if r["id"] in set(table.column("id").to_pylist())]
    expected = sum({"high": 3, "mid": 2}.get(r["bucket"], 1) for r in kept)
    assert table.num_rows == expected and stats["copies"] == expected - len(kept) > 0
    assert stats["output_docs"] == len(kept) and stats["input_docs"] == 40
    assert {s["id"]: s for s in stats["stages"]}["rep"]["counters"]["copies"] == 2 * 10 + 1 * 10  # before the sample
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) and all(i.split("#")[0] in {r["id"] for r in kept} for i in ids)
    from curate.cli import main

    assert main(["verify", str(tmp_path / "out")]) == 0  # the copies' shards are listed and counted apart


def test_multi_source_config_errors(tmp_path, monkeypatch, capsys):
    from curate.cli import main

    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "a.parquet")
    cases = {
        "[{format: parquet, path: a.parquet}]": "needs a 'name'",
        "[{name: a, format: parquet, path: a.parquet}, {name: a, format: parquet, path: a.parquet}]": "used twice",
        "[{name: a, format: parqet, path: a.parquet}]": "did you mean 'parquet'",
        "[{name: a, format: parquet, path: a.parquet, colums: {}}]": "did you mean 'columns'",
        "[{name: a, format: parquet, path: nope.parquet}]": "does not exist",
    }
    for inp, expected in cases.items():
        write_pipeline(tmp_path / "p.yaml", f"name: m\ninput: {inp}\nstages: []\n")
        assert main(["validate", "p.yaml"]) == 2, inp
        err = capsys.readouterr().err
        assert expected in err and "p.yaml:" in err, (inp, err)
    write_pipeline(tmp_path / "p.yaml", "name: m\ninput: [{name: a, format: parquet, path: a.parquet}]\nstages: []\n")
    assert main(["validate", "p.yaml", "--input", "b.parquet"]) == 2
    assert "several input sources" in capsys.readouterr().err


def test_mix_config_errors():
    from curate_filters.sampling.budget import Mix, TokenBudget
    from curate_filters.sampling.sample import Repeat

    with pytest.raises(ConfigError, match="must be a number"):
        Mix(tokens="lots", weights={"a": 1.0})
    with pytest.raises(ConfigError, match="positive sum"):
        Mix(tokens=10, weights={"a": 0.0})
    with pytest.raises(ConfigError, match="at least 1"):
        Repeat(times={"a": 0})
    assert TokenBudget(tokens="2e9")._budget == 2e9  # YAML reads 2e9 as a string


def test_mix_counts_earlier_copies(two_sources):
    _, books = _sources_words(two_sources)
    body = MIX.replace("OUT", "rep-mix").replace("TOKENS", "200000")
    body = body.replace("stages:\n", "stages:\n  - {id: up, uses: repeat, with: {column: source, times: {books: 2}}}\n")
    stats = engine.run(config.load(str(write_pipeline(two_sources / "rm.yaml", body))), runner="local")
    counters = {s["id"]: s for s in stats["stages"]}["mix"]["counters"]
    assert counters["available_tokens:books"] == 2 * books  # each book counts twice
    table = pq.read_table(two_sources / "rep-mix" / "data")
    words = {"web": 0, "books": 0}
    for src, text in zip(table.column("source").to_pylist(), table.column("text").to_pylist()):
        words[src] += len(text.split())
    assert words["books"] == counters["tokens:books"] and abs(words["books"] / sum(words.values()) - 0.3) <= 0.02
