"""Checkpoints load with weights_only=True: a pickled payload is refused unrun, damaged and old files are clear errors."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from train_util import sentences, tiny_yaml, write_output

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from curate.cli import main  # noqa: E402
from curate.errors import InputError  # noqa: E402
from curate.train.config import parse_config  # noqa: E402
from curate.train.loop import CHECKPOINT_FORMAT, load_checkpoint, rng_state, set_rng_state, train  # noqa: E402


def _touch(path: str) -> None:
    with open(path, "w") as fh:
        fh.write("pickled code ran")


class Payload:
    """Unpickling this calls _touch(marker): what a hostile checkpoint would do with os.system instead."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny run: RUN/ckpt.pt written by `curate train`."""
    root = tmp_path_factory.mktemp("ckpt")
    out = write_output(root / "out", sentences(200))
    cfg = parse_config(tiny_yaml(root / "run", out, max_steps=4, eval_every=0), "tiny.yaml")
    train(cfg)
    return root / "run"


def _copy_run(run_dir, dest):
    dest.mkdir()
    (dest / "ckpt.pt").write_bytes((run_dir / "ckpt.pt").read_bytes())
    return dest


def test_a_checkpoint_holds_only_tensors_and_plain_values(run_dir):
    ck = torch.load(run_dir / "ckpt.pt", weights_only=True)  # raises on anything else
    assert ck["format"] == CHECKPOINT_FORMAT and ck["step"] == 4
    assert isinstance(ck["rng"]["numpy"]["key"], torch.Tensor)


def test_rng_state_round_trips_exactly():
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    state = rng_state()
    want = (torch.rand(4), np.random.standard_normal(3), random.random())
    torch.rand(7), np.random.rand(5), random.random()
    set_rng_state(state)
    got = (torch.rand(4), np.random.standard_normal(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]


def test_a_pickled_payload_is_refused_and_never_runs(tmp_path, run_dir, capsys):
    marker = tmp_path / "ran"
    ck = torch.load(run_dir / "ckpt.pt", weights_only=True)
    ck["evals"] = [Payload(str(marker))]
    run = tmp_path / "hostile"
    run.mkdir()
    torch.save(ck, run / "ckpt.pt")
    # the premise: an ordinary (weights_only=False) load would run it
    torch.load(run / "ckpt.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(InputError, match=r"hostile/ckpt\.pt refused: .*test_train_checkpoint\._touch.*could run code"):
        load_checkpoint(str(run))
    assert not marker.exists()
    for argv in (["generate", str(run), "--prompt", "The cat"], ["eval", str(run), str(run / "ckpt.pt")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_a_truncated_checkpoint_names_the_file_and_the_fix(tmp_path, run_dir, capsys):
    run = _copy_run(run_dir, tmp_path / "cut")
    data = (run / "ckpt.pt").read_bytes()
    (run / "ckpt.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut/ckpt\.pt is damaged or not a checkpoint") as e:
        load_checkpoint(str(run))
    assert "--no-resume" in e.value.hint
    assert main(["generate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{run}/ckpt.pt is damaged" in err and "hint: " in err
    (run / "ckpt.pt").write_bytes(b"")
    with pytest.raises(InputError, match="is damaged or not a checkpoint"):
        load_checkpoint(str(run))


def test_an_old_format_checkpoint_is_refused_with_a_hint_to_train_again(tmp_path, run_dir):
    """Before format 2 the RNG state held numpy's pickled tuple. Such files are refused, not converted."""
    ck = torch.load(run_dir / "ckpt.pt", weights_only=True)
    del ck["format"]
    ck["rng"]["numpy"] = np.random.get_state()
    run = tmp_path / "old"
    run.mkdir()
    torch.save(ck, run / "ckpt.pt")
    with pytest.raises(InputError, match=r"old/ckpt\.pt was written by an older curate, .*numpy") as e:
        load_checkpoint(str(run))
    assert "--no-resume" in e.value.hint


def test_a_file_that_is_no_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "ckpt.pt")
    with pytest.raises(InputError, match="not a checkpoint written by `curate train`"):
        load_checkpoint(str(tmp_path))
    torch.save({"format": 99, "model": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(InputError, match="checkpoint format 99"):
        load_checkpoint(str(tmp_path))


def test_resume_refuses_a_hostile_checkpoint_too(tmp_path, run_dir):
    """`curate train` resuming from RUN/ckpt.pt goes through the same loader."""
    marker = tmp_path / "ran"
    run = _copy_run(run_dir, tmp_path / "resume")
    ck = torch.load(run / "ckpt.pt", weights_only=True)
    ck["losses"] = Payload(str(marker))
    torch.save(ck, run / "ckpt.pt")
    out = run_dir.parent / "out"
    cfg = parse_config(tiny_yaml(run, out, max_steps=6, eval_every=0), "tiny.yaml")
    with pytest.raises(InputError, match="refused"):
        train(cfg)
    assert not marker.exists() and not os.path.exists(run / "metrics.jsonl")
