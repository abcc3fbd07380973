"""Shared fixtures: one local Ray per test session, the corpus location, a run's folder, the sample-crawl runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The shared support modules hold assertions (faults.assert_exactly_once, ...): rewritten like a test module's, so
# that a failure shows its values. Registered before anything imports them.
pytest.register_assert_rewrite("faults", "helpers", "pages", "report_runs", "stage_util", "train_util")

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CURATE_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole session (num_cpus=2), shut down at the end: the embedded instance a `curate run`
    starts (curate.engine.ray.ensure_ray), so the Ray tests run what a user gets by default."""
    ray = pytest.importorskip("ray")
    from ray.data import DataContext

    from curate.engine.ray import ensure_ray

    ensure_ray(num_cpus=2)
    DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus, or skip the test when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture
def make_workdir(tmp_path, monkeypatch):
    """make_workdir(files=..., docs=..., pipeline=..., dirs=...): tmp_path, made the current directory, with a run's
    files (helpers.build_workdir: a user's stage module, Parquet input, p.yaml); returns the folder."""
    from helpers import build_workdir

    def make(**kwargs) -> Path:
        monkeypatch.chdir(tmp_path)
        return build_workdir(tmp_path, **kwargs)

    return make


@pytest.fixture(scope="session")
def sample_runs(tmp_path_factory) -> dict[str, Path]:
    """Two local runs over the same 200-page sample crawl (report_runs.make_sample_runs), made once per session
    for tests/report/test_report.py and test_inspect.py."""
    from report_runs import make_sample_runs

    return make_sample_runs(tmp_path_factory.mktemp("sample-runs"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server on 127.0.0.1 for the whole session (tests/s3_server.py: SeaweedFS from PyPI), reached through
    the AWS_* environment set at collection; skips the test where it cannot start. Stopped at the end."""
    from s3_server import S3Server, Unavailable

    try:
        server = S3Server(tmp_path_factory.mktemp("s3-server"), _S3_PORT.get("port"))
    except Unavailable as e:
        pytest.skip(f"no S3 server: {e}")
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new empty bucket on the session's S3 server; its name."""
    return s3_server.bucket()


_S3_PORT: dict[str, int] = {}
NOT_UNIT = {"ray", "e2e", "corpus", "cluster", "slow"}


def pytest_collection_modifyitems(config, items):
    if any("s3_server" in getattr(item, "fixturenames", ()) for item in items):
        # The S3 endpoint and credentials go into the environment before any test starts Ray: Ray workers keep the
        # environment their raylet started with, and they read and write s3:// paths too.
        from s3_server import reserve

        _S3_PORT["port"] = reserve()
    for item in items:
        # Tests that use the ray_session fixture are Ray tests even if someone forgot the marker.
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if "corpus" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.corpus)
        # Everything else is the fast unit suite: `pytest -m unit` (seconds, no Ray).
        if not NOT_UNIT & {m.name for m in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)
