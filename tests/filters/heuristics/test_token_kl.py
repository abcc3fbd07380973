"""The token_kl stage (LLaMA 3's token-distribution KL filter): tokens, hand-computed divergences, smoothing, random
strings against prose, the distribution file's round trip, parameter checks, and pipeline runs (rejected rows keep
their score; any batch size gives the same scores); on real text, Gutenberg paragraphs mixed with junk."""

from __future__ import annotations

import base64
import math
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline
from stage_util import GOOD

from curate import config, engine
from curate.errors import ConfigError, InputError
from curate_filters.heuristics import token_kl as tk
from curate_filters.heuristics.token_kl import TokenKL

STAGE = "curate_filters.heuristics.token_kl:TokenKL"
B = 1 << 20

# -- tokens and the divergence ---------------------------------------------------------------------------------------


def test_tokens_are_lower_cased_runs_of_letters_and_digits():
    assert tk.tokens("Hello, World! snake_case 42x don't Été-là 日本語") == [
        "hello", "world", "snake", "case", "42x", "don", "t", "été", "là", "日本語",
    ]  # fmt: skip
    assert tk.tokens("  ...!!! ") == []


def _no_collisions(words: list[str], buckets: int = B) -> None:
    assert len({tk.token_buckets(w, buckets)[0] for w in words}) == len(words)


def test_kl_of_a_tiny_corpus_by_hand():
    texts = ["a a b", "b c"]
    _no_collisions(["a", "b", "c"])
    # almost no smoothing (1e-12 * 2^20 ~ 1e-6 pseudo-counts): Q = (a 2/5, b 2/5, c 1/5)
    kl = tk.scores(texts, smoothing=1e-12)
    assert kl[0] == pytest.approx(2 / 3 * math.log((2 / 3) / (2 / 5)) + 1 / 3 * math.log((1 / 3) / (2 / 5)), abs=1e-5)
    assert kl[1] == pytest.approx(0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.2), abs=1e-5)
    assert kl[1] == pytest.approx(0.569717, abs=1e-5)
    # alpha = 0.5 on 2^20 buckets: q_b = (C_b + 0.5) / (5 + 0.5 * 2^20)
    z = 5 + 0.5 * B
    kl = tk.scores(texts, smoothing=0.5)
    assert kl[0] == pytest.approx(2 / 3 * math.log((2 / 3) / (2.5 / z)) + 1 / 3 * math.log((1 / 3) / (2.5 / z)))
    assert kl[1] == pytest.approx(0.5 * math.log(0.5 / (2.5 / z)) + 0.5 * math.log(0.5 / (1.5 / z)))
    # one bucket: P = Q, nothing diverges
    assert tk.scores(texts, buckets=1) == [0.0, 0.0]
    # a document that is the corpus has divergence ~0
    assert tk.scores(["x y y z"], smoothing=1e-12) == [pytest.approx(0.0, abs=1e-5)]


def test_smoothing_keeps_unseen_tokens_finite_and_is_stated():
    counts = np.zeros(B, np.int64)
    seen = tk.token_buckets("the cat sat", B)
    np.add.at(counts, seen, [50, 30, 20])  # N = 100
    unseen = tk.token_buckets("zqxj", B)
    assert counts[unseen[0]] == 0
    for alpha in (0.01, 0.5, 1.0):
        logq = tk.log_q(counts, alpha)
        assert np.exp(logq).sum() == pytest.approx(1.0)
        # P = one unseen token: KL = -ln q = ln((N + alpha B) / alpha)
        assert tk.kl_divergence(unseen, logq) == pytest.approx(math.log((100 + alpha * B) / alpha))
        assert tk.kl_divergence(seen[:1], logq) == pytest.approx(-math.log((50 + alpha) / (100 + alpha * B)))
    # more smoothing: an unseen token is less surprising
    assert tk.kl_divergence(unseen, tk.log_q(counts, 1.0)) < tk.kl_divergence(unseen, tk.log_q(counts, 0.01))
    assert tk.kl_divergence(np.zeros(0, np.int64), tk.log_q(counts, 0.5)) is None


def _random_strings(rng: random.Random, n: int = 80) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return " ".join("".join(rng.choice(alphabet) for _ in range(rng.randrange(3, 12))) for _ in range(n))


PROSE = [
    GOOD,
    "The old man walked slowly down the road towards the village, where the children were playing in the square "
    "and the women sat talking at their doors. He had not been there for many years, and he wondered whether any "
    "of them would remember him or the house where he was born.",
    "It was a cold morning in the early spring, and the river was high with the melting snow. The farmers had gone "
    "out to their fields before the sun was up, and by the time the bells rang for church they had finished the "
    "greater part of the day's work.",
]


def test_random_strings_score_far_above_prose():
    rng = random.Random(0)
    junk = [_random_strings(rng), base64.b64encode(rng.randbytes(500)).decode()]
    # a corpus of ~13k tokens: alpha * buckets (0.05 * 2^16 ~ 3k) well below it
    kl = tk.scores(PROSE * 50 + junk, buckets=1 << 16, smoothing=0.05)
    prose, bad = kl[:-2], kl[-2:]
    assert max(prose) < 1.5 and min(bad) > 4.5  # the random strings are 3+ nats above the prose


