"""The line_dedup stage: the normal form of a unit, splitting and rejoining, the decisions of each policy, parameter
checks, and the stage on real text against a brute-force reference (plain Python Counter over normalised units) on
the local runner, at two batch sizes, and on Ray."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError
from curate_filters.dedup import lines
from curate_filters.dedup.lines import LineDedup, join_kept, normalize_unit, normalized_units, split_units

STAGE = "line_dedup"

# -- the normal form -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Hello, World!", "hello world"),
        ("  Copyright © 2019 ACME Inc.  All rights reserved.  ", "copyright 0000 acme inc all rights reserved"),
        ("Été à Zürich — naïve café", "ete a zurich naive cafe"),
        ("Ｆｕｌｌ－ｗｉｄｔｈ １２３", "fullwidth 000"),  # NFKD folds compatibility forms
        ("snake_case\tand\x0bTABS", "snakecase and tabs"),
        ("٣ Arabic-Indic digit, ₂ subscript", "0 arabicindic digit 0 subscript"),
        ("日本語の文章です。", "日本語の文章です"),  # the voicing mark is no accent
        ("हिन्दी भाषा!", "हिन्दी भाषा"),  # nor are vowel signs
        ("...!!!", ""),
    ],
)
def test_normal_form(raw, norm):
    assert normalize_unit(raw) == norm


def test_line_normal_forms_in_one_pass_equal_each_line_alone():
    rng = random.Random(3)
    alphabet = "aZé\u0301ﬁ１٣ _-—,.!?\t\r\x0b\x0c\x1c\u2028\u00a0\u3000日ß\n"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        assert normalized_units(text, "line") == [normalize_unit(u) for u in text.split("\n")]
        assert normalized_units(text, "paragraph") == [normalize_unit(u) for u in split_units(text, "paragraph")[0]]


def test_units_split_and_rejoin_exactly():
    text = "Title\r\n\r\nfirst para\nstill first\n\n \t\nsecond\n\n\n\nthird\n"
    units, seps = split_units(text, "paragraph")
    assert units == ["Title\r", "first para\nstill first", "second", "third\n"]
    assert join_kept(units, seps, set()) == text
    assert join_kept(units, seps, {1}) == "Title\r\n\n \t\nsecond\n\n\n\nthird\n"  # the separator before 'second'
    assert join_kept(units, seps, {0}) == "first para\nstill first\n\n \t\nsecond\n\n\n\nthird\n"
    assert join_kept(units, seps, {0, 1, 2, 3}) == ""
    units, seps = split_units("a\nb\n\nc", "line")
    assert units == ["a", "b", "", "c"] and join_kept(units, seps, {1}) == "a\n\nc"
    rng = random.Random(0)
    for _ in range(200):
        text = "".join(rng.choice("ab \n\t") for _ in range(rng.randrange(0, 40)))
        for unit in ("line", "paragraph"):
            units, seps = split_units(text, unit)
            assert join_kept(units, seps, set()) == text
            cut = {i for i in range(len(units)) if rng.random() < 0.3}
            kept = [u for i, u in enumerate(units) if i not in cut]
            if unit == "line":
                assert join_kept(units, seps, cut) == "\n".join(kept)
            else:
                assert [u for u in split_units(join_kept(units, seps, cut), unit)[0] if u] == [u for u in kept if u]


# -- the decisions ---------------------------------------------------------------------------------------------------


def _unit_rows(rows: list[tuple[int, int, str, int]]) -> pa.Table:
    b, h, i, p = zip(*rows)
    return pa.Table.from_arrays(
        [
            pa.array(b, pa.int32()),
            pa.array(h, pa.int64()),
            pa.array(i),
            pa.array(p, pa.int32()),
            pa.array([5] * len(b), pa.int32()),
        ],
        schema=lines.UNITS,
    )


def _removed(table: pa.Table) -> set[tuple[str, int]]:
    return set(zip(table.column("id").to_pylist(), table.column("pos").to_pylist()))


def test_max_count_removes_every_copy_of_units_seen_more_than_k_times():
    six = [(0, 1, f"d{k}", 0) for k in range(6)]
    seven = [(0, 2, f"d{k}", 1) for k in range(7)]
    # seven copies of hash 3 but in two buckets (4 + 3): kept in both
    split = [(k % 2, 3, f"e{k}", 0) for k in range(7)]
    # copies inside one document count too
    inside = [(0, 4, "f", p) for p in range(7)]
    removed = _removed(lines.Decide(6)(_unit_rows(six + seven + split + inside)))
    assert removed == {(f"d{k}", 1) for k in range(7)} | {("f", p) for p in range(7)}
    assert _removed(lines.Decide(1)(_unit_rows(six))) == {(f"d{k}", 0) for k in range(6)}


def test_keep_first_keeps_the_smallest_id_then_position():
    rows = [(0, 9, "b", 0), (0, 9, "a", 5), (0, 9, "a", 2), (0, 9, "c", 1), (1, 9, "z", 0), (0, 8, "q", 0)]
    assert _removed(lines.Decide(None)(_unit_rows(rows))) == {("b", 0), ("a", 5), ("c", 1)}


def test_decisions_do_not_depend_on_how_groups_share_calls():
    rng = random.Random(1)
    rows = [(rng.randrange(2), rng.randrange(20), f"d{rng.randrange(30)}", rng.randrange(50)) for _ in range(2000)]
    rows = list({(b, h, i, p): None for b, h, i, p in rows})  # a (document, position) is one unit
    for max_count in (None, 3):
        whole = _removed(lines.Decide(max_count)(_unit_rows(rows)))
        groups: dict[tuple[int, int], list] = {}
        for r in rows:
            groups.setdefault((r[0], r[1]), []).append(r)
        keys = list(groups)
        rng.shuffle(keys)
        pieces: set[tuple[str, int]] = set()
        for start in range(0, len(keys), 7):
            part = [r for k in keys[start : start + 7] for r in groups[k]]
            rng.shuffle(part)
            pieces |= _removed(lines.Decide(max_count)(_unit_rows(part)))
        assert pieces == whole and whole


def test_rewrite_cuts_units_and_rejects_what_is_left_too_short():
    body = pa.table(
        {
            "id": ["a", "b", "c"],
            "text": ["keep this line\ncut this one\nand this stays too", "x" * 60 + "\nshort", "untouched"],
            lines.CUT: pa.array([[1], [0], None], pa.list_(pa.int32())),
        }
    )
    out = lines.Rewrite("line", 10)(body)
    assert out.column_names == ["id", "text", "reason"]
    assert out.column("text").to_pylist() == [
        "keep this line\nand this stays too",
        body["text"][1].as_py(),
        "untouched",
    ]
    assert out.column("reason").to_pylist() == [None, "too_little_left", None]  # b keeps its text as it came


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_count": 6, "keep": "first"}, "not both"),
        ({"max_count": 0}, "at least 1"),
        ({"keep": "last"}, "keep must be first"),
        ({"unit": "sentence"}, "line or paragraph"),
        ({"min_length": -1}, "min_length"),
        ({"bucket_docs": 0}, "bucket_docs"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        LineDedup(**params)


def test_the_policy_in_force():
    assert LineDedup().threshold == 6  # LLaMA 3
    assert LineDedup(max_count=2).threshold == 2
    assert LineDedup(keep="first").threshold is None


def test_config_error_names_the_stage(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "in.parquet")
    bad = write_pipeline(
        tmp_path / "bad.yaml",
        f"""
        name: t
        input: {{format: parquet, path: {tmp_path / "in.parquet"}}}
        output: {{path: {tmp_path / "out"}}}
        stages:
          - {{id: lines, uses: "{STAGE}", with: {{max_count: 3, keep: first}}}}
        """,
    )
    with pytest.raises(ConfigError, match=r"stage 'lines'.*not both"):
        config.load(str(bad))


# -- the stage on real text against a brute-force reference ---------------------------------------------------------

PLANTED = [
    "Click here to subscribe to our newsletter and never miss an update.",
    "All rights reserved. No part of this site may be reproduced.",
    "Posted in Uncategorized | Leave a comment",
    "Share this article on Facebook, Twitter and by e-mail",
    "This page was last edited on 12 March 2019, at 10:42.",
    "Terms of Service - Privacy Policy - Contact us",
    "Read more stories like this one in our weekly digest",
    "The views expressed here are those of the author alone.",
]


def _variant(rng: random.Random, line: str) -> str:
    """A copy of a planted line that differs in case, punctuation, digits or spacing, and normalises the same."""
    choice = rng.randrange(5)
    if choice == 0:
        return line.upper()
    if choice == 1:
        return "  " + line.replace(" ", "   ") + " "
    if choice == 2:
        return re.sub(r"\d", lambda m: str((int(m.group()) + 3) % 10), line) + "!!"
    if choice == 3:
        return line.replace(",", "").replace(".", "")
    return line


def _corpus_docs(corpus: Path, n_docs: int, seed: int) -> tuple[list[dict], dict[str, int]]:
    """n_docs documents of consecutive Gutenberg lines, with planted lines repeated 1-12 times across (and inside)
    documents, a planted short line, and documents made only of planted lines; returns rows and planted counts."""
    rng = random.Random(seed)
    text_lines: list[str] = []
    for book in sorted((corpus / "prose-gutenberg").glob("pg*.txt"))[:3]:
        text = book.read_text(encoding="utf-8", errors="replace")
        text_lines += text.split("\n")[200:1200]
    docs: list[list[str]] = []
    at = 0
    for _ in range(n_docs):
        k = rng.randrange(3, 25)
        docs.append(text_lines[at : at + k])
        at = (at + k) % (len(text_lines) - 30)
    planted: dict[str, int] = {}
    for j, line in enumerate(PLANTED * 3):
        copies = rng.randrange(1, 13)
        line = f"{line} ({j})"  # 24 distinct lines
        planted[line] = copies
        for _ in range(copies):
            d = docs[rng.randrange(n_docs)]
            d.insert(rng.randrange(len(d) + 1), _variant(rng, line))
    for _ in range(20):  # short: never counted, never removed
        d = docs[rng.randrange(n_docs)]
        d.insert(rng.randrange(len(d) + 1), "Reply")
    for i in range(3):  # nothing but boilerplate: left empty
        docs.append([f"Terms of Service - Privacy Policy - Contact us (8{i})"] * 7)
    rows = [{"id": f"g{i:04d}", "text": "\n".join(d)} for i, d in enumerate(docs)]
    rng.shuffle(rows)
    return rows, planted


def _reference(
    rows: list[dict], unit: str, max_count: int | None, min_length: int = 10, min_chars: int = 50, buckets: int = 1
) -> tuple[dict[str, str], set[str], int, int]:
    """Brute force: count normalised units (the strings, not hashes) per bucket, then cut and decide each document.
    Returns the kept documents' texts, the rejected ids, the number of units and of their characters removed."""
    count: Counter[tuple[int, str]] = Counter()
    first: dict[tuple[int, str], tuple[str, int]] = {}
    split = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        b = lines.bucket_of(r["id"], buckets)
        units = r["text"].split("\n") if unit == "line" else split_units(r["text"], unit)[0]
        norms = [normalize_unit(u) for u in units]
        split[r["id"]] = (b, units, norms)
        for pos, n in enumerate(norms):
            if len(n) >= min_length:
                count[(b, n)] += 1
                first.setdefault((b, n), (r["id"], pos))
    kept: dict[str, str] = {}
    rejected: set[str] = set()
    removed = chars = 0
    for r in rows:
        b, units, norms = split[r["id"]]
        cut = set()
        for pos, n in enumerate(norms):
            if len(n) < min_length:
                continue
            if (count[(b, n)] > max_count) if max_count is not None else first[(b, n)] != (r["id"], pos):
                cut.add(pos)
        removed += len(cut)
        chars += sum(len(units[pos]) for pos in cut)
        if unit == "line":
            left = "\n".join(u for pos, u in enumerate(units) if pos not in cut)
        else:
            left = join_kept(*split_units(r["text"], unit), cut)
        if cut and len(re.sub(r"\s", "", left)) < min_chars:
            rejected.add(r["id"])
        else:
            kept[r["id"]] = left
    return kept, rejected, removed, chars


