"""Training: the loss falls, resume is exact, the schedule, decay groups, accumulation, configs, CPU precision."""

from __future__ import annotations

import contextlib
import math

import pytest
from train_util import sentences, tiny_yaml, write_output

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from curate.errors import ConfigError  # noqa: E402
from curate.train.config import LoopConfig, load_config, parse_config  # noqa: E402
from curate.train.data import input_files, iter_texts  # noqa: E402
from curate.train.loop import (  # noqa: E402
    autocast,
    configure_optimizer,
    lr_at,
    model_from_checkpoint,
    prepare_data,
    resolve_dtype,
    train,
)
from curate.train.model import LLaMA, ModelConfig  # noqa: E402
from curate.train.tokenizer import train_bpe  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    out = write_output(root / "out", sentences(400), shards=2)
    tok = train_bpe(iter_texts(input_files(str(out))), vocab_size=300)
    tok.save(root / "tokenizer.json")
    return out, root / "tokenizer.json"


def config(tmp_path, data, name="run", **train_kw):
    out, tok_file = data
    text = tiny_yaml(tmp_path / name, out, **train_kw).replace(
        "tokenizer:\n", f"tokenizer:\n  path: {str(tok_file)!r}\n"
    )
    return parse_config(text, f"{name}.yaml")


def test_training_loss_falls(tmp_path, data):
    res = train(config(tmp_path, data, max_steps=40))
    first, last = sum(res.train_losses[:5]) / 5, sum(res.train_losses[-5:]) / 5
    assert res.steps == 40 and res.tokens == 40 * 8 * 32
    assert last < first - 1.0, (first, last)
    vals = [e["loss"] for e in res.evals if e["set"] == "val"]
    assert len(vals) == 5 and vals[-1] < vals[0] - 1.0  # steps 0, 10, 20, 30, 40
    assert math.log(300) - 0.5 < res.train_losses[0] < math.log(300) + 0.5  # starts near uniform over the vocab


def test_resume_continues_the_same_loss_curve(tmp_path, data):
    whole = train(config(tmp_path, data, "whole", max_steps=30))
    cfg = config(tmp_path, data, "parts", max_steps=30)
    part = train(cfg, until_step=13)  # not a multiple of checkpoint_every: the stop writes its own checkpoint
    assert part.steps == 13
    resumed = train(cfg)
    assert resumed.steps == 30
    assert resumed.train_losses == whole.train_losses  # bit for bit: weights, optimizer, data position, RNG
    assert resumed.evals == whole.evals
    a, _, _ = model_from_checkpoint(str(tmp_path / "whole"))
    b, _, _ = model_from_checkpoint(str(tmp_path / "parts"))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    again = train(cfg)  # a finished run resumes to nothing
    assert again.steps == 30 and again.train_losses == whole.train_losses


def test_no_resume_starts_over(tmp_path, data):
    cfg = config(tmp_path, data, max_steps=6, checkpoint_every=3)
    train(cfg, until_step=3)
    fresh = train(cfg, resume=False)
    assert len(fresh.train_losses) == 6


def test_grad_accumulation_matches_a_big_batch(tmp_path, data):
    big = train(config(tmp_path, data, "big", max_steps=3, batch_size=8, grad_accum=1, eval_every=0))
    small = train(config(tmp_path, data, "small", max_steps=3, batch_size=4, grad_accum=2, eval_every=0))
    # the loader hands out the same windows in the same order, so the gradients agree up to float rounding
    assert big.train_losses == pytest.approx(small.train_losses, rel=1e-5)


def test_lr_schedule_warmup_then_cosine():
    t = LoopConfig(max_steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    lrs = [lr_at(s, t) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lrs[100] == pytest.approx(0.1)


def test_weight_decay_groups():
    model = LLaMA(ModelConfig(vocab_size=64, dim=16, n_layers=2, n_heads=2, multiple_of=16))
    opt = configure_optimizer(model, LoopConfig(max_steps=1, weight_decay=0.1), torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(no_decay["params"]) == 2 * 2 + 1  # two norms per block and the final norm
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()  # tied: once


def test_cpu_precision_is_float32():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert isinstance(autocast(cpu, torch.float32), contextlib.nullcontext)
    with pytest.raises(ConfigError, match="bfloat16"):
        resolve_dtype("bfloat16", cpu)


def test_config_errors_name_file_and_line(tmp_path):
    good = tiny_yaml(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: train: unknown key 'max_step' \(did you mean 'max_steps'"):
        parse_config(good.replace("max_steps", "max_step"), "c.yaml")
    with pytest.raises(ConfigError, match="give exactly one budget"):
        parse_config(good.replace("max_steps: 30", "max_steps: 30\n  max_tokens: 1000"), "c.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: model: n_heads: expected an integer"):
        parse_config(good.replace("n_heads: 4", "n_heads: four"), "c.yaml")
    with pytest.raises(ConfigError, match="not a multiple of n_kv_heads"):
        parse_config(good.replace("n_kv_heads: 2", "n_kv_heads: 3"), "c.yaml")
    cfg = parse_config(good, "c.yaml", overrides=["train.max_tokens=5000", "train.max_steps=null"])
    assert cfg.train.steps == math.ceil(5000 / (32 * 8))


def test_bundled_configs_load():
    tiny = load_config("tiny-cpu")
    gpu = load_config("gpu-100m")
    assert tiny.train.device == "cpu" and gpu.train.dtype == "bfloat16" and gpu.train.compile
    with torch.device("meta"):
        model = LLaMA(ModelConfig(**{**gpu.model.__dict__, "vocab_size": 32000}))
    assert 90e6 < model.num_params() < 115e6  # "~100M parameters"


def test_prepare_data_trains_and_reuses_a_tokenizer(tmp_path, data):
    out, _ = data
    cfg = parse_config(tiny_yaml(tmp_path / "run", out), "c.yaml")
    tok, index = prepare_data(cfg)
    assert (tmp_path / "run" / "tokenizer.json").exists() and tok.vocab_size == 300
    tok2, _ = prepare_data(cfg)
    assert tok2.fingerprint == tok.fingerprint and index.tokens("train") > 10_000
