"""Shared fixtures: one local Ray per test session, the corpus location, small input files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


NOT_UNIT = {"ray", "e2e", "corpus", "cluster", "slow"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        # Tests that use the ray_session fixture are Ray tests even if someone forgot the marker.
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if "corpus" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.corpus)
        # Everything else is the fast unit suite: `pytest -m unit` (seconds, no Ray).
        if not NOT_UNIT & {m.name for m in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)