PIPE = """
name: line-dedup
input: {format: parquet, path: IN}
output: {path: OUT, shard_rows: 97}
engine: {batch_rows: BATCH, shuffle_partitions: 3}
stages:
  - {id: lines, uses: "STAGE", with: WITH}
"""


def _run(tmp_path: Path, rows: list[dict], with_: str, name: str, runner: str = "local", batch: int = 17):
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
    kept = {r["id"]: r["text"] for r in pq.read_table(out / "data").to_pylist()}
    rej_dir = out / "rejected" / "lines"
    rejected = pq.read_table(rej_dir).to_pylist() if rej_dir.exists() else []
    counters = next(s for s in stats["stages"] if s["id"] == "lines")["counters"]
    return kept, rejected, counters


@pytest.mark.parametrize(
    ("unit", "with_", "max_count"),
    [
        ("line", "{max_count: 6}", 6),
        ("line", "{keep: first}", None),
        ("paragraph", "{unit: paragraph, max_count: 2}", 2),
    ],
)
def test_stage_equals_the_brute_force_reference_on_real_text(corpus, tmp_path, unit, with_, max_count):
    rows, planted = _corpus_docs(corpus, 300, seed=7)
    if unit == "paragraph":  # paragraphs of 1-3 lines; planted lines become paragraphs of their own
        rows = [{"id": r["id"], "text": re.sub(r"\n(?=[^\n]*\n[^\n]*\n)", "\n\n", r["text"], count=4)} for r in rows]
    kept, rejected, counters = _run(tmp_path, rows, with_, "out")
    want_kept, want_rejected, want_removed, want_chars = _reference(rows, unit, max_count)
    missed = sum(1 for i, t in want_kept.items() if kept.get(i) != t)
    assert (missed, set(kept) - set(want_kept)) == (0, set())
    assert {r["id"] for r in rejected} == want_rejected
    assert {r["reason"] for r in rejected} <= {"too_little_left"}
    by_id = {r["id"]: r["text"] for r in rows}
    assert all(r["text"] == by_id[r["id"]] for r in rejected)  # a rejected document keeps its text as it came
    assert counters["units_removed"] == want_removed > 0
    assert counters["chars_removed"] == want_chars > 0
    assert counters["documents_cut"] == sum(1 for i, t in want_kept.items() if t != by_id[i]) + len(want_rejected)
    if unit == "line":
        # the planted lines: every copy of one seen more than k times is gone, the others are all there
        for line, copies in planted.items():
            norm = normalize_unit(line)
            left = sum(1 for t in kept.values() for u in t.split("\n") if normalize_unit(u) == norm)
            if max_count is None:
                assert left <= 1
            elif copies > max_count:
                assert left == 0
        # the lines cut from each kept document stay beside it (line_dedup_cut), for `curate explain`
        cuts = {r["id"]: r["line_dedup_cut"] for r in pq.read_table(tmp_path / "out" / "data").to_pylist()}
        for i, t in kept.items():
            assert Counter(cuts[i] or []) == Counter(by_id[i].split("\n")) - Counter(t.split("\n"))
        assert sum(len(c or []) for c in cuts.values()) > 0
        replies = sum(u == "Reply" for i in kept for u in by_id[i].split("\n"))  # short: never removed
        assert replies and sum(u == "Reply" for t in kept.values() for u in t.split("\n")) == replies


