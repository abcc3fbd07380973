"""Small builders shared by the engine tests: input documents, a run's folder, `curate` in a subprocess, a worker
killed mid-run, a disk that fills up, headless chromium."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TESTS = Path(__file__).resolve().parent  # tests/: the shared fixtures' modules (global_stages.py, stage_util.py)
REPO = TESTS.parent


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


def parts(k: int, n: int, **write_docs_kwargs: Any) -> dict[str, dict[str, Any]]:
    """in/part0.parquet .. in/part{k-1}.parquet of n documents each, for build_workdir's docs (numbered on: part j
    holds documents n*j .. n*j+n-1); keyword arguments go to write_docs."""
    return {f"in/part{j}.parquet": {"n": n, **write_docs_kwargs} for j in range(k)}


def build_workdir(
    root: Path,
    *,
    files: Mapping[str, str] | None = None,
    docs: Mapping[str, int | Mapping[str, Any] | list[dict] | pa.Table] | None = None,
    pipeline: str | None = None,
    dirs: tuple[str, ...] | list[str] = (),
) -> Path:
    """A run's folder: `files` (path under root: text, e.g. a user's stage module), `docs` (path under root: Parquet
    input), the pipeline file root/p.yaml (dedented) and empty folders `dirs`; returns root.

    A value of docs is n (write_docs's n documents), a dict of write_docs's keyword arguments, a list of rows or a
    pyarrow table. write_docs's documents are numbered on from one file to the next (start defaults to the number
    written before), so that {"in/a.parquet": 40, "in/b.parquet": 30} holds doc-0000 .. doc-0069 once each."""
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    written = 0
    for name, spec in (docs or {}).items():
        path = root / name
        if isinstance(spec, (int, Mapping)):
            kwargs = {"n": spec} if isinstance(spec, int) else dict(spec)
            kwargs.setdefault("start", written)
            write_docs(path, **kwargs)
            written = kwargs["start"] + kwargs["n"]
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(spec if isinstance(spec, pa.Table) else pa.Table.from_pylist(spec), path)
    for name in dirs:
        (root / name).mkdir(parents=True, exist_ok=True)
    if pipeline is not None:
        write_pipeline(root / "p.yaml", pipeline)
    return root


def curate_command(*args: str) -> list[str]:
    """`curate ARGS` as a command line: this interpreter's curate.cli (the tests' curate, whatever is on PATH)."""
    return [sys.executable, "-m", "curate.cli", *args]


def run_curate(
    *args: str, cwd: Path | str | None = None, timeout: float = 600, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`curate ARGS` in a subprocess, to its end; its stdout and stderr captured as text."""
    return subprocess.run(curate_command(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a Ray head)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def full_disk_after(monkeypatch: Any, writes: int) -> Callable[[], None]:
    """pyarrow.parquet.write_table fails with ENOSPC after `writes` writes, as when a disk fills up part-way;
    returns the function that frees the space again."""
    real = pq.write_table
    calls = {"n": 0}

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_disk)
    return lambda: monkeypatch.setattr(pq, "write_table", real)


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


# The stage's side of killing_a_worker: a user's stage module that starts with this text calls
# slow_batch(self, batch) first in its reject_batch (its stage has the fields pid_dir and seconds).
SLOW_BATCHES = '''
import os
import time
from pathlib import Path

import curate
from curate.inflight import worker_pid  # the Ray worker, not the isolated child of a batch


def slow_batch(stage, batch):
    """One line "batch" in stage.pid_dir/<this worker's pid> per batch, then stage.seconds per document."""
    with open(Path(stage.pid_dir, str(worker_pid())), "a") as fh:
        fh.write("batch\\n")
    time.sleep(stage.seconds * batch.num_rows)
'''


def kill_a_worker_that_counted(pid_dir: Path, killed: list[int], stop: Any, batches: int = 2) -> None:
    """SIGKILL (once) a worker that has already processed `batches` batches (a stage appends a line "batch" to
    pid_dir/<its pid> per batch): figures not exact under retries would count those batches twice. With
    batches=0, any worker that has left its pid file."""
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


@contextlib.contextmanager
def killing_a_worker(pid_dir: Path, batches: int = 2) -> Iterator[list[int]]:
    """While the body runs, SIGKILL one worker (kill_a_worker_that_counted; pid files already in pid_dir, from an
    earlier run, are removed first); then assert that one was killed. Yields the list of the killed pids."""
    for p in pid_dir.iterdir():
        p.unlink()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_worker_that_counted, args=(pid_dir, killed, stop, batches), daemon=True)
    killer.start()
    try:
        yield killed
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no worker was killed: the test did not test anything"


# Headless chromium (Debian's `chromium`; .ci/run installs it): tests/report/test_report.py renders report.html in it and
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
