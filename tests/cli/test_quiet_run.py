"""A default run prints curate's lines only: no Ray INFO lines or token notice, and a stage's warning once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import write_docs, write_pipeline

pytestmark = [pytest.mark.ray, pytest.mark.e2e]

WARNING_STAGE = '''
import logging

import curate

log = logging.getLogger("curate.user")


class Warns(curate.Filter):
    """Warns in setup() (as url_filter does without a blocklist), in every worker that sets it up."""

    def setup(self):
        log.warning("no word list given: keeping every document")

    def reject(self, doc):
        return None
'''

RAY_NOISE = ("streaming_executor", "Token authentication", "dataset.py", "Execution plan of Dataset", "(raylet)")


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "warn_stage.py").write_text(WARNING_STAGE)
    for k in range(3):
        write_docs(tmp_path / "in" / f"part{k}.parquet", 30, start=30 * k)
    write_pipeline(
        tmp_path / "p.yaml",
        """
        name: quiet
        input: {format: parquet, path: in}
        output: {path: out}
        engine: {batch_rows: 10}
        stages:
          - {id: warns, uses: "warn_stage:Warns"}
        """,
    )
    return tmp_path


def _run(workdir, *flags):
    cmd = [sys.executable, "-m", "curate.cli", *flags, "run", "p.yaml", "--overwrite"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=240)


def test_default_run_prints_no_ray_lines_and_each_warning_once(workdir):
    proc = _run(workdir)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert err.count("no word list given") == 1, err
    assert not [line for line in err.splitlines() if any(n in line for n in RAY_NOISE)], err
    assert "90 documents in, 90 kept" in proc.stdout


def test_verbose_run_shows_rays_lines(workdir):
    proc = _run(workdir, "-v")
    assert proc.returncode == 0, proc.stderr
    assert "Execution plan of Dataset" in proc.stderr
    assert "pid=" in proc.stderr  # the workers' own log lines, forwarded by Ray
