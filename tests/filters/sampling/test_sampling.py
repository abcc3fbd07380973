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


# -- mix by an integer column (the `topic` stage's), "the rest" ("*"), relative rates -------------------------------

TOPIC_MIX = """
name: tmix
input: {format: parquet, path: topics}
output: {path: OUT}
engine: {batch_rows: BATCH}
stages:
  - {id: mix, uses: mix, with: WITH}
"""

# 4,000 documents: topic 0 over-represented (2,000), then 1 (1,000), 2 (600), -1 (300) and null (100)
TOPIC_SIZES = {0: 2000, 1: 1000, 2: 600, -1: 300, None: 100}


@pytest.fixture
def topics(tmp_path, monkeypatch):
    import random

    monkeypatch.chdir(tmp_path)
    rng = random.Random(1)
    values = [t for t, n in TOPIC_SIZES.items() for _ in range(n)]
    rng.shuffle(values)
    ids = [f"t{i:05d}" for i in range(len(values))]
    texts = [" ".join(["w"] * rng.randint(5, 50)) for _ in ids]
    table = pa.table({"id": ids, "text": texts, "topic": pa.array(values, pa.int32())})
    (tmp_path / "topics").mkdir()
    pq.write_table(table.slice(0, 1500), tmp_path / "topics" / "a.parquet")
    pq.write_table(table.slice(1500), tmp_path / "topics" / "b.parquet")
    return tmp_path


def _run_topics(workdir, with_, name, runner="local", batch=128):
    body = TOPIC_MIX.replace("OUT", name).replace("WITH", with_).replace("BATCH", str(batch))
    stats = engine.run(config.load(str(write_pipeline(workdir / f"{name}.yaml", body))), runner=runner)
    table = pq.read_table(workdir / name / "data")
    return {s["id"]: s for s in stats["stages"]}["mix"], table


def _per_topic(table, what="docs"):
    out: dict = {}
    for t, text in zip(table.column("topic").to_pylist(), table.column("text").to_pylist()):
        out[t] = out.get(t, 0) + (1 if what == "docs" else len(text.split()))
    return out


def test_mix_rates_halve_one_topic_and_keep_the_rest(topics):
    from curate_filters.sampling.common import uniform

    mix, table = _run_topics(topics, '{by: topic, rates: {0: 0.5, "*": 1.0}, seed: 3}', "halve")
    docs = _per_topic(table)
    assert abs(docs[0] / 2000 - 0.5) <= 0.03  # 2,000 documents: a hash draw keeps half within 3%
    assert {t: docs[t] for t in (1, 2, -1, None)} == {1: 1000, 2: 600, -1: 300, None: 100}  # "*": null included
    # the known answer: exactly the topic-0 documents whose hash draw of (seed, id) is below the rate
    source = pq.read_table(topics / "topics")
    draw = dict(zip(source.column("id").to_pylist(), uniform(3, source.column("id").to_pylist(), salt="mix:")))
    kept0 = sorted(i for i, t in zip(table.column("id").to_pylist(), table.column("topic").to_pylist()) if t == 0)
    assert kept0 == sorted(
        i
        for i, t in zip(source.column("id").to_pylist(), source.column("topic").to_pylist())
        if t == 0 and draw[i] < 0.5
    )
    assert mix["reasons"] == {"not_selected": 2000 - docs[0]}
    c = mix["counters"]
    assert c["docs:0"] == docs[0] and c["docs:*"] == 2000 and c["tokens:*"] == c["available_tokens:*"]
    assert c["tokens:0"] == _per_topic(table, "words")[0] and c["epochs:*"] == 1.0 and "budget_scale" not in c
    # deterministic: the same documents with other batches, and nested: a lower rate keeps a subset
    _, again = _run_topics(topics, '{by: topic, rates: {0: 0.5, "*": 1.0}, seed: 3}', "halve-again", batch=37)
    assert sorted(again.column("id").to_pylist()) == sorted(table.column("id").to_pylist())
    _, fewer = _run_topics(topics, '{by: topic, rates: {0: 0.2, "*": 1.0}, seed: 3}', "fifth")
    assert set(fewer.column("id").to_pylist()) < set(table.column("id").to_pylist())
    assert abs(_per_topic(fewer)[0] / 2000 - 0.2) <= 0.03


