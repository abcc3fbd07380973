"""A real Ray cluster: a head started with `ray start --head` on 127.0.0.1, jobs submitted both ways."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import USER_FILTERS, read_ids, write_docs, write_pipeline

pytestmark = [pytest.mark.cluster, pytest.mark.ray]

PIPE = """
name: on-cluster
input: {format: parquet, path: in}
output: {path: out, shard_rows: 50}
stages:
  - {id: lorem, uses: "user_filters:no_lorem"}
  - {id: dedup, uses: exact_dedup}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """`ray start --head` on 127.0.0.1 with the job API; stopped (its whole process group) afterwards."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port, dash = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("head") / "head.log"
    proc = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            f"--dashboard-port={dash}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=2",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # local clusters enable token auth (Ray >= 2.59)
    deadline = time.time() + 120
    while time.time() < deadline:
        ok = subprocess.run([ray_bin, "job", "list", "--address", address], env=env, capture_output=True)
        if ok.returncode == 0:
            break
        if proc.poll() is not None:
            pytest.fail(f"ray start --head exited:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the head's job API never came up:\n{log.read_text()[-3000:]}")
    yield {"address": address, "gcs": f"127.0.0.1:{port}", "env": env, "ray": ray_bin}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever did not stop on SIGTERM (gcs, raylet, dashboard)
    except ProcessLookupError:
        pass


@pytest.fixture
def job_dir(tmp_path):
    (tmp_path / "user_filters.py").write_text(USER_FILTERS)  # the user's own stage, shipped with the job
    write_docs(tmp_path / "in" / "a.parquet", 60)
    write_docs(tmp_path / "in" / "b.parquet", 60, start=60)
    write_pipeline(tmp_path / "p.yaml", PIPE)
    return tmp_path


def _check(out: Path) -> None:
    stats = json.loads((out / "stats.json").read_text())
    assert (out / "_SUCCESS").exists() and stats["conserved"] and stats["input_docs"] == 120
    assert stats["stages"][1]["reasons"] == {"lorem_ipsum": 18}
    assert len(read_ids(out)) == stats["output_docs"] > 0


def test_curate_submit_runs_the_pipeline_on_the_cluster(ray_head, job_dir):
    out = job_dir / "out-submit"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "curate.cli",
            "submit",
            "p.yaml",
            "--address",
            ray_head["address"],
            "--output",
            str(out),
        ],
        cwd=job_dir,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"},  # curate finds the token itself
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "120 documents in" in proc.stdout  # the job's logs are streamed back
    assert "SUCCEEDED" in proc.stderr
    _check(out)


def test_ray_job_submit_runs_curate(ray_head, job_dir):
    out = job_dir / "out-ray-job"
    proc = subprocess.run(
        [
            ray_head["ray"],
            "job",
            "submit",
            "--address",
            ray_head["address"],
            "--working-dir",
            ".",
            "--",
            "curate",
            "run",
            "p.yaml",
            "--input",
            str(job_dir / "in"),
            "--output",
            str(out),
        ],
        cwd=job_dir,
        capture_output=True,
        text=True,
        timeout=600,
        env=ray_head["env"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    _check(out)


def test_a_failing_job_returns_its_exit_code(ray_head, job_dir):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "curate.cli",
            "submit",
            "p.yaml",
            "--address",
            ray_head["address"],
            "--input",
            str(job_dir / "missing-on-the-cluster"),
            "--output",
            str(job_dir / "never"),
        ],
        cwd=job_dir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "does not exist" in proc.stdout  # the job's one-line error, streamed back


def test_curate_run_joins_the_cluster_with_address(ray_head, job_dir):
    out = job_dir / "out-address"
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", "p.yaml", "--address", ray_head["gcs"], "--output", str(out)],
        cwd=job_dir,
        capture_output=True,
        text=True,
        timeout=600,
        env=ray_head["env"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"ray: cluster {ray_head['gcs']}" in proc.stderr
    _check(out)
