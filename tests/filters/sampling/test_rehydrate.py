"""Rehydration (FineWeb-2's cluster-size upsampling) in the `repeat` stage: `by: dedup_cluster_size` with a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_pipeline

from curate import config, engine
from curate.errors import ConfigError
from curate_filters.sampling.sample import Repeat, copies_for_sizes, fineweb2_weights, rehydration_table

# FineWeb-2's published kor_Hang weights (huggingface/fineweb-2 d0defb24, misc/rehydration/weights/up_to_XX_reps.json)
KOR_UP_TO_10 = {1: 1, 2: 5, 3: 6, 4: 8, 6: 9, 9: 10, 13: 9, 17: 8, 21: 7, 26: 6, 34: 5, 35: 6, 36: 5, 41: 6, 45: 5,
                48: 4, 56: 3, 77: 2, 90: 1}  # fmt: skip
KOR_UP_TO_3 = {1: 1, 2: 2, 5: 3, 20: 2, 63: 1}
KOR_UP_TO_5 = {1: 1, 2: 3, 4: 4, 6: 5, 16: 4, 26: 3, 48: 2, 87: 1}
KOR_DISTRIBUTION = (
    Path(__file__).resolve().parents[3].parent
    / "shared/corpus/reference-fineweb2-kor/rehydration-distribution-kor_Hang.json"
)

# A distribution small enough to work by hand: 6 sizes and the tail (7+), global removal rate 60%.
SMALL = {
    "cluster_sizes": [1, 2, 3, 4, 5, 6],
    "cluster_removal_rates": [80.0, 40.0, 20.0, 40.0, 60.0, 80.0],
    "tail_threshold": 7,
    "tail_removal_rate": 90.0,
    "global_removal_rate": 60.0,
}


def test_weights_from_a_distribution_by_hand():
    # rates >= 60 -> 1; 1 + 9 (r - 60) / (20 - 60): 40 -> 5.5, 20 -> 10: reps [1, 5.5, 10, 5.5, 1, 1, 1]
    # 5-wide mean, zero-padded, the two values at each edge unsmoothed: [1, 5.5, 4.6, 4.6, 3.7, 1, 1]
    # rounded half to even: [1, 6, 5, 5, 4, 1, 1]; equal neighbours merged by their first size
    assert fineweb2_weights(SMALL, 10) == {1: 1, 2: 6, 3: 5, 5: 4, 6: 1}
    # max 3: reps [1, 2, 3, 2, 1, 1, 1] -> means 1.8, 1.8, 1.6 at sizes 3..5 -> [1, 2, 2, 2, 2, 1, 1]
    assert fineweb2_weights(SMALL, 3) == {1: 1, 2: 2, 6: 1}


def test_no_size_below_the_global_rate_repeats_nothing():
    flat = {**SMALL, "cluster_removal_rates": [70.0] * 6, "tail_removal_rate": 70.0}
    assert fineweb2_weights(flat, 10) == {1: 1}


@pytest.mark.skipif(not KOR_DISTRIBUTION.exists(), reason="../shared/corpus/reference-fineweb2-kor not present")
def test_korean_distribution_gives_fineweb2s_published_weights():
    dist = json.loads(KOR_DISTRIBUTION.read_text())
    assert fineweb2_weights(dist, 10) == KOR_UP_TO_10
    assert fineweb2_weights(dist, 5) == KOR_UP_TO_5
    assert fineweb2_weights(dist, 3) == KOR_UP_TO_3
    keys, values = rehydration_table(str(KOR_DISTRIBUTION))  # a distribution file, max_repeats 10
    assert dict(zip(keys.tolist(), values.tolist())) == KOR_UP_TO_10


def test_step_lookup_as_fineweb2s_rehydrater():
    steps = rehydration_table({1: 1, 2: 5, 9: 10, 90: 1})
    sizes = [1, 2, 3, 8, 9, 89, 90, 5000, None, 0]
    assert copies_for_sizes(steps, sizes).tolist() == [1, 5, 5, 5, 10, 10, 1, 1, 1, 1]
    # keys in any order, as strings (a JSON file's keys)
    assert copies_for_sizes(rehydration_table({"9": 10, "1": 1, "2": 5}), [2, 100]).tolist() == [5, 10]


def test_the_stage_multiplies_copies():
    batch = pa.table({"id": ["a", "b", "c", "d"], "text": ["x"] * 4, "dedup_cluster_size": [1, 3, 12, None],
                      "copies": pa.array([1, 2, 1, 1], pa.int32())})  # fmt: skip
    stage = Repeat(by="dedup_cluster_size", table=KOR_UP_TO_10)
    assert stage.columns().input == ("id", "dedup_cluster_size")
    out = stage.map_batch(batch)
    assert out.column("copies").to_pylist() == [1, 2 * 6, 10, 1]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="either"):
        Repeat(by="dedup_cluster_size", times={"a": 2}, table={1: 1})
    with pytest.raises(ConfigError, match="either"):
        Repeat()
    with pytest.raises(ConfigError, match="needs a `table`"):
        Repeat(by="dedup_cluster_size")
    with pytest.raises(ConfigError, match="copies >= 1"):
        Repeat(by="dedup_cluster_size", table={1: 0})
    with pytest.raises(ConfigError, match="cannot read"):
        Repeat(by="dedup_cluster_size", table=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="neither"):
        Repeat(by="dedup_cluster_size", table=str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="integer"):
        Repeat(by="dedup_cluster_size", table={"one": 2})


def test_rehydration_in_a_pipeline_from_a_distribution_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    sizes = [1, 2, 3, 4, 5, 6, 7, 40]
    rows = [{"id": f"d{i}", "text": f"document {i}", "dedup_cluster_size": s} for i, s in enumerate(sizes)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "a.parquet")
    (tmp_path / "dist.json").write_text(json.dumps(SMALL))
    write_pipeline(
        tmp_path / "p.yaml",
        """
        name: rehydrate
        input: {format: parquet, path: in}
        output: {path: out}
        stages:
          - {id: rehydrate, uses: repeat, with: {by: dedup_cluster_size, table: dist.json}}
        """,
    )
    stats = engine.run(config.load("p.yaml"), runner="local")
    table = pq.read_table(tmp_path / "out" / "data")
    expected = [1, 6, 5, 5, 4, 1, 1, 1]  # {1: 1, 2: 6, 3: 5, 5: 4, 6: 1}
    assert table.num_rows == sum(expected) and stats["copies"] == sum(expected) - len(rows)
    ids = table.column("id").to_pylist()
    counts = [sum(i.split("#")[0] == f"d{k}" for i in ids) for k in range(len(rows))]
    assert counts == expected and np.all(np.array(counts) >= 1)
