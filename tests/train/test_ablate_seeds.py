"""`curate ablate --seeds`: each arm once per seed, one table row per arm with the spread, per-seed values kept."""

from __future__ import annotations

import json

import pytest
from train_util import ablate_args, sentences, tiny_yaml

from curate.cli import main
from curate.errors import ConfigError

pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from curate.train.ablate import ablate  # noqa: E402
from curate.train.config import load_config  # noqa: E402


@pytest.mark.e2e
def test_ablate_seeds(tmp_path, capsys):
    args = ablate_args(tmp_path, 200, max_steps=8, eval_every=4, checkpoint_every=4)
    cfg, raw, filtered = args[1:4]
    (tmp_path / "held.txt").write_text(" ".join(sentences(30, seed=11)))
    args += ["--heldout", str(tmp_path / "held.txt"), "--seeds", "0,1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert text.startswith(table.split("\n")[0])
    rows = [line for line in table.split("\n\n")[0].splitlines()[2:]]
    assert [r.split(" | ")[0] for r in rows] == ["| raw", "| filtered"]  # one row per arm, not per run
    assert "seed 0" in table and "seed 1" in table and "±" in table and "min-max" in table

    report = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert report["seeds"] == [0, 1] and len(report["runs"]) == 4
    arms = {a["name"]: a for a in report["arms"]}
    runs = {(r["name"], r["seed"]): r for r in report["runs"]}
    for name in ("raw", "filtered"):
        per_seed = arms[name]["heldout_loss_per_seed"]
        assert per_seed == {"0": runs[(name, 0)]["heldout_loss"], "1": runs[(name, 1)]["heldout_loss"]}
        assert per_seed["0"] != per_seed["1"]  # another seed: other initial weights and data order
        assert arms[name]["heldout_loss"] == pytest.approx((per_seed["0"] + per_seed["1"]) / 2)
        lo, hi = sorted(per_seed.values())
        assert (arms[name]["heldout_loss_min"], arms[name]["heldout_loss_max"]) == (lo, hi)
        assert arms[name]["heldout_loss_std"] == pytest.approx(abs(hi - lo) / 2**0.5)
        assert arms[name]["tokens_seen"] == 8 * 8 * 32
    # same seed, same tokenizer: both arms start from identical weights (equal step-0 loss); other seeds differ
    assert runs[("raw", 0)]["curve"][0][1] == runs[("filtered", 0)]["curve"][0][1]
    assert runs[("raw", 0)]["curve"][0][1] != runs[("raw", 1)]["curve"][0][1]
    for name in ("raw", "filtered"):
        for seed in (0, 1):
            assert (tmp_path / "abl" / name / f"seed-{seed}" / "ckpt.pt").exists()

    # a rerun resumes (nothing retrained, same report); the same seed alone in a new directory gives the same loss
    mtime = (tmp_path / "abl" / "raw" / "seed-1" / "ckpt.pt").stat().st_mtime_ns
    assert main(args) == 0
    assert (tmp_path / "abl" / "raw" / "seed-1" / "ckpt.pt").stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())["runs"] == report["runs"]
    conf = load_config(cfg)
    again = ablate(conf, [raw, filtered], str(tmp_path / "one"), heldout=[str(tmp_path / "held.txt")],
                   seeds=[1])  # fmt: skip
    assert [(r.name, r.seed) for r in again] == [("raw", 1), ("filtered", 1)]
    assert again[0].heldout.loss == runs[("raw", 1)]["heldout_loss"]


def test_seeds_must_be_distinct(tmp_path, capsys):
    conf_path = tmp_path / "c.yaml"
    conf_path.write_text(tiny_yaml(tmp_path / "unused"))
    with pytest.raises(ConfigError, match="distinct seeds"):
        ablate(load_config(str(conf_path)), ["a", "b"], str(tmp_path / "x"), seeds=[1, 1])
    with pytest.raises(SystemExit):
        main(["ablate", str(conf_path), "a", "b", "--seeds", "1,x"])
    assert "invalid _seed_list value" in capsys.readouterr().err
