"""A real Ray cluster: a head started with `ray start --head` on 127.0.0.1, jobs submitted both ways."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import USER_FILTERS, free_port, read_ids, run_curate

pytestmark = [pytest.mark.cluster, pytest.mark.ray]

PIPE = """
name: on-cluster
input: {format: parquet, path: in}
output: {path: out, shard_rows: 50}
stages:
  - {id: lorem, uses: "user_filters:no_lorem"}
  - {id: dedup, uses: exact_dedup}
"""


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """`ray start --head` on 127.0.0.1 with the job API; stopped (its whole process group) afterwards."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port, dash = free_port(), free_port()
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
            # not the default 52365: an embedded Ray of this session (ray_session) may hold it already, and the
            # head's job agent then never comes up ("No available agent to submit job")
            f"--dashboard-agent-listen-port={free_port()}",
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
def job_dir(make_workdir):
    files = {"user_filters.py": USER_FILTERS}  # the user's own stage, shipped with the job
    return make_workdir(files=files, docs={"in/a.parquet": 60, "in/b.parquet": 60}, pipeline=PIPE)


def _check(out: Path) -> None:
    stats = json.loads((out / "stats.json").read_text())
    assert (out / "_SUCCESS").exists() and stats["conserved"] and stats["input_docs"] == 120
    assert stats["stages"][1]["reasons"] == {"lorem_ipsum": 18}
    assert len(read_ids(out)) == stats["output_docs"] > 0


def test_curate_submit_runs_the_pipeline_on_the_cluster(ray_head, job_dir):
    out = job_dir / "out-submit"
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # curate finds the token itself
    proc = run_curate("submit", "p.yaml", "--address", ray_head["address"], "--output", str(out), cwd=job_dir, env=env)
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
    args = ["submit", "p.yaml", "--address", ray_head["address"], "--input", str(job_dir / "missing-on-the-cluster")]
    proc = run_curate(*args, "--output", str(job_dir / "never"), cwd=job_dir)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "does not exist" in proc.stdout  # the job's one-line error, streamed back


def test_curate_run_joins_the_cluster_with_address(ray_head, job_dir):
    out = job_dir / "out-address"
    args = ["run", "p.yaml", "--address", ray_head["gcs"], "--output", str(out)]
    proc = run_curate(*args, cwd=job_dir, env=ray_head["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"ray: cluster {ray_head['gcs']}" in proc.stderr
    _check(out)


def test_a_python_run_on_a_cluster_after_one_on_the_embedded_ray_goes_to_the_cluster(ray_head, job_dir):
    """curate.run twice in one process (a notebook): first on the embedded Ray, then with address= the cluster."""
    script = f"""
import curate
first = curate.run("p.yaml", output="out-embedded")
second = curate.run("p.yaml", output="out-cluster", address="{ray_head["gcs"]}")
import ray
print("GCS", ray.get_runtime_context().gcs_address)
print("DOCS", first["output_docs"], second["output_docs"])
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=job_dir, capture_output=True, text=True, timeout=600, env=ray_head["env"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    port = ray_head["gcs"].rsplit(":", 1)[1]  # (Ray reports the head by its node address, not 127.0.0.1)
    gcs = proc.stdout.split("GCS ")[1].split()[0]
    assert gcs.rsplit(":", 1)[1] == port, proc.stdout
    first, second = proc.stdout.split("DOCS ")[1].split()
    assert first == second
    _check(job_dir / "out-cluster")
