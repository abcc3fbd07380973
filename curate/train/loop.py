"""The training loop: AdamW with decay groups, warmup + cosine, clipping, accumulation, bf16 autocast on GPU,
periodic validation, checkpoints with exact resume (weights, optimizer, data position, RNG)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from curate.errors import ConfigError
from curate.train.checkpoint import (  # noqa: F401  (re-exported: the CLI, ablate and tests import them from here)
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    load_checkpoint,
    model_from_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from curate.train.config import LoopConfig, TrainConfig, dump_config
from curate.train.data import input_files, iter_texts
from curate.train.flops import flops_per_token, peak_flops
from curate.train.model import LLaMA, ModelConfig
from curate.train.shards import Batches, ShardIndex, TokenStream, build_shards, eval_windows
from curate.train.tokenizer import Tokenizer, capped, train_bpe

log = logging.getLogger("curate.train")

TOKENIZER = "tokenizer.json"
METRICS = "metrics.jsonl"


@dataclass
class TrainResult:
    """What a run did: per-step training losses, every evaluation, and its speed."""

    run_dir: str
    steps: int
    tokens: int
    params: int
    train_losses: list[float]
    evals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    mfu: float | None = None

    def last_eval(self, name: str) -> float | None:
        vals = [e["loss"] for e in self.evals if e["set"] == name]
        return vals[-1] if vals else None


# -- setup ---------------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device is '{name}' but torch sees no CUDA device", hint="use device: auto or cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """float32, or bfloat16 for autocast: the default on a GPU that supports it."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    if name == "bfloat16" and device.type != "cuda":
        raise ConfigError("train.dtype bfloat16 autocast is for CUDA devices", hint="use dtype: float32 (or auto)")
    return torch.bfloat16 if name == "bfloat16" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (weights and optimizer stay float32); plain float32 elsewhere."""
    if device.type == "cuda" and dtype == torch.bfloat16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    """Round the embedding table up: matmuls with a dimension that is a multiple of 64 run faster on GPUs."""
    return multiple * math.ceil(vocab_size / multiple)


def model_config(cfg: TrainConfig, tok: Tokenizer) -> ModelConfig:
    m = cfg.model
    return dataclasses.replace(
        m, vocab_size=padded_vocab(tok.vocab_size), max_seq_len=max(m.max_seq_len, cfg.train.seq_len)
    )


def configure_optimizer(model: torch.nn.Module, t: LoopConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019) with decay on matrices and embeddings only, not on norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=t.lr, betas=tuple(t.betas), eps=t.eps, **extra)


def lr_at(step: int, t: LoopConfig) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at the last step (as in LLaMA and nanoGPT)."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    steps = t.steps
    if step >= steps:
        return t.min_lr_value
    progress = (step - t.warmup_steps) / max(1, steps - t.warmup_steps)
    return t.min_lr_value + 0.5 * (1.0 + math.cos(math.pi * progress)) * (t.lr - t.min_lr_value)


def prepare_tokenizer(cfg: TrainConfig) -> Tokenizer:
    """The configured tokenizer file, else the run's own, else byte-level BPE trained on the training split."""
    if cfg.tokenizer.path:
        return Tokenizer.from_file(cfg.tokenizer.path, cfg.tokenizer.eos_token)
    own = os.path.join(cfg.run_dir, TOKENIZER)
    if os.path.exists(own):
        return Tokenizer.from_file(own, cfg.tokenizer.eos_token)
    if cfg.data.path is None:
        raise ConfigError("no training data: give --data OUT or data.path in the config")
    log.info("training a %d-token byte-level BPE on %s", cfg.tokenizer.vocab_size, cfg.data.path)
    texts = iter_texts(input_files(cfg.data.path), "train", cfg.data.val_fraction, cfg.data.text_column)
    tok = train_bpe(capped(texts, cfg.tokenizer.max_train_chars), cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    os.makedirs(cfg.run_dir, exist_ok=True)
    tok.save(own)
    return tok


def prepare_data(cfg: TrainConfig, tok: Tokenizer | None = None) -> tuple[Tokenizer, ShardIndex]:
    """The tokenizer and the token shards of the training data (built, or reused when already built)."""
    tok = tok or prepare_tokenizer(cfg)
    if cfg.data.path is None:
        raise ConfigError("no training data: give --data OUT or data.path in the config")
    index = build_shards(
        cfg.data.path,
        tok,
        cfg.data.tokens or os.path.join(cfg.run_dir, "tokens"),
        val_fraction=cfg.data.val_fraction,
        text_column=cfg.data.text_column,
        parallel=cfg.data.parallel,
        address=cfg.data.address,
    )
    return tok, index


# -- checkpoints ---------------------------------------------------------------------------------------------


# -- evaluation ----------------------------------------------------------------------------------------------


@torch.no_grad()
def window_loss(
    model: torch.nn.Module, windows: np.ndarray, batch_size: int, device: torch.device, dtype: torch.dtype
) -> float:
    """Mean next-token loss over windows (N, T + 1), every target weighted the same."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        rows = torch.from_numpy(windows[i : i + batch_size]).to(device)
        with autocast(device, dtype):
            _, loss = model(rows[:, :-1], rows[:, 1:])
        n = rows[:, 1:].numel()
        total += float(loss) * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


# -- the loop ------------------------------------------------------------------------------------------------


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    t: LoopConfig,
    lr: float,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[float, float | None]:
    """One optimizer step over grad_accum micro-batches. Returns the mean loss and the gradient norm before clipping."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    params = [p for g in optimizer.param_groups for p in g["params"]]
    loss_sum = torch.zeros((), device=device)
    for _ in range(t.grad_accum):
        x, y = (torch.from_numpy(a) for a in batches.next())
        if device.type == "cuda":
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        with autocast(device, dtype):
            _, loss = model(x, y)
        (loss / t.grad_accum).backward()
        loss_sum += loss.detach()
    norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip) if t.grad_clip > 0 else None
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    # the one host sync per step
    return float(loss_sum) / t.grad_accum, None if norm is None else float(norm)


