"""The substring_dedup stage: tokens, window hashes, interval merging, cuts, the decisions of `remove: all` and
`remove: later`, parameter checks, and the stage on real text with planted repeats (and 49-token near misses)
against a brute-force reference (a dict of window tuples) on the local runner at two batch sizes, and on Ray."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError
from curate_filters.dedup import substring
from curate_filters.dedup.substring import SubstringDedup, cut_ranges, tokenize, window_hashes

STAGE = "substring_dedup"
L = 50

# -- tokens and window hashes ----------------------------------------------------------------------------------------


def test_tokens_are_str_split_with_their_character_ranges():
    spaces = [c for c in map(chr, range(0x110000)) if c.isspace()]
    rng = random.Random(0)
    alphabet = ["a", "é", "日", "_", ".", "\u200b"] + spaces  # a zero-width space is no whitespace
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        tokens, starts, ends = tokenize(text)
        assert tokens == text.split()
        assert [text[s:e] for s, e in zip(starts, ends)] == tokens


def _poly(values: list[int], p: int) -> int:
    h = 0
    for v in values:
        h = (h * p + v) % (1 << 64)
    return h


def test_window_hashes_are_the_polynomial_of_each_window_wherever_it_stands():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2**63, 400, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    values[300:350] = values[10:60]  # the window at 10 again at 300
    starts = np.arange(0, 400 - 50 + 1)
    got = window_hashes(values, starts, 50, substring._P1)
    want = [_poly([int(v) for v in values[s : s + 50]], substring._P1) for s in starts]
    assert got.tolist() == want
    assert got[10] == got[300] and len(set(got.tolist())) == len(starts) - 1
    # and across batches: the same window hashes the same at another global offset
    shifted = np.concatenate([rng.integers(0, 2**63, 77, dtype=np.uint64), values])
    assert window_hashes(shifted, starts + 77, 50, substring._P1).tolist() == want


def test_window_rows_hash_equal_windows_equal_and_give_character_ranges():
    words = [f"w{i}" for i in range(60)]
    a = " ".join(words[:55])
    b = "x  " + " ".join(words[3:53]) + "\n y"  # the window words[3:53] again, at token 1
    rows = substring.WindowRows(L)(pa.table({"id": ["a", "b", "c"], "text": [a, b, "too short"]}))
    assert rows.schema == substring.WINDOWS
    got = rows.to_pylist()
    assert [(r["id"], r["pos"]) for r in got] == [("a", p) for p in range(6)] + [("b", 0), ("b", 1), ("b", 2)]
    key = {(r["id"], r["pos"]): (r["h1"], r["h2"]) for r in got}
    assert key[("a", 3)] == key[("b", 1)]
    assert len(set(key.values())) == len(key) - 1
    r = next(r for r in got if (r["id"], r["pos"]) == ("b", 1))
    assert b[r["cstart"] : r["cend"]] == " ".join(words[3:53])


# -- merging and cutting ---------------------------------------------------------------------------------------------


def test_cut_ranges_removes_exact_character_ranges():
    text = "keep this CUT ME and this CUT too end"
    s1, s2 = text.index("CUT ME"), text.index("CUT too")
    assert cut_ranges(text, [s2, s1], [s2 + 7, s1 + 6]) == "keep this  and this  end"
    assert cut_ranges(text, [], []) == text
    assert cut_ranges(text, [0], [len(text)]) == ""


def _windows(rows: list[tuple[int, str, int]]) -> pa.Table:
    h, i, p = zip(*rows)
    n = len(h)
    return pa.Table.from_arrays(
        [
            pa.array(h, pa.int64()),
            pa.array([7] * n, pa.int64()),
            pa.array(i),
            pa.array(p, pa.int32()),
            pa.array([10 * x for x in p], pa.int32()),
            pa.array([10 * x + 9 for x in p], pa.int32()),
        ],
        schema=substring.WINDOWS,
    )


def _marked(table: pa.Table) -> set[tuple[str, int]]:
    return set(zip(table.column("id").to_pylist(), table.column("pos").to_pylist()))


def test_remove_all_takes_every_copy_and_later_keeps_the_first_by_id_then_position():
    rows = [(1, "b", 0), (1, "a", 5), (1, "a", 2), (2, "c", 1), (3, "c", 4), (3, "c", 9)]
    assert _marked(substring.Decide("all")(_windows(rows))) == {("b", 0), ("a", 5), ("a", 2), ("c", 4), ("c", 9)}
    assert _marked(substring.Decide("later")(_windows(rows))) == {("b", 0), ("a", 5), ("c", 9)}
    # the two halves of the hash both count: same h1, other h2 is another window
    other = _windows(rows[:2]).set_column(1, "h2", pa.array([7, 8], pa.int64()))
    assert substring.Decide("all")(other).num_rows == 0


def test_decisions_do_not_depend_on_how_groups_share_calls():
    rng = random.Random(1)
    rows = list({(rng.randrange(40), f"d{rng.randrange(30)}", rng.randrange(50)): None for _ in range(2000)})
    for remove in ("all", "later"):
        whole = _marked(substring.Decide(remove)(_windows(rows)))
        groups: dict[int, list] = {}
        for r in rows:
            groups.setdefault(r[0], []).append(r)
        keys = list(groups)
        rng.shuffle(keys)
        pieces: set[tuple[str, int]] = set()
        for start in range(0, len(keys), 7):
            part = [r for k in keys[start : start + 7] for r in groups[k]]
            rng.shuffle(part)
            pieces |= _marked(substring.Decide(remove)(_windows(part)))
        assert pieces == whole and whole


@pytest.mark.parametrize(
    ("positions", "starts", "tokens"),
    [
        ([0], [0], 5),
        ([7, 0, 3], [0], 12),  # overlapping, unsorted
        ([0, 5], [0], 10),  # touching: one span, as collect makes it
        ([0, 6, 20], [0, 60, 200], 15),  # a gap of one token stays
    ],
)
def test_spans_merge_overlapping_and_touching_windows(positions, starts, tokens):
    marked = _windows([(0, "a", p) for p in positions]).select(substring.MARKED.names)
    (got,) = substring.Spans(5)(marked).to_pylist()
    assert got[substring.STARTS] == starts and got["__sd_tokens"] == tokens


def test_spans_merge_each_documents_windows_into_character_ranges():
    marked = _windows([(0, "a", 0), (0, "a", 3), (0, "a", 8), (0, "a", 20), (0, "b", 4)]).select(substring.MARKED.names)
    got = {r["id"]: r for r in substring.Spans(5)(marked).to_pylist()}
    # the fixture's window p covers characters [10p, 10p + 9); a: windows 0 and 3 overlap, 8 touches 3's end (3 + 5 = 8), 20 stands alone
    assert got["a"][substring.STARTS] == [0, 200] and got["a"][substring.ENDS] == [89, 209]
    assert got["a"]["__sd_tokens"] == 13 + 5 and got["a"]["__sd_chars"] == 89 + 9
    assert got["b"][substring.STARTS] == [40] and got["b"]["__sd_tokens"] == 5


def test_rewrite_cuts_spans_and_rejects_what_is_left_too_short():
    body = pa.table(
        {
            "id": ["a", "b", "c"],
            "text": ["keep REPEATED SPAN this", "REPEATED SPAN", "untouched"],
            substring.STARTS: pa.array([[5], [0], None], pa.list_(pa.int32())),
            substring.ENDS: pa.array([[18], [13], None], pa.list_(pa.int32())),
        }
    )
    out = substring.Rewrite(5)(body)
    assert out.column_names == ["id", "text", "reason"]
    assert out.column("text").to_pylist() == ["keep  this", "REPEATED SPAN", "untouched"]
    assert out.column("reason").to_pylist() == [None, "too_little_left", None]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"min_tokens": 0}, "min_tokens"), ({"remove": "first"}, "all or later"), ({"min_chars": -1}, "min_chars")],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        SubstringDedup(**params)


# -- the stage on real text against a brute-force reference ---------------------------------------------------------


def _corpus_docs(corpus: Path, n_docs: int, seed: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """n_docs documents of 60-400 consecutive Gutenberg tokens (kept in their lines), with spans of 50-500 tokens
    copied into other documents, 49-token near misses fenced by unique marker tokens, and documents that are
    nothing but a copy; returns rows and the near misses (target id, copied text)."""
    rng = random.Random(seed)
    words: list[str] = []
    for book in sorted((corpus / "prose-gutenberg").glob("pg*.txt"))[:3]:
        text = book.read_text(encoding="utf-8", errors="replace")
        words += [w for line in text.split("\n")[200:3000] for w in (line.split() + ["\n"])]
    docs: list[list[str]] = []
    at = 0
    for _ in range(n_docs):
        k = rng.randrange(60, 400)
        docs.append(words[at : at + k])
        at = (at + k) % (len(words) - 500)

    def flat(d: list[str]) -> list[str]:  # the tokens of a document (a planted copy is one element of many tokens)
        return [t for w in d for t in w.split()]

    for _ in range(40):  # repeats: 50-500 tokens of one document into another (or the same)
        src = flat(docs[rng.randrange(n_docs)])
        n = min(len(src), rng.randrange(50, 500))
        a = rng.randrange(len(src) - n + 1)
        target = docs[rng.randrange(n_docs)]
        target.insert(rng.randrange(len(target) + 1), " ".join(src[a : a + n]))
    near: list[tuple[int, str]] = []
    for j in range(30):  # 49 tokens: never removed
        src = flat(docs[rng.randrange(n_docs)])
        a = rng.randrange(len(src) - 49 + 1)
        t = rng.randrange(n_docs)
        copy = " ".join(src[a : a + 49])
        docs[t].insert(rng.randrange(len(docs[t]) + 1), f"[nm{j}a] {copy} [nm{j}b]")
        near.append((t, copy))
    for _ in range(3):  # nothing but a copy of another document's first 80 tokens: nothing left
        docs.append([" ".join(flat(docs[rng.randrange(n_docs)])[:80])])
    rows = [{"id": f"g{i:04d}", "text": " ".join(d).replace(" \n ", "\n")} for i, d in enumerate(docs)]
    near_rows = [(rows[t]["id"], copy) for t, copy in near]
    rng.shuffle(rows)
    return rows, near_rows


def _reference(rows: list[dict], remove: str, min_tokens: int = L, min_chars: int = 50, tokens_of=tokenize):
    """Brute force over token tuples: every window of min_tokens tokens seen at two or more (document, position)
    places is covered (`later`: all but the first by id, then position); maximal runs of covered positions are
    cut as character ranges. Returns kept texts, rejected ids, spans, tokens, characters removed."""
    where: dict[tuple, list[tuple[str, int]]] = {}
    split = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        tokens, starts, ends = tokens_of(r["text"])
        split[r["id"]] = (starts, ends)
        for p in range(len(tokens) - min_tokens + 1):
            where.setdefault(tuple(tokens[p : p + min_tokens]), []).append((r["id"], p))
    covered: dict[str, set[int]] = {}
    for places in where.values():
        if len(places) >= 2:
            for doc, p in places[1:] if remove == "later" else places:
                covered.setdefault(doc, set()).update(range(p, p + min_tokens))
    kept, rejected = {}, set()
    spans = tokens_removed = chars = 0
    for r in rows:
        starts, ends = split[r["id"]]
        cov = sorted(covered.get(r["id"], ()))
        runs = [[cov[0], cov[0] + 1]] if cov else []
        for p in cov[1:]:
            if p == runs[-1][1]:
                runs[-1][1] = p + 1
            else:
                runs.append([p, p + 1])
        cs, ce = [starts[a] for a, _ in runs], [ends[b - 1] for _, b in runs]
        spans += len(runs)
        tokens_removed += len(cov)
        chars += sum(e - s for s, e in zip(cs, ce))
        left = cut_ranges(r["text"], cs, ce)
        if runs and len(re.sub(r"\s", "", left)) < min_chars:
            rejected.add(r["id"])
        else:
            kept[r["id"]] = left
    return kept, rejected, spans, tokens_removed, chars


PIPE = """
name: substring-dedup
input: {format: parquet, path: IN}
output: {path: OUT, shard_rows: 97}
engine: {batch_rows: BATCH, shuffle_partitions: 3}
stages:
  - {id: substr, uses: "STAGE", with: WITH}
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
    rej_dir = out / "rejected" / "substr"
    rejected = pq.read_table(rej_dir).to_pylist() if rej_dir.exists() else []
    counters = next(s for s in stats["stages"] if s["id"] == "substr")["counters"]
    return kept, rejected, counters