def test_mix_rates_repeat_drop_and_leave_out(topics):
    # 2.5: every document twice, half of them a third time; 0 drops topic 2; -1 and null have no rate and no "*"
    mix, table = _run_topics(topics, "{by: topic, rates: {0: 1, 1: 2.5, 2: 0}}", "rep")
    docs = _per_topic(table)
    assert docs[0] == 2000 and 2000 + 400 <= docs[1] <= 2000 + 600 and 2 not in docs and -1 not in docs
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids) and any(i.endswith("#3") for i in ids) and not any(i.endswith("#4") for i in ids)
    assert mix["reasons"] == {"not_selected": 600, "not_in_mix": 400}
    assert mix["counters"]["epochs:1"] == pytest.approx(2.5, abs=0.1) and mix["counters"]["docs:2"] == 0


def test_mix_integer_weight_keys_and_the_rest(topics):
    # weights keyed by the integer topic (no quotes); "*" is every other topic, null included, as one group
    mix, table = _run_topics(topics, '{by: topic, tokens: 30000, weights: {0: 0.2, 1: 0.3, "*": 0.5}}', "w")
    words = _per_topic(table, "words")
    total = sum(words.values())
    assert abs(total - 30_000) / 30_000 <= 0.02 and mix["counters"]["budget_scale"] == 1.0
    rest = sum(v for t, v in words.items() if t not in (0, 1))
    assert abs(words[0] / total - 0.2) <= 0.02 and abs(words[1] / total - 0.3) <= 0.02
    assert abs(rest / total - 0.5) <= 0.02 and mix["counters"]["tokens:*"] == rest
    assert {-1, 2, None} <= set(words) and "not_in_mix" not in mix["reasons"]
    # without "*" the others are not in the mix, as before
    mix, table = _run_topics(topics, "{by: topic, tokens: 20000, weights: {0: 1, 1: 1}}", "w2")
    assert mix["reasons"]["not_in_mix"] == 1000 and set(table.column("topic").to_pylist()) == {0, 1}


@pytest.mark.ray
def test_mix_rates_same_on_both_runners(topics, ray_session):
    with_ = '{by: topic, rates: {0: 0.5, 1: 1.5, "*": 1.0}}'
    _, local = _run_topics(topics, with_, "r-local")
    _, on_ray = _run_topics(topics, with_, "r-ray", runner="ray")
    assert sorted(local.column("id").to_pylist()) == sorted(on_ray.column("id").to_pylist())


def test_mix_rates_and_keys_config_errors(tmp_path, monkeypatch, capsys):
    from curate.cli import main
    from curate_filters.sampling.budget import Mix

    assert Mix(tokens=10, weights={0: 1.0, "*": 1.0})._share == {"0": 0.5, "*": 0.5}
    assert Mix(rates={0: 0.5, "*": 1})._rate == {"0": 0.5, "*": 1.0}
    cases = [
        ({}, "either weights .with tokens. or rates"),
        ({"tokens": 10, "weights": {"a": 1.0}, "rates": {"a": 1.0}}, "not both"),
        ({"tokens": 10, "rates": {"a": 0.5}}, "no meaning with rates"),
        ({"weights": {"a": 1.0}}, "need a token budget"),
        ({"rates": {"a": 5}}, "between 0 and max_epochs"),
        ({"rates": {"a": -0.5}}, "between 0 and max_epochs"),
        ({"rates": {0: 0.5, "0": 1.0}}, "names '0' twice"),
        ({"rates": {}}, "rates is empty"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            Mix(**kwargs)
        assert err.value.hint, kwargs
    assert Mix(rates={"a": 6}, max_epochs=6)._rate == {"a": 6.0}
    # integer keys pass the YAML type check (they used to fail with "expected a string")
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"id": ["a"], "text": ["x"], "topic": pa.array([0], pa.int32())}), tmp_path / "a.parquet")
    stage = "{id: m, uses: mix, with: {by: topic, tokens: 10, weights: {0: 0.2, 1: 0.8}}}"
    write_pipeline(tmp_path / "p.yaml", f"name: m\ninput: {{format: parquet, path: a.parquet}}\nstages:\n  - {stage}\n")
    assert main(["validate", "p.yaml"]) == 0, capsys.readouterr().err
    write_pipeline(
        tmp_path / "p.yaml",
        "name: m\ninput: {format: parquet, path: a.parquet}\nstages:\n"
        "  - {id: m, uses: mix, with: {by: topic, rates: {0: 0.5}, tokens: 10}}\n",
    )
    assert main(["validate", "p.yaml"]) == 2 and "no meaning with rates" in capsys.readouterr().err
