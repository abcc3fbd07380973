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
import tempfile
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


class RayNodes:
    """A two-node Ray cluster on 127.0.0.1 for a `with` block: a head (1 CPU, Ray's default temp dir) and a second
    node (2 CPUs) with a temp dir of its own, each `ray start --block` in its own process group with `env`;
    `address` is the head's, `node` the second node's process. Stopped (SIGTERM, then SIGKILL) on the way out."""

    def __init__(self, logs: Path, env: Mapping[str, str]) -> None:
        self.logs = logs
        self.env = dict(env)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.files: list[Any] = []
        self.node_tmp = ""
        self.node: subprocess.Popen | None = None

    def __enter__(self) -> RayNodes:
        # a short temp dir: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
        self.node_tmp = tempfile.mkdtemp(prefix="crn", dir="/tmp")
        try:
            self._start("head", "--head", f"--port={self.port}", "--num-cpus=1", "--include-dashboard=false")
            self.node = self._start("node", f"--address={self.address}", "--num-cpus=2", f"--temp-dir={self.node_tmp}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        import pytest

        ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
        log = self.logs / f"{name}.log"
        self.files.append(log.open("w"))
        proc = subprocess.Popen(
            [ray_bin, "start", *args, "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"],
            stdout=self.files[-1],
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
        )
        self.procs.append(proc)
        deadline = time.time() + 180
        while time.time() < deadline:
            if "Ray runtime started" in log.read_text():
                return proc
            if proc.poll() is not None:
                pytest.fail(f"ray start exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"ray start never came up:\n{log.read_text()[-3000:]}")

    def __exit__(self, *exc: Any) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.node_tmp, ignore_errors=True)
        for fh in self.files:
            fh.close()

    @staticmethod
    def _parent(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])

    def workers_of(self, node: subprocess.Popen) -> list[int]:
        """The node's Ray workers: children of its raylet, which is in the node's process group."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if os.getpgid(self._parent(int(entry.name))) == node.pid:
                        found.append(int(entry.name))
        return found

    def wait_for_task_on(
        self, node: subprocess.Popen, pids: Path, driver: subprocess.Popen, timeout: float = 300
    ) -> None:
        """Until a worker of `node` has left its pid in `pids` (its stage runs there)."""
        import pytest

        deadline = time.time() + timeout
        while time.time() < deadline:
            for p in pids.iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if os.getpgid(self._parent(int(p.name))) == node.pid:
                        return
            if driver.poll() is not None:
                pytest.fail(f"the run ended before a task ran on the second node:\n{driver.stdout.read()[-3000:]}")
            time.sleep(0.05)
        pytest.fail("no task ran on the second node")

    def kill(self, node: subprocess.Popen) -> list[int]:
        """SIGKILL the node as if its machine died: its raylet and its workers; returns the workers' pids."""
        workers = self.workers_of(node)
        os.killpg(node.pid, signal.SIGKILL)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return workers


def contend_for_lock(out: str, n: int = 8) -> list[Any]:
    """`n` threads acquire the output lock of `out` at once (a barrier); each one's OutputLock or OutputError."""
    from curate.errors import OutputError
    from curate.output.lock import OutputLock

    results: list[Any] = []
    barrier = threading.Barrier(n)

    def contend() -> None:
        barrier.wait()
        try:
            results.append(OutputLock(out).acquire())
        except OutputError as e:
            results.append(e)

    threads = [threading.Thread(target=contend) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
