"""The fault matrix: each failure a run can meet, and what it costs — documents lost (must be 0) and doubled (must be
0), compared stage by stage against an uninterrupted run of the same pipeline on the same input.

The pipeline has a global stage between two row stages, so a run has two phases (streaming before the dedup; the
dedup and the stage after it); the row stages sleep per document so that a driver can be hit in the phase wanted.
docs/outputs.md ("Reliability") has this matrix as a table. Rows kept elsewhere: a worker process killed mid-stage
(tests/output/test_fault_tolerance.py), a killed Ray driver (tests/output/test_resume.py), bad input
(tests/io/test_bad_input.py). The pipeline, the comparison and the driving of a run in a subprocess are in
tests/faults.py, shared with those rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faults import MATRIX_DOCS, MATRIX_PIPE, NODE_STAGES, assert_exactly_once, matrix_workdir, outcome, start, wait_for
from helpers import (
    build_workdir,
    commits,
    contend_for_lock,
    curate_command,
    free_port,
    full_disk_after,
    write_docs,
    write_pipeline,
)

from curate import config, engine
from curate.cli import main
from curate.errors import InputError, OutputError
from curate.output import lock as lockmod
from curate.output.lock import OutputLock
from curate.output.state import RunState
from curate.output.verify import id_hashes

RUN = ["run", "p.yaml", "--runner", "local"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Counter]:
    """The uninterrupted run of the same pipeline on the same input."""
    d = build_workdir(tmp_path_factory.mktemp("reference"), **matrix_workdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        stats = engine.run(config.load("p.yaml"), runner="local")
    assert stats["conserved"] and stats["input_docs"] == MATRIX_DOCS
    ref = outcome(d / "out")
    assert sum(ref["kept"].values()) == stats["output_docs"] and len(ref) >= 3  # kept, rejected/slow, rejected/dedup
    return ref


@pytest.fixture
def workdir(make_workdir, monkeypatch):
    monkeypatch.delenv("MATRIX_SLOW", raising=False)
    return make_workdir(**matrix_workdir())


# -- driving a run in a subprocess (faults.start, wait_for, kill_when) --------------------------------------------


def _in_phase(out: Path, phase: int):
    if phase == 0:
        return lambda: commits(out, 0) >= 3 and not (out / "_progress/0/DONE").exists()
    return lambda: (out / "_progress/0/DONE").exists() and commits(out, 1) >= 2


def _hit(proc: subprocess.Popen, sig: int, timeout: float = 30) -> tuple[int, str, float]:
    """Send `sig` to the driver (SIGKILL: to its whole process group, as if its machine died); (rc, output, s)."""
    sent = time.time()
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        text = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the run did not stop within {timeout} s of {signal.Signals(sig).name}")
    return proc.returncode, text, time.time() - sent


def _killed_in_phase(workdir: Path, phase: int) -> Path:
    """A local run SIGKILLed (driver and all) in the phase; its output folder."""
    out = workdir / "out"
    proc = start(RUN, workdir, slow=True)
    wait_for(proc, _in_phase(out, phase))
    _hit(proc, signal.SIGKILL)
    return out


def _check_interrupted(rc: int, text: str, seconds: float, sig: int, out: Path) -> str:
    """The one-line report of an interrupted run; returns its resume command."""
    assert rc == 128 + sig, text[-3000:]
    assert seconds < 20, f"stopping took {seconds:.1f} s"
    assert "Traceback" not in text and "logging.cc" not in text and "PC: @" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("interrupted by")]
    assert len(lines) == 1 and signal.Signals(sig).name in lines[0] and "documents" in lines[0], text[-3000:]
    assert not (out / "_lock").exists()  # released on the way out
    assert not (out / "_SUCCESS").exists()
    return lines[0].split("resume with: ", 1)[1]


def _resume(command: str, capsys) -> str:
    argv = shlex.split(command)
    assert argv[0] == "curate"
    code = main(argv[1:])
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    return err


# -- the rows ---------------------------------------------------------------------------------------------------

SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


@pytest.mark.e2e
@pytest.mark.parametrize("phase", [0, 1], ids=["streaming-phase", "global-phase"])
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_driver_killed_or_interrupted_in_each_phase(workdir, reference, capsys, sig, phase):
    out = workdir / "out"
    proc = start(RUN, workdir, slow=True)
    wait_for(proc, _in_phase(out, phase))
    rc, text, seconds = _hit(proc, sig)
    if sig == signal.SIGKILL:
        assert (out / "_lock").exists()  # a dead holder's lock: the resume on this host takes it over at once
        command = "curate " + shlex.join(RUN + (["--set", "engine.max_workers=1"] if phase == 0 else []))
    else:
        command = _check_interrupted(rc, text, seconds, sig, out)
        assert command == "curate " + shlex.join(RUN)
    err = _resume(command, capsys)
    if sig == signal.SIGKILL:
        assert "taking over output" in err and "is gone" in err
    assert ("resume:" in err and "already done" in err) if phase == 0 else "phase 0 already finished" in err
    assert json.loads((out / "stats.json").read_text())["attempts"] == 2
    assert_exactly_once(out, reference)


@pytest.mark.ray
@pytest.mark.e2e
@pytest.mark.slow
def test_ray_driver_interrupted_stops_promptly_and_resumes(workdir, reference, capsys):
    """SIGTERM in the streaming phase, then SIGINT to the resumed run in the global phase, on the Ray runner (its
    own embedded Ray): each stops in seconds with one line and no stack dump from Ray, and a resume finishes."""
    out = workdir / "out"
    for sig, phase in ((signal.SIGTERM, 0), (signal.SIGINT, 1)):
        proc = start(["run", "p.yaml"], workdir, slow=True)
        wait_for(proc, _in_phase(out, phase), timeout=300)
        rc, text, seconds = _hit(proc, sig)
        command = _check_interrupted(rc, text, seconds, sig, out)
        assert command == "curate run p.yaml"
    _resume(command + " --runner local", capsys)  # a resume may use another runner: same documents
    assert json.loads((out / "stats.json").read_text())["attempts"] == 3
    assert_exactly_once(out, reference)


@pytest.mark.e2e
def test_driver_dies_while_committing_the_output(workdir, reference, capsys, monkeypatch):
    """Between manifest.json and _SUCCESS: the rerun commits again, from the run state that is still there."""
    from curate.output import sink

    real = sink.write_text

    def die_before_success(path, name, text):
        if name == sink.SUCCESS:
            raise SystemExit(137)  # the process ends here, as under SIGKILL
        return real(path, name, text)

    monkeypatch.setattr(sink, "write_text", die_before_success)
    with pytest.raises(SystemExit):
        main(RUN)
    out = workdir / "out"
    assert (out / "manifest.json").exists() and not (out / "_SUCCESS").exists() and (out / "_progress").exists()
    monkeypatch.setattr(sink, "write_text", real)
    assert main(RUN) == 0
    assert_exactly_once(out, reference)


@pytest.mark.e2e
def test_disk_full_at_a_shard_write(workdir, reference, capsys, monkeypatch):
    """ENOSPC part-way (simulated as in test_bad_input.py): exit 2 with the reason; once space is back, the same
    command finishes the run."""
    free_space = full_disk_after(monkeypatch, 12)
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "check free space" in err
    out = workdir / "out"
    assert commits(out, 0) >= 1 and not (out / "_lock").exists()
    free_space()
    assert main(RUN) == 0
    assert_exactly_once(out, reference)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.mark.e2e
def test_a_second_run_on_the_same_output_is_refused_and_writes_nothing(workdir, reference, capsys):
    out = workdir / "out"
    first = start(RUN, workdir, slow=True)
    wait_for(first, _in_phase(out, 0))
    os.killpg(first.pid, signal.SIGSTOP)  # hold the first run still, so that any change would be the second's
    try:
        before = _snapshot(out)
        holder = json.loads(next((out / "_lock").glob("*.json")).read_text())
        for extra in ([], ["--overwrite"], ["--take-over"]):
            assert main(RUN + extra) == 2
            err = capsys.readouterr().err
            assert "is being written by" in err and f"pid {holder['pid']}" in err and "attempt 1" in err, err
            assert f"host {socket.gethostname()}" in err and "since" in err
            assert _snapshot(out) == before
    finally:
        (workdir / "SLOW").unlink()
        os.killpg(first.pid, signal.SIGCONT)
    text = first.communicate(timeout=300)[0]
    assert first.returncode == 0, text[-3000:]
    assert_exactly_once(out, reference)


@pytest.mark.e2e
def test_a_damaged_committed_shard_is_refused_on_resume(workdir, reference, capsys):
    out = _killed_in_phase(workdir, 0)
    shard = sorted((out / "rejected").rglob("part-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-20])  # truncated behind curate's back
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and shard.name in err and "--overwrite" in err
    assert not (out / "_SUCCESS").exists()
    assert main(RUN + ["--overwrite"]) == 0
    assert_exactly_once(out, reference)


@pytest.mark.e2e
def test_a_damaged_checkpoint_is_refused_on_resume(workdir, reference, capsys):
    out = _killed_in_phase(workdir, 1)
    shard = sorted((out / "_checkpoint").rglob("part-*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only the SHA-256 tells
    shard.write_bytes(bytes(data))
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert "checkpoint shard" in err and shard.name in err and "is damaged" in err and "--overwrite" in err
    assert not (out / "_SUCCESS").exists() and not list(out.glob("data/*.parquet"))
    assert main(RUN + ["--overwrite"]) == 0
    assert_exactly_once(out, reference)


@pytest.mark.e2e
def test_an_input_file_changed_before_the_resume_is_refused(workdir, capsys):
    out = _killed_in_phase(workdir, 0)
    changed = workdir / "in" / "part2.parquet"
    write_docs(changed, 30, start=1000)  # rewritten: other documents, another size
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert "input changed" in err and "part2.parquet" in err and "--overwrite" in err, err
    assert main(RUN + ["--overwrite"]) == 0
    # the output is the run over the new input, all of it, and nothing of the old file
    fresh = workdir / "fresh"
    assert main(RUN + ["--output", str(fresh)]) == 0
    assert_exactly_once(out, outcome(fresh))
    assert "doc-1000" in outcome(out)["kept"] + outcome(out)["rejected/slow"] + outcome(out)["rejected/dedup"]


NODE_PIPE = """
name: node-lost
input: {format: parquet, path: in}
output: {path: out, shard_rows: 10}
engine: {batch_rows: 5, progress_seconds: 0}
stages:
  - {id: slow, uses: "node_stages:slow", with: {pid_dir: PIDS}}