@pytest.mark.parametrize("remove", ["all", "later"])
def test_stage_equals_the_brute_force_reference_on_real_text(corpus, tmp_path, remove):
    rows, near = _corpus_docs(corpus, 150, seed=7)
    kept, rejected, counters = _run(tmp_path, rows, f"{{remove: {remove}}}", "out")
    want_kept, want_rejected, spans, tokens, chars = _reference(rows, remove)
    by_id = {r["id"]: r["text"] for r in rows}
    missed = sum(1 for i, t in want_kept.items() if kept.get(i, "") != t and len(kept.get(i, "")) > len(t))
    extra = sum(1 for i, t in want_kept.items() if kept.get(i, "") != t and len(kept.get(i, "")) <= len(t))
    assert (missed, extra, set(kept) - set(want_kept)) == (0, 0, set())
    assert {r["id"] for r in rejected} == want_rejected and len(want_rejected) >= (3 if remove == "all" else 1)
    assert {r["reason"] for r in rejected} == {"too_little_left"}
    assert all(r["text"] == by_id[r["id"]] for r in rejected)  # a rejected document keeps its text as it came
    assert counters["spans_removed"] == spans > 40
    assert counters["tokens_removed"] == tokens and counters["chars_removed"] == chars > 0
    assert counters["documents_cut"] == sum(1 for i, t in want_kept.items() if t != by_id[i]) + len(want_rejected)
    # the spans cut from each kept document stay beside it (substring_dedup_cut): their characters are the ones gone
    cuts = {r["id"]: r["substring_dedup_cut"] for r in pq.read_table(tmp_path / "out" / "data").to_pylist()}
    assert sum(len(p) for i in kept for p in cuts[i] or []) == sum(len(by_id[i]) - len(kept[i]) for i in kept) > 0
    assert all(p in by_id[i] for i in kept for p in cuts[i] or [])
    # the 49-token near misses are all still there, fenced by their markers; at 49 tokens every copy would go
    assert sum(1 for doc, copy in near if copy in kept.get(doc, "")) == len(near)
    at_49 = _reference(rows, "all", min_tokens=49)[0]
    assert sum(1 for doc, copy in near if copy in at_49.get(doc, "")) == 0