def train(
    cfg: TrainConfig,
    *,
    tok: Tokenizer | None = None,
    index: ShardIndex | None = None,
    eval_sets: dict[str, TokenStream] | None = None,
    until_step: int | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train cfg's model on its data to its budget (or stop after until_step), resuming from RUN/ckpt.pt if there."""
    threads = torch.get_num_threads()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train(cfg, tok, index, eval_sets, until_step, resume)
    finally:
        torch.set_num_threads(threads)  # the setting is process-wide: give the caller back its own


@dataclass
class _Progress:
    """How far a run has got: what a checkpoint records besides weights, optimizer, loader and RNG states."""

    step: int = 0
    tokens: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # time spent in optimizer steps (no evaluation, no checkpoints)


def _train(
    cfg: TrainConfig,
    tok: Tokenizer | None,
    index: ShardIndex | None,
    eval_sets: dict[str, TokenStream] | None,
    until_step: int | None,
    resume: bool,
) -> TrainResult:
    t = cfg.train
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device)
    if tok is None or index is None:
        tok, index = prepare_data(cfg, tok)
    run = cfg.run_dir
    os.makedirs(run, exist_ok=True)
    ckpt_path = os.path.join(run, CHECKPOINT)

    mcfg, raw_model, optimizer, batches = _fresh_start(cfg, tok, index, device)
    progress = _Progress()
    if resume and os.path.exists(ckpt_path):
        progress = _resume(ckpt_path, device, mcfg, raw_model, optimizer, batches)
        log.info("resumed %s at step %d (%s tokens)", run, progress.step, f"{progress.tokens:,}")
    _trim_metrics(os.path.join(run, METRICS), progress.step)
    with open(os.path.join(run, "config.yaml"), "w", encoding="utf-8") as fh:
        fh.write(dump_config(cfg))

    model: torch.nn.Module = torch.compile(raw_model) if t.compile else raw_model
    peak = t.peak_flops or (peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None)
    n_params = raw_model.num_params()
    _log_start(cfg, n_params, device, dtype)
    windows = _eval_windows({"val": index.stream("val"), **(eval_sets or {})}, t)

    def evaluate() -> None:
        for name, w in windows.items():
            loss = window_loss(model, w, t.batch_size, device, dtype)
            progress.evals.append({"step": progress.step, "tokens": progress.tokens, "set": name, "loss": loss})
            log.info("step %d  %s loss %.4f", progress.step, name, loss)
            _append(run, {"step": progress.step, "tokens": progress.tokens, "eval": name, "loss": loss})

    stop = t.steps if until_step is None else min(until_step, t.steps)
    if progress.step == 0 and t.eval_every:
        evaluate()
    model.train()
    speed, mfu = _Speed(flops_per_token(mcfg, t.seq_len), peak, progress.tokens), None
    while progress.step < stop:
        tic = time.perf_counter()
        lr = lr_at(progress.step, t)
        step_loss, norm = train_step(model, optimizer, batches, t, lr, device, dtype)
        progress.step += 1
        progress.tokens += t.tokens_per_step
        progress.losses.append(step_loss)
        progress.seconds += time.perf_counter() - tic
        step = progress.step
        if step % t.log_every == 0 or step == stop:
            tps, mfu = speed.measure(progress.tokens)
            _log_step(run, progress, t.steps, step_loss, lr, norm, tps, mfu)
        if (t.eval_every and step % t.eval_every == 0) or step == t.steps:
            evaluate()
        if (t.checkpoint_every and step % t.checkpoint_every == 0) or step == stop:
            save_checkpoint(ckpt_path, _checkpoint_state(raw_model, optimizer, batches, progress, mcfg, cfg, tok))
        if step % t.log_every == 0:  # time the next interval without the evaluation and checkpoint
            speed.mark(progress.tokens)
    return TrainResult(
        run_dir=run,
        steps=progress.step,
        tokens=progress.tokens,
        params=n_params,
        train_losses=progress.losses,
        evals=progress.evals,
        seconds=progress.seconds,
        tokens_per_s=progress.tokens / progress.seconds if progress.seconds else 0.0,
        mfu=mfu,
    )


