"""Words and bytes in stats.json: in = kept + rejected per stage, each stage's output is the next one's input,
and every figure equals a count made independently from the files the run wrote (str.split, UTF-8 length)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import USER_FILTERS, parts

from curate import config, engine
from curate.output.measure import doc_sizes, word_counts

EDITING_STAGE = '''
import curate


@curate.mapper
def halve(doc):
    """Keeps the first half of the words of documents about topic 3 (a stage that changes text)."""
    if " topic 3 " in doc.text:
        words = doc.text.split()
        doc.text = " ".join(words[: len(words) // 2])
'''


@pytest.fixture
def workdir(make_workdir):
    return make_workdir(
        files={"size_filters.py": USER_FILTERS + EDITING_STAGE},
        docs=parts(3, 40),
        pipeline="""
        name: sizes
        input: {format: parquet, path: in}
        output: {path: out, shard_rows: 25}
        engine: {batch_rows: 16, progress_seconds: 0}
        stages:
          - {id: lorem, uses: "size_filters:no_lorem"}
          - {id: halve, uses: "size_filters:halve"}
          - {id: gate, uses: "size_filters:TopicGate", with: {banned: [5]}}
          - {id: dedup, uses: exact_dedup}
          - {id: words, uses: "size_filters:count_words"}
        """,
    )


def _words(texts: list[str | None]) -> int:
    return sum(len(t.split()) for t in texts if t)


def _bytes(texts: list[str | None]) -> int:
    return sum(len(t.encode("utf-8")) for t in texts if t)


def _rejected_by_reason(out, stage: str) -> dict[str, list[str]]:
    d = out / "rejected" / stage
    if not d.is_dir():
        return {}
    t = pq.read_table(sorted(d.glob("*.parquet")))
    by: dict[str, list[str]] = {}
    for reason, text in zip(t.column("reason").to_pylist(), t.column("text").to_pylist()):
        by.setdefault(reason, []).append(text)
    return by


def test_sizes_are_conserved_and_match_the_files_written(workdir):
    stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["sizes_conserved"] is True
    stages = {s["id"]: s for s in stats["stages"]}
    entries = stats["stages"]
    for unit in ("words", "bytes"):
        for s in entries:
            assert s[f"{unit}_in"] == s[f"{unit}_kept"] + sum(s[f"{unit}_rejected"].values()), (unit, s["id"])
        for a, b in zip(entries, entries[1:]):
            assert a[f"{unit}_out"] == b[f"{unit}_in"], (unit, a["id"], b["id"])
    # independent counts from the files: the input, what was written, what each stage rejected
    inputs = pq.read_table(sorted((workdir / "in").glob("*.parquet"))).column("text").to_pylist()
    assert stats["input_words"] == stages["input"]["words_in"] == _words(inputs)
    assert stats["input_bytes"] == _bytes(inputs)
    kept = pq.read_table(sorted((workdir / "out" / "data").glob("*.parquet"))).column("text").to_pylist()
    assert stats["output_words"] == entries[-1]["words_out"] == _words(kept)
    assert stats["output_bytes"] == entries[-1]["bytes_out"] == _bytes(kept)
    for sid in ("lorem", "gate", "dedup"):
        by = _rejected_by_reason(workdir / "out", sid)
        assert by, f"stage {sid} rejected nothing: its sizes were not tested"
        assert stages[sid]["words_rejected"] == {r: _words(t) for r, t in by.items()}
        assert stages[sid]["bytes_rejected"] == {r: _bytes(t) for r, t in by.items()}
    # the editing stage: its output is smaller than its kept input, and nothing was rejected there
    halve = stages["halve"]
    assert halve["words_out"] < halve["words_kept"] == halve["words_in"]
    assert stages["dedup"]["words_in"] == stages["gate"]["words_out"]  # across the phase boundary
    on_disk = json.loads((workdir / "out" / "stats.json").read_text())
    assert on_disk["stages"] == stats["stages"]
    assert all(s["ms_per_doc"] >= 0 for s in entries)


def test_doc_sizes_follow_str_split_and_html_before_text():
    texts = ["  two  words ", "", None, "tab\tand\nnewline", "nbsp\u00a0splits", "\u3000", "déjà vu"]
    words, nbytes, tokens = doc_sizes(pa.table({"text": pa.array(texts, pa.string())}))
    assert words.tolist() == [len(t.split()) if t else 0 for t in texts]
    assert nbytes.tolist() == [len(t.encode()) if t else 0 for t in texts]
    assert tokens.tolist() == [0] * len(texts)  # no pipeline tokenizer, no tokens
    html = pa.table({"text": pa.array([None, "ab"], pa.string()), "html": pa.array([b"<p>x</p>", b"<p>ab</p>"])})
    words, nbytes, tokens = doc_sizes(html)
    assert nbytes.tolist() == [8, 2]  # HTML bytes until there is text
    assert words.tolist() == [0, 1]


def test_word_counts_equal_str_split_on_every_kind_of_whitespace():
    import random

    rng = random.Random(0)
    alphabet = [
        " ",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x1c",
        "\x1f",
        "\x85",
        "\xa0",
        "\u1680",
        "\u2003",
        "\u2028",
        "\u202f",
        "\u3000",
        "\u200b",
        "\ufeff",
        "a",
        "é",
        "中",
        "\U0001f600",
        "\x00",
        "\xc2",
    ]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(5000)] + [None, ""]
    expected = [len(t.split()) if t else 0 for t in texts]
    assert word_counts(pa.array(texts, pa.string())).tolist() == expected
    assert word_counts(pa.array(texts, pa.large_string())).tolist() == expected
    sliced = pa.chunked_array([pa.array(texts[:100]), pa.array(texts[100:]).slice(7)])
    assert word_counts(sliced).tolist() == expected[:100] + expected[107:]


def test_a_pipeline_that_opens_with_a_global_stage_has_its_sizes_too(make_workdir, tmp_path):
    make_workdir(
        files={"size_filters.py": USER_FILTERS},
        docs=parts(2, 30),
        pipeline="""
        name: global-first
        input: {format: parquet, path: in}
        output: {path: out}
        engine: {progress_seconds: 0}
        stages:
          - {id: dedup, uses: exact_dedup}
          - {id: lorem, uses: "size_filters:no_lorem"}
        """,
    )
    stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["sizes_conserved"] is True
    inputs = pq.read_table(sorted((tmp_path / "in").glob("*.parquet"))).column("text").to_pylist()
    kept = pq.read_table(sorted((tmp_path / "out" / "data").glob("*.parquet"))).column("text").to_pylist()
    assert stats["input_words"] == _words(inputs) and stats["output_words"] == _words(kept)
    dedup = next(s for s in stats["stages"] if s["id"] == "dedup")
    assert dedup["words_rejected"] == {r: _words(t) for r, t in _rejected_by_reason(tmp_path / "out", "dedup").items()}
