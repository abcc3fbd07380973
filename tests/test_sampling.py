"""sample: a hash of (seed, id) decides, so the kept set is the same on any runner, worker count and batch size."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError
from filters.sampling import Sample

PIPE = """
name: sample
input: {format: parquet, path: in}
output: {path: OUT}
engine: {batch_rows: BATCH, max_workers: WORKERS}
stages:
  - {id: s, uses: sample, with: {rate: 0.3, seed: 17}}
"""

N = 10_000


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    for k in range(4):
        ids = [f"doc-{i:06d}" for i in range(k, N, 4)]
        pq.write_table(pa.table({"id": ids, "text": [f"text of {i}" for i in ids]}), tmp_path / "in" / f"p{k}.parquet")
    return tmp_path


def _run(workdir, runner, batch=1000, workers=1, name=None):
    out = name or f"out-{runner}-{batch}-{workers}"
    body = PIPE.replace("OUT", out).replace("BATCH", str(batch)).replace("WORKERS", str(workers))
    pipe = write_pipeline(workdir / f"{out}.yaml", body)
    stats = engine.run(config.load(str(pipe)), runner=runner)
    kept = sorted(pq.read_table(workdir / out / "data").column("id").to_pylist())
    return kept, stats


def test_rate_within_two_percent_and_identical_across_runs(workdir):
    first, stats = _run(workdir, "local", name="a")
    assert abs(len(first) / N - 0.3) <= 0.02
    assert stats["stages"][1]["reasons"] == {"not_sampled": N - len(first)}
    again, _ = _run(workdir, "local", name="b")
    assert again == first
    rebatched, _ = _run(workdir, "local", batch=37, name="c")
    assert rebatched == first


@pytest.mark.ray
def test_identical_on_both_runners_and_worker_counts(workdir, ray_session):
    local, _ = _run(workdir, "local")
    one, _ = _run(workdir, "ray", batch=500, workers=1)
    two, _ = _run(workdir, "ray", batch=128, workers=2)
    assert abs(len(local) / N - 0.3) <= 0.02
    assert one == local and two == local


def test_seed_and_rate():
    table = pa.table({"id": [f"d{i}" for i in range(2000)], "text": ["x"] * 2000})
    a = Sample(rate=0.5, seed=1).apply(table).reasons.to_pylist()
    b = Sample(rate=0.5, seed=2).apply(table).reasons.to_pylist()
    assert a != b
    # a lower rate keeps a subset of what a higher rate keeps (same seed): samples nest
    low = Sample(rate=0.2, seed=1).apply(table).reasons.to_pylist()
    assert all(x is not None for x, y in zip(low, a) if y is not None)
    assert Sample(rate=0.0).apply(table).reasons.null_count == 0
    assert Sample(rate=1.0).apply(table).reasons is None
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Sample(rate=1.5)
