"""Tokens in every count. With a tokenizer named in the pipeline (output.tokenizer, or `curate run --tokenizer`),
stats.json, the run table and the report give tokens in, kept, out and rejected per stage, and the stages that count
tokens (score_top, token_budget, mix) count them with it. Every figure equals a recount of the documents themselves
and the tokenized output's count (`curate tokenize`, its special tokens aside): on the local and the Ray runner, and
after a killed run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from faults import kill_when, start
from helpers import SLOW_FILTERS, commits, run_curate
from train_util import gpt2_layout_tokenizer, sentences

from curate import config, engine
from curate.cli import main
from curate.errors import ConfigError
from curate.output.figures import Figures, Sizes, StageFigures
from curate.train.shards import ShardIndex
from curate.train.tokenizer import Tokenizer

pytest.importorskip("tokenizers")

STAGES = '''
import curate


@curate.mapper
def shorten(doc):
    """Drops the last sentence of documents about topic 4 (a stage that changes text)."""
    if " topic 4 " in doc.text:
        doc.text = doc.text.rsplit(".", 2)[0] + "."


@curate.mapper(output_columns={"score": __import__("pyarrow").float64()})
def score(doc):
    doc["score"] = float(len(doc.text) % 7)
'''

# stages that reject, one that rewrites text, a global dedup, then the three that count tokens (each a phase)
PIPE = """
name: tokens
input: {{format: parquet, path: in}}
output: {{path: out, shard_rows: 25, tokenizer: "{tok}"}}
engine: {{batch_rows: 10, progress_seconds: 0}}
stages:
  - {{id: slow, uses: "slow_filters:slow", with: {{seconds: {seconds}}}}}
  - {{id: shorten, uses: "tok_stages:shorten"}}
  - {{id: dedup, uses: exact_dedup}}
  - {{id: score, uses: "tok_stages:score"}}
  - {{id: top, uses: score_top, with: {{column: score, keep_top: 0.8, weight: tokens}}}}
  - {{id: budget, uses: token_budget, with: {{tokens: 4000}}}}
  - {{id: mix, uses: mix, with: {{rates: {{"*": 1.5}}}}}}