def _log_start(cfg: TrainConfig, n_params: int, device: torch.device, dtype: torch.dtype) -> None:
    """The run's size and where it runs, before its first step."""
    t = cfg.train
    log.info(
        "%s: %s parameters, %s tokens/step, %d steps, %s, %s",
        cfg.name,
        f"{n_params:,}",
        f"{t.tokens_per_step:,}",
        t.steps,
        device,
        str(dtype).replace("torch.", ""),
    )


def _fresh_start(
    cfg: TrainConfig, tok: Tokenizer, index: ShardIndex, device: torch.device
) -> tuple[ModelConfig, LLaMA, torch.optim.AdamW, Batches]:
    """The model (initial weights from the seed), its optimizer and the training loader, at step 0."""
    t = cfg.train
    mcfg = model_config(cfg, tok)
    torch.manual_seed(t.seed)  # the same seed gives the same initial weights in every arm of an ablation
    model = LLaMA(mcfg).to(device)
    optimizer = configure_optimizer(model, t, device)
    batches = Batches(index.stream("train"), t.seq_len, t.batch_size, t.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return mcfg, model, optimizer, batches


def _resume(
    path: str,
    device: torch.device,
    mcfg: ModelConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
) -> _Progress:
    """Load a run's checkpoint into the fresh model, optimizer, loader and RNGs; returns the progress it recorded."""
    ck = load_checkpoint(path, device)
    if ck["model_config"] != dataclasses.asdict(mcfg):
        raise ConfigError(
            f"{path} holds a different model than the config describes",
            hint="use a new run directory (--out), or pass --no-resume to start over",
        )
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    batches.load_state_dict(ck["loader"])
    set_rng_state(ck["rng"])
    return _Progress(ck["step"], ck["tokens"], ck["losses"], ck["evals"], ck["seconds"])


def _checkpoint_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    progress: _Progress,
    mcfg: ModelConfig,
    cfg: TrainConfig,
    tok: Tokenizer,
) -> dict[str, Any]:
    """Everything exact resume needs, and what eval / generate need to rebuild the model: tensors and plain values."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loader": batches.state_dict(),
        "rng": rng_state(),
        "step": progress.step,
        "tokens": progress.tokens,
        "losses": progress.losses,
        "evals": progress.evals,
        "seconds": progress.seconds,
        "model_config": dataclasses.asdict(mcfg),
        "config": cfg.to_dict(),
        "tokenizer": tok.to_str(),
        "eos_token": tok.eos_token,
    }


def _eval_windows(sets: dict[str, TokenStream], t: LoopConfig) -> dict[str, np.ndarray]:
    """Each eval set's first eval_batches batches of windows; a set too small for one window is skipped, said so."""
    if not t.eval_batches:
        return {}
    windows = {k: eval_windows(s, t.seq_len, t.eval_batches * t.batch_size) for k, s in sets.items()}
    for k, w in windows.items():
        if len(w) == 0:
            log.warning(
                "eval set '%s' has %s tokens, too few for one sequence of %d: skipped", k, len(sets[k]), t.seq_len
            )
    return {k: w for k, w in windows.items() if len(w)}


class _Speed:
    """Training tokens per second, and MFU, over the steps since the last mark."""

    def __init__(self, flops_per_token: float, peak: float | None, tokens: int) -> None:
        self.flops_per_token, self.peak = flops_per_token, peak
        self.mark(tokens)

    def mark(self, tokens: int) -> None:
        self.time, self.tokens = time.perf_counter(), tokens

    def measure(self, tokens: int) -> tuple[float, float | None]:
        tps = (tokens - self.tokens) / max(time.perf_counter() - self.time, 1e-9)
        return tps, self.flops_per_token * tps / self.peak if self.peak else None


def _log_step(
    run: str, p: _Progress, steps: int, loss: float, lr: float, norm: float | None, tps: float, mfu: float | None
) -> None:
    """The log line and the metrics.jsonl record of a training step."""
    mfu_text = f"  MFU {100 * mfu:.1f}%" if mfu is not None else ""
    log.info("step %d/%d  loss %.4f  lr %.2e  %s tok/s%s", p.step, steps, loss, lr, f"{tps:,.0f}", mfu_text)
    record = {"step": p.step, "tokens": p.tokens, "loss": loss, "lr": lr, "grad_norm": norm}
    _append(run, {**record, "tokens_per_s": tps, "mfu": mfu})


def _append(run: str, record: dict[str, Any]) -> None:
    with open(os.path.join(run, METRICS), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _trim_metrics(path: str, step: int) -> None:
    """Drop records past the checkpoint's step: an interrupted run logged steps that will be trained again."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        keep = [line for line in fh if line.strip() and json.loads(line)["step"] <= step]
    if step == 0:
        keep = []
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(keep)
