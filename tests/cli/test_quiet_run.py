"""A default run prints curate's lines only: no Ray INFO lines or token notice, and a stage's warning once."""

from __future__ import annotations

import pytest
from helpers import parts, run_curate

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
def workdir(make_workdir):
    return make_workdir(
        files={"warn_stage.py": WARNING_STAGE},
        docs=parts(3, 30),
        pipeline="""
        name: quiet
        input: {format: parquet, path: in}
        output: {path: out}
        engine: {batch_rows: 10}
        stages:
          - {id: warns, uses: "warn_stage:Warns"}
        """,
    )


def _run(workdir, *flags):
    return run_curate(*flags, "run", "p.yaml", "--overwrite", cwd=workdir, timeout=240)


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
