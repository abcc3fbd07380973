"""The fault matrix's shared parts (tests/output/test_fault_matrix.py, and its rows kept elsewhere: test_resume.py,
test_fault_tolerance.py, tests/filters/dedup/test_minhash_resume.py): its pipeline, where each document of a run
ended up, the exactly-once check against an uninterrupted run, and `curate` driven in a subprocess and killed at a
chosen point."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import curate_command, parts

from curate.output.verify import verify

# A global stage between two row stages, so that a run has two phases (streaming before the dedup; the dedup and
# the stage after it); the row stages sleep per document so that a driver can be hit in the phase wanted.
MATRIX_PIPE = """
name: matrix
input: {format: parquet, path: in}
output: {path: out, shard_rows: 10}
engine: {batch_rows: 10, progress_seconds: 0}
stages:
  - {id: slow, uses: "matrix_stages:slow", with: {seconds: 0.01}}
  - {id: dedup, uses: exact_dedup}
  - {id: slow_after, uses: "matrix_stages:slow", with: {seconds: 0.01}}
"""
# Slow only in the run a test hits (its driver's environment names a flag file that exists, see start(slow=True)):
# the reference run and the resumes run the very same pipeline at full speed, and deleting the flag lets a held run
# finish quickly.
MATRIX_STAGES = '''
import os
import time

import curate


@curate.filter
def slow(doc, seconds: float = 0.01):
    """Keep all but topic 1; sleep per document while the file named by $MATRIX_SLOW exists."""
    flag = os.environ.get("MATRIX_SLOW")
    if flag and os.path.exists(flag):
        time.sleep(seconds)
    return "odd_topic" if " topic 1 " in doc.text else None
'''
MATRIX_DOCS = 200

# The matrix's `slow` for multi-node tests (test_fault_matrix, tests/s3): it leaves the pid of the worker it runs in.
NODE_STAGES = '''
import os
import time
from pathlib import Path

import curate
from curate.inflight import worker_pid  # the Ray worker, not the isolated child of a batch


@curate.filter
def slow(doc, pid_dir: str = "", seconds: float = 0.05):
    """matrix_stages:slow that also leaves the pid of the worker that runs it (for node-lost tests)."""
    Path(pid_dir, str(worker_pid())).touch()
    flag = os.environ.get("MATRIX_SLOW")
    if flag and os.path.exists(flag):
        time.sleep(seconds)
    return "odd_topic" if " topic 1 " in doc.text else None
'''


def matrix_workdir() -> dict:
    """build_workdir's (make_workdir's) arguments for the matrix's run folder: its stage module, 200 documents in
    8 files and its pipeline."""
    return {"files": {"matrix_stages.py": MATRIX_STAGES}, "docs": parts(8, 25), "pipeline": MATRIX_PIPE}


# -- the comparison ---------------------------------------------------------------------------------------------


def outcome(out: Path) -> dict[str, Counter]:
    """Where each document id ended up: 'kept', 'rejected/<stage>' (a Counter: a document written twice counts 2)."""
    places: dict[str, Counter] = {}
    for sub in ("data", *(f"rejected/{d.name}" for d in sorted((out / "rejected").glob("*")))):
        ids: Counter = Counter()
        for f in sorted((out / sub).glob("*.parquet")):
            ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
        places["kept" if sub == "data" else sub] = ids
    return places


def assert_exactly_once(out: Path, reference: dict[str, Counter]) -> None:
    """Nothing lost, nothing doubled, nothing in the wrong place, against the uninterrupted run; and the output's
    own check (manifest, SHA-256, unlisted files, duplicate ids) passes."""
    got = outcome(out)
    places = set(got) | set(reference)
    lost = {p: sum((reference.get(p, Counter()) - got.get(p, Counter())).values()) for p in places}
    doubled = {p: sum((got.get(p, Counter()) - reference.get(p, Counter())).values()) for p in places}
    assert sum(lost.values()) == 0 and sum(doubled.values()) == 0, f"lost {lost}, doubled or misplaced {doubled}"
    assert (out / "_SUCCESS").exists() and not (out / "_progress").exists() and not (out / "_lock").exists()
    report = verify(str(out))
    assert report.ok, report.problems()


# -- driving a run in a subprocess ------------------------------------------------------------------------------


def start(args: list[str], cwd: Path, *, slow: bool = False) -> subprocess.Popen:
    """`curate ARGS` in a subprocess of its own session (os.killpg reaches the driver and all it started), its
    stdout and stderr together in proc.stdout. slow=True: MATRIX_STAGES's stages sleep until cwd/SLOW is removed."""
    env = None
    if slow:
        (cwd / "SLOW").touch()
        env = {**os.environ, "MATRIX_SLOW": str(cwd / "SLOW")}
    return subprocess.Popen(
        curate_command(*args),
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def wait_for(proc: subprocess.Popen, condition: Callable[[], bool], timeout: float = 120) -> None:
    """Wait until condition() holds; fail if the run ends first or the time runs out (then the run is killed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the point wanted:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the run never reached the point wanted")


def kill_when(proc: subprocess.Popen, condition: Callable[[], bool], timeout: float = 120) -> None:
    """wait_for the condition, then SIGKILL the driver and everything it started, as if its machine died."""
    wait_for(proc, condition, timeout)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
