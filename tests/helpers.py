"""Small builders shared by the engine tests."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def write_docs(path: Path, n: int = 50, *, lorem_every: int = 7, dup_every: int = 10, start: int = 0) -> Path:
    """A Parquet file of n documents: every lorem_every-th mentions lorem ipsum, every dup_every-th is a copy."""
    rows = []
    for i in range(start, start + n):
        if dup_every and i % dup_every == 0:
            text = "This exact sentence appears in several documents of the test set."
        else:
            text = f"Document {i} talks about topic {i % 13} in a few plain words."
        if lorem_every and i % lorem_every == 0:
            text += " Lorem ipsum dolor sit amet."
        rows.append({"id": f"doc-{i:04d}", "text": text, "url": f"https://example.org/{i}"})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_pipeline(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip())
    return path


USER_FILTERS = '''
import pyarrow as pa
import curate


@curate.filter
def no_lorem(doc, max_hits: int = 0) -> str | None:
    """Reject documents that say lorem ipsum more than max_hits times."""
    return "lorem_ipsum" if doc.text.lower().count("lorem ipsum") > max_hits else None


@curate.mapper(output_columns={"n_words": pa.int64()})
def count_words(doc):
    """Annotate the number of words."""
    doc["n_words"] = len(doc.words())


class TopicGate(curate.Filter):
    """A filter with setup(): loads its 'model' (a set of banned topics) once per worker."""

    banned: list[int] = None

    def setup(self):
        self._banned = {f"topic {t} " for t in (self.banned or [])}

    def reject(self, doc):
        return "banned_topic" if any(b in doc.text for b in self._banned) else None
'''


def read_ids(out: Path, sub: str = "data") -> list[str]:
    files = sorted((out / sub).rglob("*.parquet"))
    if not files:
        return []
    return sorted(pq.read_table(files[0].parent if sub == "data" else out / sub).column("id").to_pylist())


SLOW_FILTERS = '''
import time
import curate


@curate.filter
def slow(doc, seconds: float = 0.01):
    """Keep everything, slowly (so that a run can be interrupted part-way)."""
    time.sleep(seconds)
    return "odd_topic" if " topic 1 " in doc.text else None
'''


def commits(out: Path, phase: int = 0) -> int:
    d = out / "_progress" / str(phase) / "commits"
    return len(list(d.glob("*.json"))) if d.is_dir() else 0


def all_ids(out: Path) -> list[str]:
    """Every id written, kept or rejected (a document written twice appears twice)."""
    ids: list[str] = []
    for f in sorted(out.rglob("*.parquet")):
        if "_checkpoint" in f.parts:
            continue
        ids += pq.read_table(f, columns=["id"]).column("id").to_pylist()
    return ids


def kill_a_worker_that_counted(pid_dir: Path, killed: list[int], stop: Any, batches: int = 2) -> None:
    """SIGKILL (once) a worker that has already processed `batches` batches (a stage appends a line "batch" to
    pid_dir/<its pid> per batch): figures not exact under retries would count those batches twice."""
    while not stop.is_set():
        for p in pid_dir.iterdir():
            if int(p.name) != os.getpid() and p.read_text().count("batch") >= batches:
                try:
                    os.kill(int(p.name), signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(int(p.name))
                return
        time.sleep(0.02)


# Headless chromium (Debian's `chromium`; .ci/run installs it): tests/test_report.py renders report.html in it and
# tests/docs/ the documentation site. Tests that need it skip when chromium() is None.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str | None:
    """The headless browser on PATH, or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def chromium_command(profile: Path) -> list[str]:
    """chromium with the flags every browser test uses and its own profile directory; add --dump-dom URL,
    --screenshot=PATH URL, ..."""
    browser = chromium()
    assert browser, "no chromium on PATH"
    return [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
