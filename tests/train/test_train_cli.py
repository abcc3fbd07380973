"""The trainer's commands end to end: train, eval, generate, tokenize, ablate; and `curate --help` without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from train_util import ablate_args, junk, sentences, tiny_yaml, write_output

from curate.cli import main
from curate.train.ablate import arm_names
from curate.train.data import is_val

pytest.importorskip("torch")
pytest.importorskip("tokenizers")


def test_help_does_not_import_torch():
    code = (
        "import sys; from curate.cli import build_parser; p = build_parser(); "
        "names = p._subparsers._group_actions[0].choices; "
        "assert {'train', 'eval', 'generate', 'ablate', 'tokenize'} <= set(names), names; "
        "assert 'torch' not in sys.modules and 'tokenizers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were not installed
    assert main(["train", "tiny-cpu", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the package 'torch' is needed for the trainer" in err and "curate[train]" in err


def test_arm_names():
    assert arm_names(["out/raw", "out/fineweb/"]) == ["raw", "fineweb"]
    assert arm_names(["a/x", "b/x"]) == ["x", "x-2"]
    assert arm_names(["a", "b"], ["one", "two"]) == ["one", "two"]


def test_train_missing_data_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(tiny_yaml(tmp_path / "run"))
    assert main(["train", str(cfg)]) == 2
    assert "no training data: give --data" in capsys.readouterr().err


@pytest.mark.e2e
def test_train_eval_generate_tokenize(tmp_path, capsys):
    out = write_output(tmp_path / "out", sentences(300))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(tiny_yaml(tmp_path / "run"))
    assert main(["train", str(cfg), "--data", str(out), "--set", "train.max_steps=25"]) == 0
    text = capsys.readouterr().out
    assert "25 steps" in text and "val loss" in text
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "eval" not in m] == [5, 10, 15, 20, 25]
    assert all(m["tokens_per_s"] > 0 and m["mfu"] is None for m in metrics if "eval" not in m)  # no MFU on CPU

    (tmp_path / "held.txt").write_text(" ".join(sentences(20, seed=9)))
    (tmp_path / "noise.txt").write_text(" ".join(junk(40)))
    assert main(["eval", str(tmp_path / "run"), str(tmp_path / "held.txt"), str(tmp_path / "noise.txt"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    held, noise = rows
    assert held["docs"] == 1 and held["tokens"] > 100
    assert held["loss"] < noise["loss"]  # the model learnt the grammar, not the boilerplate
    assert held["perplexity"] == pytest.approx(2.718281828 ** held["loss"], rel=1e-6)

    assert main(["generate", str(tmp_path / "run"), "--prompt", "The cat", "-n", "12", "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("The cat") and len(sample) > len("The cat") + 5

    assert (
        main(["tokenize", str(out), "--out", str(tmp_path / "tok"), "--vocab-size", "280", "--parallel", "local"]) == 0
    )
    assert "train tokens" in capsys.readouterr().out
    assert (tmp_path / "tok" / "tokenizer.json").exists() and (tmp_path / "tok" / "index.json").exists()


@pytest.mark.e2e
def test_ablate_two_outputs(tmp_path, capsys):
    args = ablate_args(tmp_path, 300, max_steps=20, eval_every=10)
    (tmp_path / "held.txt").write_text(" ".join(sentences(30, seed=11)))
    assert main(args + ["--heldout", str(tmp_path / "held.txt")]) == 0
    text = capsys.readouterr().out
    assert "| raw |" in text and "| filtered |" in text and "val loss on filtered" in text
    report = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    arms = {a["name"]: a for a in report["arms"]}
    assert arms["raw"]["tokens_seen"] == arms["filtered"]["tokens_seen"] == 20 * 8 * 32  # identical budgets
    assert arms["raw"]["train_tokens"] > arms["filtered"]["train_tokens"]
    assert [t for t, _ in arms["raw"]["curve"]] == [0, 2560, 5120]
    # same seed, same tokenizer: both arms start from identical weights, so their step-0 held-out loss is equal
    assert arms["raw"]["curve"][0][1] == arms["filtered"]["curve"][0][1]
    # at an equal budget, the model that saw only clean text is better on clean held-out text
    assert arms["filtered"]["heldout_loss"] < arms["raw"]["heldout_loss"]
    assert (tmp_path / "abl" / "ablation.md").read_text().startswith("| arm |")
    ckpt_mtime = (tmp_path / "abl" / "raw" / "ckpt.pt").stat().st_mtime_ns
    assert main(args + ["--heldout", str(tmp_path / "held.txt")]) == 0  # a rerun resumes: nothing is retrained
    assert (tmp_path / "abl" / "raw" / "ckpt.pt").stat().st_mtime_ns == ckpt_mtime
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())["arms"] == report["arms"]


@pytest.mark.e2e
def test_ablate_heldout_val_split_of_a_shared_output(tmp_path, capsys):
    args = ablate_args(tmp_path, 300, max_steps=10, eval_every=5)
    assert main(args + ["--heldout", str(tmp_path / "filtered"), "--heldout-split", "val"]) == 0
    assert "(val split)" in capsys.readouterr().out
    report = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    arms = {a["name"]: a for a in report["arms"]}
    # the filtered output's validation documents are exactly the pooled set's clean part: no arm trained on them
    assert report["heldout"]["docs"] == sum(1 for i in range(300) if is_val(f"d-{i}", 0.1))
    assert arms["raw"]["heldout_loss"] == pytest.approx(arms["raw"]["val_losses"]["filtered"], rel=1e-6)


def test_an_output_that_kept_nothing_is_an_empty_input(tmp_path, capsys, monkeypatch):
    """A finished output with no kept document (no OUT/data/ at all) reads as no documents: tokenize writes empty
    shards, report renders, ablate trains the other arms and lists this one as not trained, and train says there
    is nothing to train on."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["too short", "also short"]}), tmp_path / "in" / "a.parquet")
    (tmp_path / "p.yaml").write_text(
        "name: nothing\ninput: {format: parquet, path: in}\noutput: {path: empty}\n"
        "stages:\n  - {id: gq, uses: gopher_quality}\n"
    )
    assert main(["run", "p.yaml", "--runner", "local"]) == 0
    assert not (tmp_path / "empty" / "data").exists() and (tmp_path / "empty" / "_SUCCESS").exists()
    assert main(["tokenize", "empty", "--out", "tok"]) == 0
    assert "0 train tokens (0 docs)" in capsys.readouterr().out
    assert main(["tokenize", "empty", "--out", "tokm", "--format", "megatron"]) == 0
    assert main(["report", "empty"]) == 0 and (tmp_path / "empty" / "report.html").is_file()
    full = write_output(tmp_path / "full", sentences(200, seed=3))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(tiny_yaml(tmp_path / "unused"))
    capsys.readouterr()
    assert main(["ablate", str(cfg), "empty", str(full), "--out", "abl"]) == 0
    out = capsys.readouterr().out
    assert "arm empty (empty): no training tokens" in out and "| full |" in out
    report = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [a["name"] for a in report["arms"]] == ["full"] and report["untrained"][0]["name"] == "empty"
    assert main(["ablate", str(cfg), "empty", "empty", "--names", "e1,e2", "--out", "abl2"]) == 2
    assert "no ablation arm has training tokens" in capsys.readouterr().err
    assert main(["train", str(cfg), "--set", "data.path=empty", "--set", "out=run-empty"]) == 2
    err = capsys.readouterr().err
    assert "token" in err and "Traceback" not in err
