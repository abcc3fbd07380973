"""The sample-crawl runs that tests/report/test_report.py and test_inspect.py read (conftest's session fixture
sample_runs): two local runs over the same 200-page sample crawl that differ in one threshold."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from curate.cli import main

PIPELINE = """
name: sample
input: {{format: warc, path: "sample:crawl?pages=200"}}
output: {{path: {out}}}
engine: {{progress_seconds: 0}}
stages:
  - {{id: url, uses: url_filter}}
  - {{id: extract, uses: trafilatura, with: {{favour_precision: true, timeout: 60.0, deduplicate: false}}}}
  - {{id: lang, uses: fasttext_langid, with: {{languages: [en], language_threshold: {threshold}}}}}
  - {{id: gopher_rep, uses: gopher_repetition}}
  - {{id: gopher_qual, uses: gopher_quality}}
  - {{id: dedup, uses: minhash}}
"""

# deduplicate: false because trafilatura's deduplication keeps a process-wide cache of the paragraphs it has
# seen, so that a second run in the same process (B after A here) would extract less from the same pages.


def make_sample_runs(root: Path) -> dict[str, Path]:
    """Under root: language_threshold 0.65 (A, run with --report from the CLI; "A_lines" is what it printed) and
    0.9 (B)."""
    for name, threshold in (("A", 0.65), ("B", 0.9)):
        (root / f"{name}.yaml").write_text(PIPELINE.format(out=root / name, threshold=threshold))
    lines = _cli(["run", str(root / "A.yaml"), "--runner", "local", "--report"])
    assert main(["run", str(root / "B.yaml"), "--runner", "local"]) == 0
    runs: dict[str, Path] = {"A": root / "A", "B": root / "B", "root": root}
    runs["A_lines"] = lines  # type: ignore[assignment]
    return runs


def _cli(argv: list[str]) -> list[str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue().splitlines()