def test_buckets_count_separately_and_any_batch_size_gives_the_same_output(corpus, tmp_path):
    rows, _ = _corpus_docs(corpus, 200, seed=11)
    buckets = -(-len(rows) // 60)
    want_kept, want_rejected, _, _ = _reference(rows, "line", 3, buckets=buckets)
    first = _run(tmp_path, rows, "{max_count: 3, bucket_docs: 60}", "small", batch=13)
    second = _run(tmp_path, rows, "{max_count: 3, bucket_docs: 60}", "large", batch=1000)
    assert first[0] == second[0] == want_kept
    assert {r["id"] for r in first[1]} == {r["id"] for r in second[1]} == want_rejected
    assert first[2] == second[2] and first[2]["buckets"] == buckets
    # one bucket would remove more: the planted lines' copies are split between buckets
    assert _reference(rows, "line", 3)[2] > _reference(rows, "line", 3, buckets=buckets)[2]


@pytest.mark.ray
@pytest.mark.e2e
def test_ray_and_local_runners_write_the_same_output(corpus, tmp_path, ray_session, monkeypatch):
    from curate.engine import ray_docs

    monkeypatch.setattr(ray_docs, "SMALL_GROUP_BYTES", 0)  # every group_by a hash shuffle over 3 partitions
    rows, _ = _corpus_docs(corpus, 200, seed=5)
    local = _run(tmp_path, rows, "{max_count: 2, bucket_docs: 80}", "local")
    ray = _run(tmp_path, rows, "{max_count: 2, bucket_docs: 80}", "ray", runner="ray")
    want_kept, want_rejected, want_removed, _ = _reference(rows, "line", 2, buckets=-(-len(rows) // 80))
    assert local[0] == ray[0] == want_kept
    assert sorted(r["id"] for r in local[1]) == sorted(r["id"] for r in ray[1]) == sorted(want_rejected)
    assert local[2] == ray[2] and local[2]["units_removed"] == want_removed