"""


def _rows(n: int) -> list[dict]:
    rows: list[dict] = []
    for i, t in enumerate(sentences(n, seed=11)):
        text = rows[-1]["text"] if i % 9 == 8 else f"Note on topic {i % 13} here. {t}"  # some exact duplicates
        rows.append({"id": f"d{i:04d}", "text": text})
    return rows


@pytest.fixture(scope="module")
def tok_json(tmp_path_factory) -> Path:
    return gpt2_layout_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", sentences(200, seed=5), 400)


def _workdir(make_workdir, tok: Path, seconds: float = 0.0) -> Path:
    return make_workdir(
        files={"slow_filters.py": SLOW_FILTERS, "tok_stages.py": STAGES},
        docs={f"in/part{j}.parquet": _rows(160)[40 * j : 40 * j + 40] for j in range(4)},
        pipeline=PIPE.format(tok=tok, seconds=seconds),
    )


def _tokens(tok: Tokenizer, texts: list[str]) -> int:
    return sum(len(tok.encode(t)) for t in texts if t)


def _texts(folder: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for f in sorted(folder.glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "text"])
        rows += zip(t.column("id").to_pylist(), t.column("text").to_pylist())
    return rows


def check_tokens(workdir: Path, stats: dict, tok_path: Path) -> None:
    """Every token figure of stats.json against the documents themselves and against `curate tokenize`."""
    tok = Tokenizer.from_file(tok_path)
    out = workdir / "out"
    assert stats["tokenizer"] == str(tok_path.resolve()) and stats["sizes_conserved"] is True
    by = {s["id"]: s for s in stats["stages"]}
    # the input, the kept documents (each once) and what OUT/data holds (the mix's copies, ids "<id>#2", included)
    assert stats["input_tokens"] == _tokens(tok, [t for _, t in _texts(workdir / "in")])
    written = _texts(out / "data")
    assert any("#" in i for i, _ in written), "the mix wrote no copies: the test lost its point"
    assert stats["output_tokens"] == _tokens(tok, [t for i, t in written if "#" not in i])
    assert stats["written_tokens"] == _tokens(tok, [t for _, t in written]) > stats["output_tokens"]
    # each stage's rejected documents, as they entered it
    for sid, s in by.items():
        if s["rejected"] and sid != "input":
            rejected = _texts(out / "rejected" / sid)
            assert sum(s["tokens_rejected"].values()) == _tokens(tok, [t for _, t in rejected]), sid
            assert s["tokens_in"] == s["tokens_kept"] + sum(s["tokens_rejected"].values()), sid
    assert by["slow"]["tokens_rejected"]["odd_topic"] > 0 and by["dedup"]["tokens_rejected"]["duplicate_text"] > 0
    assert by["shorten"]["tokens_out"] < by["shorten"]["tokens_in"]
    # the stages that count tokens count the same tokens: what they kept is what they handed on
    assert by["top"]["counters"]["kept_tokens"] == by["top"]["tokens_out"] < by["top"]["tokens_in"]
    assert by["budget"]["counters"]["kept_tokens"] == by["budget"]["tokens_out"] <= 4000
    assert by["budget"]["counters"]["total_tokens"] == by["budget"]["tokens_in"] > 4000
    assert sum(v for k, v in by["mix"]["counters"].items() if k.startswith("tokens:")) == stats["written_tokens"]
    # `curate tokenize` packs exactly those tokens, plus one EOS per document
    for fmt in ("megatron", "curate"):
        dest = workdir / f"tok-{fmt}"
        assert main(["tokenize", str(out), "--tokenizer", str(tok_path), "--format", fmt, "--out", str(dest)]) == 0
        if fmt == "megatron":
            m = json.loads((dest / "tokens.json").read_text())
            assert m["text_tokens"] == stats["written_tokens"] and m["docs"] == len(written)
        else:
            index = ShardIndex.load(str(dest))
            total = index.tokens("train") + index.tokens("val")
            assert total - len(written) == stats["written_tokens"]  # each document is its tokens and one EOS


@pytest.mark.ray
@pytest.mark.parametrize("runner", ["local", "ray"])
def test_stats_tokens_equal_the_tokenized_output(runner, make_workdir, tok_json, request):
    if runner == "ray":
        request.getfixturevalue("ray_session")
    workdir = _workdir(make_workdir, tok_json)
    stats = engine.run(config.load("p.yaml"), runner=runner)
    check_tokens(workdir, stats, tok_json)
    # the report shows them too: the funnel's token columns and the headline
    from curate.report.html import write_report

    page = Path(write_report(str(workdir / "out"))).read_text()
    for s in stats["stages"]:
        assert f'data-tokens-out="{s["tokens_out"]}"' in page
    assert "tokens in</th>" in page and f"{stats['output_tokens']:,} tokens" in page


@pytest.mark.e2e
def test_stats_tokens_after_a_killed_run_resumes(make_workdir, tok_json):
    workdir = _workdir(make_workdir, tok_json, seconds=0.01)
    reference = engine.run(config.load("p.yaml", output_path="ref"), runner="local")
    args = ["run", "p.yaml", "--runner", "local"]
    kill_when(start(args, workdir), lambda: commits(workdir / "out", 0) >= 3)  # part of phase 0 committed
    done = run_curate(*args, cwd=workdir, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((workdir / "out" / "stats.json").read_text())
    assert stats["attempts"] == 2
    keys = [k for k in reference if "token" in k]
    assert {k: stats[k] for k in keys} == {k: reference[k] for k in keys}
    for a, b in zip(stats["stages"], reference["stages"]):
        assert {k: v for k, v in a.items() if k.startswith("tokens_")} == {
            k: v for k, v in b.items() if k.startswith("tokens_")
        }
    check_tokens(workdir, stats, tok_json)
    # the run table of the resumed run has the tokens column
    assert "tokens out" in done.stdout and f"{stats['output_tokens']:,} tokens" in done.stdout


@pytest.mark.unit
def test_figures_carry_tokens_and_copies():
    fig = Figures(written=Sizes(3, 10, 5), copies=Sizes(1, 4, 2))
    fig.stage("a").tokens.into = 7
    back = Figures.from_json(fig.to_json())
    assert back.written == Sizes(3, 10, 5) and back.copies == Sizes(1, 4, 2) and back.stage("a").tokens.into == 7
    # no tokenizer: the records stay as they were (two sizes, no tokens flow)
    plain = Figures(written=Sizes(3, 10))
    assert plain.to_dict() == {"stages": {}, "written": [3, 10]}
    assert StageFigures.from_dict({"words": [1, 1, 1, {}]}).tokens.into == 0


@pytest.mark.unit
def test_pipeline_tokenizer_is_the_token_stages_tokenizer(tmp_path, tok_json):
    other = tmp_path / "other.json"
    other.write_text(tok_json.read_text())
    body = f"""