# -- the distribution file -------------------------------------------------------------------------------------------


def test_sparse_counts_round_trip_through_a_parquet_file(tmp_path):
    rng = np.random.default_rng(0)
    counts = np.zeros(1 << 12, np.int64)
    counts[rng.integers(0, 1 << 12, 300)] = rng.integers(1, 10**9, 300)
    table = tk.sparse_counts(counts)
    assert table.num_rows == np.count_nonzero(counts)
    pq.write_table(table, tmp_path / "q.parquet")
    assert np.array_equal(tk.read_distribution(str(tmp_path / "q.parquet"), 1 << 12), counts)
    with pytest.raises(ConfigError, match="buckets: 4096"):
        tk.read_distribution(str(tmp_path / "q.parquet"), 1 << 13)
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(InputError, match="not a token distribution"):
        tk.read_distribution(str(tmp_path / "other.parquet"), 1 << 12)
    with pytest.raises(InputError):
        tk.read_distribution(str(tmp_path / "absent"), 1 << 12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_kl": -1}, "max_kl must be a number >= 0"),
        ({"max_kl": True}, "max_kl"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"buckets": 0}, "buckets must be an integer"),
        ({"buckets": 1.5}, "buckets must be an integer"),
        ({"smoothing": 0}, "smoothing must be a number > 0"),
        ({"smoothing": float("inf")}, "smoothing"),
        ({"distribution": "a", "write_distribution": "b"}, "not both"),
        ({"distribution": ""}, "distribution must be a path"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        TokenKL(**params)


def test_config_error_names_the_stage(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "in.parquet")
    bad = write_pipeline(
        tmp_path / "bad.yaml",
        f"""
        name: t
        input: {{format: parquet, path: {tmp_path / "in.parquet"}}}
        output: {{path: {tmp_path / "out"}}}
        stages:
          - {{id: kl, uses: "{STAGE}", with: {{smoothing: -1}}}}
        """,
    )
    with pytest.raises(ConfigError, match=r"stage 'kl'.*smoothing"):
        config.load(str(bad))


# -- pipeline runs ---------------------------------------------------------------------------------------------------

PIPE = """
name: token-kl
input: {format: parquet, path: IN}
output: {path: OUT, shard_rows: 97}
engine: {batch_rows: BATCH, shuffle_partitions: 3}
stages:
  - {id: kl, uses: "STAGE", with: WITH}
"""


def _run(tmp_path: Path, rows: list[dict], with_: str, name: str, batch: int = 17, runner: str = "local"):
    src = tmp_path / "in"
    if not src.exists():
        src.mkdir()
        half = len(rows) // 2
        pq.write_table(pa.Table.from_pylist(rows[:half]), src / "a.parquet")
        pq.write_table(pa.Table.from_pylist(rows[half:]), src / "b.parquet")
    body = (
        PIPE.replace("IN", str(src)).replace("OUT", str(tmp_path / name)).replace("STAGE", STAGE)
        .replace("WITH", with_).replace("BATCH", str(batch))
    )  # fmt: skip
    stats = engine.run(config.load(str(write_pipeline(tmp_path / f"{name}.yaml", body))), runner=runner)
    assert stats["conserved"]
    out = tmp_path / name
    kept = {r["id"]: r for r in pq.read_table(out / "data").to_pylist()}
    rej_dir = out / "rejected" / "kl"
    rejected = {r["id"]: r for r in pq.read_table(rej_dir).to_pylist()} if rej_dir.exists() else {}
    counters = next(s for s in stats["stages"] if s["id"] == "kl")["counters"]
    return kept, rejected, counters


def _rows(n_prose: int = 60, n_junk: int = 6, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = re.findall(r"\w+", " ".join(PROSE))
    rows = []
    for i in range(n_prose):
        k = rng.randrange(30, 80)
        start = rng.randrange(len(words) - k)
        rows.append({"id": f"p{i:03d}", "text": " ".join(words[start : start + k])})
    for i in range(n_junk):
        rows.append({"id": f"j{i:03d}", "text": _random_strings(rng, 50)})
    rows.append({"id": "empty", "text": "...!"})
    rows.append({"id": "short", "text": "qzx vvk wpl"})  # junk, but under min_tokens: scored, never rejected
    rng.shuffle(rows)
    return rows


def test_stage_scores_every_row_rejects_outliers_and_ignores_batching(tmp_path):
    rows = _rows()
    kept, rejected, counters = _run(tmp_path, rows, "{max_kl: 5.0, buckets: 65536}", "small", batch=7)
    assert set(rejected) == {f"j{i:03d}" for i in range(6)}
    assert {r["reason"] for r in rejected.values()} == {"token_kl_outlier"}
    assert all(r["token_kl"] > 5.0 for r in rejected.values())  # rejected rows keep their score
    assert kept["empty"]["token_kl"] is None and kept["short"]["token_kl"] > 5.0
    assert all(r["token_kl"] is not None and r["token_kl"] <= 5.0 for i, r in kept.items() if i[0] == "p")
    texts = [r["text"] for r in sorted(rows, key=lambda r: r["id"])]
    want = dict(zip(sorted(r["id"] for r in rows), tk.scores(texts, buckets=65536)))
    got = {i: r["token_kl"] for i, r in {**kept, **rejected}.items()}
    assert got == pytest.approx(want)  # the same as the whole corpus in one batch
    assert counters["corpus_tokens"] == sum(len(tk.tokens(r["text"])) for r in rows)
    large = _run(tmp_path, rows, "{max_kl: 5.0, buckets: 65536}", "large", batch=1000)
    assert {i: r["token_kl"] for i, r in {**large[0], **large[1]}.items()} == got  # bit for bit


def test_a_written_distribution_read_back_gives_the_same_scores(tmp_path):
    rows = _rows(seed=1)
    dist = tmp_path / "dist"
    kept, rejected, _ = _run(tmp_path, rows, f"{{buckets: 4096, write_distribution: {dist}}}", "write")
    assert not rejected  # no max_kl: annotate only
    assert sorted(p.name for p in dist.glob("*.parquet")) and (dist / "_manifest.json").exists()
    counts = tk.read_distribution(str(dist), 4096)
    assert counts.sum() == sum(len(tk.tokens(r["text"])) for r in rows)
    again, _, counters = _run(tmp_path, rows, f"{{buckets: 4096, distribution: {dist}}}", "read")
    assert {i: r["token_kl"] for i, r in again.items()} == {i: r["token_kl"] for i, r in kept.items()}
    assert counters["corpus_tokens"] == counts.sum()
    # a distribution of other buckets is refused
    with pytest.raises(ConfigError, match="buckets: 4096"):
        _run(tmp_path, rows, f"{{buckets: 8192, distribution: {dist}}}", "mismatch")


@pytest.mark.ray
@pytest.mark.e2e
def test_ray_and_local_runners_give_the_same_scores(tmp_path, ray_session):
    rows = _rows(seed=2)
    local = _run(tmp_path, rows, "{max_kl: 5.0, buckets: 65536}", "local")
    ray = _run(tmp_path, rows, "{max_kl: 5.0, buckets: 65536}", "ray", runner="ray")
    assert set(local[1]) == set(ray[1]) and local[1]
    assert {i: r["token_kl"] for i, r in {**local[0], **local[1]}.items()} == {
        i: r["token_kl"] for i, r in {**ray[0], **ray[1]}.items()
    }


# -- real text -------------------------------------------------------------------------------------------------------


def gutenberg_paragraphs(corpus: Path, min_words: int = 40) -> list[tuple[str, str]]:
    """(book, paragraph) for the paragraphs of at least min_words words of the Gutenberg books, whitespace collapsed."""
    out = []
    for book in sorted((corpus / "prose-gutenberg").glob("pg*.txt")):
        text = book.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        for para in re.split(r"\n\s*\n", text):
            para = " ".join(para.split())
            if len(para.split()) >= min_words:
                out.append((book.name, para))
    return out


def junk_documents(n: int, seed: int = 0) -> list[str]:
    """Four kinds of junk: random strings, base64, numbered spam words, hexadecimal numbers."""
    rng = random.Random(seed)
    spam = ["buy", "cheap", "casino", "xxx", "free", "bonus", "win", "pills"]
    kinds = [
        lambda: _random_strings(rng),
        lambda: base64.b64encode(rng.randbytes(600)).decode(),
        lambda: " ".join(f"{rng.choice(spam)}{rng.randrange(1000)}" for _ in range(60)),
        lambda: " ".join(f"{rng.randrange(1 << 24):x}" for _ in range(100)),
    ]
    return [kinds[i % 4]() for i in range(n)]


def study(corpus: Path, n_junk: int = 40) -> list[tuple[float, str, str]]:
    """(token_kl, kind, text) of every Gutenberg paragraph and n_junk junk documents scored together with the stage's
    defaults, highest first: what the report's examples come from."""
    paras = gutenberg_paragraphs(corpus)
    junk = junk_documents(n_junk)
    kl = tk.scores([p for _, p in paras] + junk)
    kinds = [b for b, _ in paras] + ["junk"] * len(junk)
    texts = [p for _, p in paras] + junk
    return sorted(zip(kl, kinds, texts), key=lambda r: -r[0])


@pytest.mark.corpus
def test_junk_mixed_into_gutenberg_scores_above_the_prose(corpus):
    ranked = study(corpus)
    prose = np.array([s for s, kind, _ in ranked if kind != "junk"])
    junk = np.array([s for s, kind, _ in ranked if kind == "junk"])
    assert len(prose) > 3000
    assert junk.min() > np.percentile(prose, 99.5)  # every junk document is above 99.5% of the prose
    assert np.median(junk) - np.median(prose) > 4  # nats
    # a threshold of 7 nats removes all the junk and under 1% of the prose (index pages and tables)
    assert (junk > 7).all() and (prose > 7).mean() < 0.01