def test_any_batch_size_gives_the_same_output(corpus, tmp_path):
    rows, _ = _corpus_docs(corpus, 120, seed=11)
    small = _run(tmp_path, rows, "{min_tokens: 30}", "small", batch=7)
    large = _run(tmp_path, rows, "{min_tokens: 30}", "large", batch=1000)
    want_kept, want_rejected, _, tokens, _ = _reference(rows, "all", min_tokens=30)
    assert small[0] == large[0] == want_kept
    assert {r["id"] for r in small[1]} == {r["id"] for r in large[1]} == want_rejected
    assert small[2] == large[2] and small[2]["tokens_removed"] == tokens


def test_a_hugging_face_tokenizer_counts_its_own_tokens(corpus, tmp_path):
    pytest.importorskip("tokenizers")
    from curate.train.tokenizer import train_bpe

    rows, _ = _corpus_docs(corpus, 100, seed=3)
    rows[0]["text"] = "Été à Zürich, 日本語: " + rows[0]["text"]  # offsets are characters, not UTF-8 bytes
    path = tmp_path / "tokenizer.json"
    train_bpe((r["text"] for r in rows), vocab_size=600).tok.save(str(path))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))

    def bpe_tokens(text: str):
        enc = tok.encode(text, add_special_tokens=False)
        return enc.ids, [a for a, _ in enc.offsets], [b for _, b in enc.offsets]

    kept, rejected, counters = _run(tmp_path, rows, f"{{tokenizer: {path}, min_tokens: {L}}}", "bpe")
    want_kept, want_rejected, spans, tokens, _ = _reference(rows, "all", tokens_of=bpe_tokens)
    whitespace = _reference(rows, "all")
    assert kept == want_kept and {r["id"] for r in rejected} == want_rejected
    assert counters["tokens_removed"] == tokens and counters["spans_removed"] == spans > 0
    assert tokens != whitespace[3]  # BPE tokens are not whitespace tokens: 50 of them are a shorter span
    with pytest.raises(ConfigError, match="not found"):
        SubstringDedup(tokenizer=str(tmp_path / "missing.json")).preflight()


@pytest.mark.ray
@pytest.mark.e2e
def test_ray_and_local_runners_write_the_same_output(corpus, tmp_path, ray_session, monkeypatch):
    from curate.engine import ray_docs

    monkeypatch.setattr(ray_docs, "SMALL_GROUP_BYTES", 0)  # every group_by a hash shuffle over 3 partitions
    rows, _ = _corpus_docs(corpus, 100, seed=5)
    local = _run(tmp_path, rows, "{remove: later}", "local")
    ray = _run(tmp_path, rows, "{remove: later}", "ray", runner="ray")
    want_kept, want_rejected, _, tokens, _ = _reference(rows, "later")
    assert local[0] == ray[0] == want_kept
    assert sorted(r["id"] for r in local[1]) == sorted(r["id"] for r in ray[1]) == sorted(want_rejected)
    assert local[2] == ray[2] and local[2]["tokens_removed"] == tokens > 0
