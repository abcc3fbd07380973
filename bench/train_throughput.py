"""Training throughput of a bundled config: tokens/s, ms/step and (on a GPU) model FLOPs utilisation.

Runs the trainer's own step (curate.train.loop.train_step: loader, autocast, accumulation, clipping, AdamW) on random
tokens, so the figure is the model and loop, not the data. Prints one table row per thread count / config.

    python bench/train_throughput.py                          # tiny-cpu on this CPU, 1 and all threads
    python bench/train_throughput.py --config gpu-100m        # on a GPU: tokens/s and MFU (bf16, torch.compile)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from curate.train.config import load_config
from curate.train.flops import flops_per_token, peak_flops
from curate.train.loop import configure_optimizer, lr_at, padded_vocab, resolve_device, resolve_dtype, train_step
from curate.train.model import LLaMA
from curate.train.shards import Batches, TokenStream


def bench(config: str, steps: int, warmup: int, threads: int | None, overrides: list[str]) -> dict[str, object]:
    cfg = load_config(config, overrides)
    t = cfg.train
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device)
    mcfg = dataclasses.replace(
        cfg.model, vocab_size=padded_vocab(cfg.tokenizer.vocab_size), max_seq_len=max(cfg.model.max_seq_len, t.seq_len)
    )
    torch.manual_seed(t.seed)
    raw = LLaMA(mcfg).to(device)
    model = torch.compile(raw) if t.compile else raw
    optimizer = configure_optimizer(raw, t, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    n_tokens = (warmup + steps) * t.tokens_per_step + 1
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        stream = TokenStream.from_array(rng.integers(0, cfg.tokenizer.vocab_size, n_tokens), os.path.join(tmp, "t.bin"))
        batches = Batches(stream, t.seq_len, t.batch_size, t.seed)
        times = []
        for step in range(warmup + steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            tic = time.perf_counter()
            train_step(model, optimizer, batches, t, lr_at(step, t), device, dtype)  # syncs on the loss
            if step >= warmup:
                times.append(time.perf_counter() - tic)
    sec = statistics.median(times)
    tps = t.tokens_per_step / sec
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    peak = t.peak_flops or (peak_flops(name) if device.type == "cuda" else None)
    fpt = flops_per_token(mcfg, t.seq_len)
    return {
        "config": cfg.name,
        "device": name,
        "dtype": str(dtype).replace("torch.", ""),
        "params": raw.num_params(),
        "tokens/step": t.tokens_per_step,
        "ms/step": 1000 * sec,
        "tokens/s": tps,
        "TFLOP/s": fpt * tps / 1e12,
        "MFU": None if peak is None else fpt * tps / peak,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny-cpu")
    p.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (torch.compile, allocator)")
    p.add_argument("--threads", default=None, help="comma-separated CPU thread counts (default: 1 and all)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    on_cpu = resolve_device(cfg.train.device).type == "cpu"
    if args.threads:
        thread_counts: list[int | None] = [int(x) for x in args.threads.split(",")]
    elif on_cpu:
        thread_counts = sorted({1, os.cpu_count() or 1})
    else:
        thread_counts = [None]
    rows = [bench(args.config, args.steps, args.warmup, n, args.overrides) for n in thread_counts]
    head = f"{'config':<10}{'device':<26}{'dtype':<10}{'params':>12}{'tok/step':>10}{'ms/step':>10}"
    head += f"{'tokens/s':>12}{'TFLOP/s':>9}{'MFU':>8}"
    print(head)
    for r in rows:
        mfu = "-" if r["MFU"] is None else f"{100 * r['MFU']:.1f}%"
        print(
            f"{r['config']:<10}{str(r['device'])[:25]:<26}{r['dtype']:<10}{r['params']:>12,}{r['tokens/step']:>10,}"
            f"{r['ms/step']:>10.1f}{r['tokens/s']:>12,.0f}{r['TFLOP/s']:>9.3f}{mfu:>8}"
        )
    sys.stdout.flush()
    print(f"torch {torch.__version__}; median of {args.steps} steps after {args.warmup} warm-up steps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