"""


@pytest.mark.cluster
@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_node_lost_mid_run(workdir, tmp_path_factory):
    """A two-node cluster on 127.0.0.1; the node that is not the head is killed (raylet, object store, workers)
    while it runs tasks. Ray reruns its tasks on the head; the output is exactly that of an uninterrupted run."""
    pids = workdir / "pids"
    pids.mkdir()
    (workdir / "node_stages.py").write_text(NODE_STAGES)
    write_pipeline(workdir / "p.yaml", NODE_PIPE.replace("PIDS", f'"{pids}"'))
    assert main(RUN + ["--output", "ref"]) == 0
    reference = outcome(workdir / "ref")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    (workdir / "SLOW").touch()
    env = {
        **os.environ,
        "MATRIX_SLOW": str(workdir / "SLOW"),  # inherited by every raylet's workers
        # the head notices a dead node within seconds, not Ray's default 30 s
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "2",
        "RAY_AUTH_MODE": "token",
    }
    logs = tmp_path_factory.mktemp("nodes")
    common = ["--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    nodes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [ray_bin, "start", *args, *common],
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        nodes.append(proc)
        _wait_started(proc, logs / f"{name}.log")
        return proc

    node_tmp = tempfile.mkdtemp(prefix="crn", dir="/tmp")
    try:
        start("head", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false")
        # a short temp dir: Ray's socket paths under it must stay within AF_UNIX's 107 bytes, which a deep pytest
        # temp path (pytest-215/nodes0/...) and a long session name exceed
        node = start("node", f"--address=127.0.0.1:{port}", "--num-cpus=2", f"--temp-dir={node_tmp}")
        for p in pids.iterdir():
            p.unlink()  # the reference run's
        driver = subprocess.Popen(
            curate_command("run", "p.yaml", "--address", f"127.0.0.1:{port}"),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        _wait_for_task_on(node.pid, pids, driver)
        workers = _workers_of(node.pid)
        os.killpg(node.pid, signal.SIGKILL)  # the node as if its machine died: its raylet and its workers
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        text = driver.communicate(timeout=400)[0]
        assert driver.returncode == 0, text[-4000:]
        assert workers, "no worker of the lost node was found: the test did not test anything"
        assert_exactly_once(workdir / "out", reference)
    finally:
        for proc in reversed(nodes):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(node_tmp, ignore_errors=True)


def _wait_started(proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """`ray start --block` says so once its node runs (and has registered with the head)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "Ray runtime started" in log.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"ray start exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"ray start never came up:\n{log.read_text()[-3000:]}")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _workers_of(pgid: int) -> list[int]:
    """Ray workers of a node: children of its raylet, which is in the node's process group (workers have their
    own sessions)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if os.getpgid(_parent(int(entry.name))) == pgid:
                    found.append(int(entry.name))
    return found


def _wait_for_task_on(node_pgid: int, pids: Path, driver: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until a worker of the node runs the slow stage."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in pids.iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if os.getpgid(_parent(int(p.name))) == node_pgid:
                    return
        if driver.poll() is not None:
            pytest.fail(f"the run ended before a task ran on the second node:\n{driver.stdout.read()[-3000:]}")
        time.sleep(0.05)
    pytest.fail("no task ran on the second node")


# -- the lock, piece by piece -----------------------------------------------------------------------------------


def _foreign(out: Path, *, renewed_ago: float, generation: int = 1, pid: int = 4242, host: str = "elsewhere") -> Path:
    """A lock record written by a run on another host."""
    (out / "_lock").mkdir(parents=True, exist_ok=True)
    path = out / "_lock" / f"{generation:010d}.json"
    now = time.time()
    record = {"token": "theirs", "host": host, "boot": "b", "pid": pid, "pid_start": "", "attempt": 3}
    record.update(command="curate run p.yaml", since=now - 3600, renewed=now - renewed_ago, lease_s=60.0)
    path.write_text(json.dumps(record))
    return path


def test_a_live_lock_on_another_host_is_refused_with_who_and_how(tmp_path):
    out = tmp_path / "out"
    _foreign(out, renewed_ago=5)
    before = _snapshot(out)
    with pytest.raises(OutputError) as e:
        OutputLock(str(out)).acquire()
    assert "host elsewhere, pid 4242, attempt 3, since" in e.value.message and "renewed 5 s ago" in e.value.message
    assert "--take-over" in e.value.hint and "lease expires in 55 s" in e.value.hint
    assert _snapshot(out) == before


def test_an_expired_lease_is_taken_over_and_released(tmp_path, caplog):
    out = tmp_path / "out"
    old = _foreign(out, renewed_ago=61)
    with OutputLock(str(out)) as lock:
        assert lock.generation == 2 and not old.exists()
        record = json.loads((out / "_lock" / "0000000002.json").read_text())
        assert record["pid"] == os.getpid() and record["token"] == lock.token
    assert "taking over" in caplog.text and "lease expired" in caplog.text
    assert not (out / "_lock").exists()


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _foreign(out, renewed_ago=0, pid=dead.pid, host=socket.gethostname())
    record = json.loads((out / "_lock" / "0000000001.json").read_text())
    record["boot"] = lockmod.this_host()[1]
    (out / "_lock" / "0000000001.json").write_text(json.dumps(record))
    with OutputLock(str(out)) as lock:
        assert lock.generation == 2


def test_take_over_forces_a_foreign_lock_but_not_a_live_local_one(tmp_path):
    out = tmp_path / "out"
    _foreign(out, renewed_ago=1)
    with OutputLock(str(out), take_over=True) as lock:
        assert lock.generation == 2
        with pytest.raises(OutputError, match="live run on this host"):
            OutputLock(str(out), take_over=True).acquire()  # this very process holds it


def test_only_one_of_many_simultaneous_runs_gets_the_lock(tmp_path):
    out = str(tmp_path / "out")
    results = contend_for_lock(out)
    winners = [r for r in results if isinstance(r, OutputLock)]
    assert len(winners) == 1 and len(results) == 8
    winners[0].release()
    assert not (tmp_path / "out" / "_lock").exists()


def test_a_holder_that_lost_its_lock_stops_and_commits_nothing(tmp_path):
    out = tmp_path / "out"
    # Python's own SIGINT handling, as in a fresh `curate run` (an earlier test in this process, or Ray's
    # initialisation, may have left another handler, with which the interruption would not reach the sleep)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(OutputError, match="lost the lock"):
            with OutputLock(str(out), renew_s=0.05):
                _foreign(out, renewed_ago=0, generation=2)  # another run took the output over
                time.sleep(5)  # interrupted by the renewal thread well before this ends
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [p.name for p in (out / "_lock").iterdir()] == ["0000000002.json"]  # the new holder's, untouched
    out = tmp_path / "out2"
    lock = OutputLock(str(out), renew_s=3600).acquire()  # a holder that checks only before committing
    theirs = _foreign(out, renewed_ago=0, generation=lock.generation + 1)
    with pytest.raises(OutputError, match="taken over by host elsewhere"):
        lock.check()
    lock.release()
    assert [p.name for p in (out / "_lock").iterdir()] == [theirs.name]  # its own record gone, theirs untouched


def test_the_lock_on_object_storage_uses_exclusive_create(tmp_path):
    out = f"memory://lock-test-{os.getpid()}/out"
    with OutputLock(out) as lock:
        assert not lock.local and lock.generation == 1
        with pytest.raises(OutputError, match="is being written by"):
            OutputLock(out).acquire()
    import fsspec

    assert not fsspec.filesystem("memory").exists(f"/lock-test-{os.getpid()}/out/_lock/0000000001.json")


def test_a_run_on_a_locked_output_writes_nothing_and_a_failed_run_releases(workdir):
    out = workdir / "out"
    _foreign(out, renewed_ago=1)
    before = _snapshot(out)
    with pytest.raises(OutputError, match="is being written by another run"):
        engine.run(config.load("p.yaml"), runner="local", overwrite=True)
    assert _snapshot(out) == before
    shutil.rmtree(out)
    write_pipeline(workdir / "p.yaml", MATRIX_PIPE.replace("path: in", "path: nowhere"))
    with pytest.raises(InputError):
        engine.run(config.load("p.yaml", check_input=False), runner="local")
    assert not out.exists()  # the lock released, and no empty output folder left behind


# -- the input fingerprint --------------------------------------------------------------------------------------


def test_input_fingerprints_refuse_changed_and_gone_files_and_accept_added_ones(tmp_path):
    files = [str(write_docs(tmp_path / "in" / f"{k}.parquet", 5, start=5 * k)) for k in range(3)]
    state = RunState(str(tmp_path / "out"))
    state.check_inputs(files, committed=False)
    extra = str(write_docs(tmp_path / "in" / "9.parquet", 5, start=90))
    state.check_inputs(files + [extra], committed=True)  # added: read like the rest
    stat = os.stat(files[1])
    os.utime(files[1], ns=(0, 0))  # same bytes, other modification time: cannot be told from a rewrite
    with pytest.raises(InputError, match=r"1\.parquet changed"):
        state.check_inputs(files + [extra], committed=True)
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(InputError, match=r"0\.parquet is gone"):
        state.check_inputs(files[1:] + [extra], committed=True)
    state.check_inputs(files[1:], committed=False)  # nothing committed: the new input is simply recorded


# -- curate verify ----------------------------------------------------------------------------------------------


@pytest.fixture
def finished(workdir):
    assert main(RUN) == 0
    return workdir / "out"


def _verify(capsys, *args) -> tuple[int, str]:
    code = main(["verify", "out", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_verify_says_a_clean_output_is_clean(finished, capsys):
    code, text = _verify(capsys)
    assert code == 0 and "ok" in text and f"{MATRIX_DOCS} ids, none twice" in text and "no unlisted files" in text


def test_verify_finds_unlisted_files_and_fix_removes_them(finished, capsys):
    stray = [finished / "data" / "part-a9p0-00000-000.parquet", finished / "rejected" / "slow" / ".tmp-123.parquet"]
    stray.append(finished / "side" / "dedup" / "index" / "part-0.parquet")
    stray.append(finished / "elsewhere.parquet")
    for f in stray:
        f.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(next((finished / "data").glob("*.parquet")), f)
    (finished / "_checkpoint" / "0").mkdir(parents=True)  # run state a crash after _SUCCESS left
    code, text = _verify(capsys)
    assert code == 1 and text.count("unlisted: ") == 5 and "--fix" in text
    assert "unlisted: _checkpoint" in text and "unlisted: side/dedup/index/part-0.parquet" in text
    code, text = _verify(capsys, "--fix")
    assert code == 0 and text.count("removed: ") == 5
    assert not any(f.exists() for f in stray) and _verify(capsys)[0] == 0


def test_verify_finds_missing_and_damaged_shards(finished, capsys):
    shards = sorted((finished / "data").glob("*.parquet"))
    shards[0].unlink()
    data = bytearray(shards[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    shards[1].write_bytes(bytes(data))
    code, text = _verify(capsys, "--fix")  # --fix never touches a listed shard
    assert code == 1
    assert f"missing: data/{shards[0].name}" in text and f"damaged: data/{shards[1].name}" in text
    assert "--overwrite" in text and shards[1].exists()


def test_verify_finds_an_id_kept_and_rejected(finished, capsys):
    """A doubled document: a rejected document's copy committed (and listed) among the kept ones."""
    rejected = sorted((finished / "rejected" / "dedup").glob("*.parquet"))[0]
    kept_schema = pq.read_schema(next((finished / "data").glob("*.parquet")))
    row = pq.read_table(rejected).select(kept_schema.names).slice(0, 1).cast(kept_schema)
    path = finished / "data" / "part-a1p1-99999-000.parquet"
    pq.write_table(row, path)
    data = path.read_bytes()
    info = {"path": "data/" + path.name, "rows": 1, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = json.loads((finished / "manifest.json").read_text())
    manifest["shards"].append({**info, "kind": "kept", "stage": None})
    (finished / "manifest.json").write_text(json.dumps(manifest))
    code, text = _verify(capsys)
    doc = row.column("id")[0].as_py()
    assert code == 1 and f"duplicate id: {doc} occurs 2 times" in text and rejected.name in text
    assert "counts: the manifest lists" in text  # one kept row more than stats.json says


@pytest.mark.e2e
def test_verify_refuses_an_unfinished_output(workdir, capsys):
    proc = start(RUN, workdir, slow=True)
    wait_for(proc, _in_phase(workdir / "out", 0))
    code, text = _verify(capsys)
    assert code == 2 and "is being written by a run" in text
    _hit(proc, signal.SIGKILL)
    code, text = _verify(capsys)
    assert code == 2 and "unfinished run" in text


def test_id_hashes_are_equal_exactly_for_equal_strings():
    ids = pa.array(["", "a", "b", "ab", "ba", "doc-0001", "doc-0001", None, "é" * 5000, "é" * 5000 + "x"])
    h = id_hashes(ids.slice(1))  # a sliced array: offsets do not start at 0
    assert h[4] == h[5] and len(set(h.tolist())) == 8
    assert id_hashes(pa.array(["x"] * 3)).tolist() == [id_hashes(pa.array(["x"]))[0]] * 3