name: t
input: {{format: parquet, path: {tmp_path}}}
output: {{path: {tmp_path}/out, tokenizer: {tok_json}}}
stages:
  - {{id: budget, uses: token_budget, with: {{tokens: 10}}}}
  - {{id: top, uses: score_top, with: {{keep_top: 0.5, weight: tokens, tokenizer: {tok_json}}}}}
"""
    p = config.from_text(body, check_input=False)
    assert [s.stage.tokenizer for s in p.stages] == [str(tok_json), str(tok_json)]
    assert p.resolved["stages"][0]["with"]["tokenizer"] == str(tok_json)
    with pytest.raises(ConfigError, match="counts tokens with"):
        config.from_text(body.replace(f"tokenizer: {tok_json}}}}}", f"tokenizer: {other}}}}}"), check_input=False)
    with pytest.raises(ConfigError, match="output.tokenizer .* is not a file"):
        config.from_text(body.replace(f"tokenizer: {tok_json}}}\n", "tokenizer: nope.json}\n"), check_input=False)


def test_a_global_stage_that_rewrites_text_measures_what_it_got(make_workdir, tok_json):
    """line_dedup opening the run cuts lines: its input figures are the documents as read, not as it left them
    (they were inferred from its output before), and its output is what was written."""
    rows = [{"id": f"d{i}", "text": f"Shared footer line here.\nBody {i}: {t}"} for i, t in enumerate(sentences(30))]
    workdir = make_workdir(
        docs={"in/a.parquet": rows},
        pipeline=f"""
        name: cut
        input: {{format: parquet, path: in}}
        output: {{path: out, tokenizer: "{tok_json}"}}
        stages:
          - {{id: lines, uses: line_dedup, with: {{max_count: 2}}}}
        """,
    )
    stats = engine.run(config.load("p.yaml"), runner="local")
    tok = Tokenizer.from_file(tok_json)
    before = [r["text"] for r in rows]
    after = [t for _, t in _texts(workdir / "out" / "data")]
    lines = {s["id"]: s for s in stats["stages"]}["lines"]
    assert lines["counters"]["units_removed"] == 30 and stats["sizes_conserved"] is True
    assert lines["words_in"] == stats["input_words"] == sum(len(t.split()) for t in before)
    assert lines["words_out"] == stats["output_words"] == sum(len(t.split()) for t in after) < lines["words_in"]
    assert lines["bytes_in"] == sum(len(t.encode()) for t in before)
    assert lines["tokens_in"] == _tokens(tok, before) and lines["tokens_out"] == _tokens(tok, after)
