"""Data ablations, as FineWeb (Penedo et al. 2024) and DCLM (Li et al. 2024) run them: the same model, seed,
tokenizer and token budget trained on each curated output, compared on one common held-out set (the results and
their report: curate.train.ablate_report)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Iterator

import numpy as np
import torch

from curate.errors import ConfigError, InputError
from curate.train.ablate_report import ArmResult, HeldOut, write_report
from curate.train.config import TrainConfig
from curate.train.data import input_files, is_val, iter_docs, iter_texts
from curate.train.eval import EvalResult, cat_tokens, load_eval_tokens, stream_loss
from curate.train.loop import (
    TOKENIZER,
    model_from_checkpoint,
    resolve_device,
    resolve_dtype,
    train,
)
from curate.train.shards import ShardIndex, TokenStream, build_shards
from curate.train.tokenizer import Tokenizer, capped, train_bpe

log = logging.getLogger("curate.train")

HELDOUT = "heldout"


def arm_names(paths: list[str], names: list[str] | None = None) -> list[str]:
    """Names for the arms: given, else each path's last component (made unique)."""
    if names is not None:
        if len(names) != len(paths):
            raise ConfigError(f"--names gives {len(names)} names for {len(paths)} outputs")
        out = names
    else:
        out = [re.sub(r"[^A-Za-z0-9_.\-]+", "_", os.path.basename(os.path.normpath(p))) or "arm" for p in paths]
        seen: dict[str, int] = {}
        for i, n in enumerate(out):
            seen[n] = seen.get(n, 0) + 1
            if seen[n] > 1:
                out[i] = f"{n}-{seen[n]}"
    if len(set(out)) != len(out):
        raise ConfigError(f"arm names must be unique, got {', '.join(out)}")
    return out


def _round_robin(iterators: list[Iterator[str]]) -> Iterator[str]:
    live = list(iterators)
    while live:
        for it in list(live):
            try:
                yield next(it)
            except StopIteration:
                live.remove(it)


def shared_tokenizer(cfg: TrainConfig, paths: list[str], out_dir: str) -> Tokenizer:
    """The configured tokenizer file, else one BPE trained on equal shares of every arm's training split."""
    if cfg.tokenizer.path:
        return Tokenizer.from_file(cfg.tokenizer.path, cfg.tokenizer.eos_token)
    own = os.path.join(out_dir, TOKENIZER)
    if os.path.exists(own):
        return Tokenizer.from_file(own)
    share = cfg.tokenizer.max_train_chars // len(paths)
    d = cfg.data
    streams = [capped(iter_texts(input_files(p), "train", d.val_fraction, d.text_column), share) for p in paths]
    log.info("training one %d-token BPE on %d outputs", cfg.tokenizer.vocab_size, len(paths))
    tok = train_bpe(_round_robin(streams), cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    tok.save(own)
    return tok


def pooled_validation(
    tok: Tokenizer, paths: list[str], val_fraction: float, text_column: str, max_tokens: int | None
) -> tuple[np.ndarray, int, int]:
    """Every arm's validation documents, each document once (by id): the default common held-out set.

    A document's split depends only on its id, so no arm trained on any of these documents."""
    seen: set[str] = set()
    parts: list[np.ndarray] = []
    n_tokens = n_docs = n_bytes = 0
    for p in paths:
        for f in input_files(p):
            for ids, texts in iter_docs(f, text_column):
                for i, t in zip(ids, texts):
                    if not t or i in seen or not is_val(i, val_fraction):
                        continue
                    if max_tokens is not None and n_tokens >= max_tokens:
                        return cat_tokens(parts), n_docs, n_bytes
                    seen.add(i)
                    arr = tok.encode_docs([t])
                    parts.append(arr)
                    n_tokens, n_docs, n_bytes = n_tokens + len(arr), n_docs + 1, n_bytes + len(t.encode()) + 1
    return cat_tokens(parts), n_docs, n_bytes


def ablate(
    cfg: TrainConfig,
    paths: list[str],
    out_dir: str,
    *,
    names: list[str] | None = None,
    heldout: list[str] | None = None,
    heldout_split: str = "all",
    max_eval_tokens: int | None = 2_000_000,
    seeds: list[int] | None = None,
) -> list[ArmResult]:
    """Train cfg's model once per output in `paths` (once per seed with `seeds`) and compare them on one held-out
    set; rerun to resume.

    The held-out set is `heldout` (text, JSONL, Parquet or curated outputs; with heldout_split "val", only their
    validation documents), else the pooled validation split of all arms. Without `seeds` each arm trains once with
    train.seed into OUT/<arm>; with seeds, once per seed into OUT/<arm>/seed-<s>, every arm with the same seeds (the
    seed sets the initial weights and the data order; the tokenizer and the token shards are shared by all seeds)."""
    if len(paths) < 2:
        raise ConfigError("an ablation compares two or more curated outputs")
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"--seeds needs distinct seeds, got {seeds}")
    arms = arm_names(paths, names)
    os.makedirs(out_dir, exist_ok=True)
    tok = shared_tokenizer(cfg, paths, out_dir)
    d = cfg.data
    indexes = {}
    for arm, path in zip(arms, paths):
        indexes[arm] = build_shards(
            path,
            tok,
            os.path.join(out_dir, arm, "tokens"),
            val_fraction=d.val_fraction,
            text_column=d.text_column,
            parallel=d.parallel,
            address=d.address,
        )
    # an arm with no training tokens (its output kept no documents, or too few) has nothing to train on: it is
    # listed in the report as not trained and the other arms go on
    empty = {arm: paths[i] for i, arm in enumerate(arms) if indexes[arm].tokens("train") == 0}
    for arm, path in empty.items():
        log.warning("ablation arm %s (%s) has no training tokens: not trained", arm, path)
    trained = {arm: indexes[arm] for arm in arms if arm not in empty}
    if not trained:
        raise InputError(
            f"no ablation arm has training tokens ({', '.join(arms)}): the curated outputs kept no documents, or "
            "too few",
            hint="`curate inspect OUT` shows what each pipeline rejected",
        )
    held = heldout_set(cfg, tok, paths, out_dir, heldout, heldout_split, max_eval_tokens)
    results = []
    # seed by seed, so that a stopped ablation already has every arm of its first seeds
    for seed in seeds if seeds is not None else [None]:
        for arm, path in zip(arms, paths):
            if arm in trained:
                results.append(_run_arm(cfg, arm, path, out_dir, tok, trained, held, max_eval_tokens, seed))
                free_memory()
    write_report(cfg, results, held, out_dir, untrained=empty)
    return results


def heldout_set(
    cfg: TrainConfig,
    tok: Tokenizer,
    paths: list[str],
    out_dir: str,
    heldout: list[str] | None,
    heldout_split: str,
    max_eval_tokens: int | None,
) -> HeldOut:
    """`heldout` tokenized (its validation split only with heldout_split "val"), else the arms' pooled validation
    split; at least one sequence long."""
    d, t = cfg.data, cfg.train
    if heldout:
        # split "val": only documents held out by id hash, which no arm trained on (the arms use the same val_fraction)
        tokens, h_docs, h_bytes = load_eval_tokens(
            tok,
            heldout,
            split=heldout_split,
            val_fraction=d.val_fraction,
            text_column=d.text_column,
            max_tokens=max_eval_tokens,
        )
        h_name = ", ".join(heldout) + ("" if heldout_split == "all" else f" ({heldout_split} split)")
    else:
        tokens, h_docs, h_bytes = pooled_validation(tok, paths, d.val_fraction, d.text_column, max_eval_tokens)
        h_name = "pooled validation split of all arms"
    if len(tokens) < t.seq_len + 1:
        raise ConfigError(
            f"the held-out set ({h_name}) has {len(tokens):,} tokens, fewer than one sequence of {t.seq_len}",
            hint="raise data.val_fraction, or pass --heldout with more text",
        )
    stream = TokenStream.from_array(tokens, os.path.join(out_dir, f"{HELDOUT}.bin"))
    log.info("held-out set: %s, %s docs, %s tokens", h_name, f"{h_docs:,}", f"{len(tokens):,}")
    return HeldOut(h_name, tokens, h_docs, h_bytes, stream)


def _run_arm(
    cfg: TrainConfig,
    arm: str,
    path: str,
    out_dir: str,
    tok: Tokenizer,
    indexes: dict[str, ShardIndex],
    held: HeldOut,
    max_eval_tokens: int | None,
    seed: int | None = None,
) -> ArmResult:
    """Train one arm (or resume it) and score it on the held-out set and on every arm's validation split.

    seed None: cfg's train.seed, in OUT/<arm>; else that seed, in OUT/<arm>/seed-<seed>."""
    d = cfg.data
    t = cfg.train if seed is None else dataclasses.replace(cfg.train, seed=seed)
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device)
    index = indexes[arm]
    arm_cfg = dataclasses.replace(
        cfg,
        name=f"{cfg.name}-{arm}" + ("" if seed is None else f"-seed{seed}"),
        out=os.path.join(out_dir, arm) if seed is None else os.path.join(out_dir, arm, f"seed-{seed}"),
        data=dataclasses.replace(d, path=path, tokens=index.path),
        train=t,
    )
    log.info("ablation arm %s%s: %s", arm, "" if seed is None else f" (seed {seed})", path)
    res = train(arm_cfg, tok=tok, index=index, eval_sets={HELDOUT: held.stream})
    model, _, _ = model_from_checkpoint(arm_cfg.run_dir, device)
    total, count = stream_loss(model, held.tokens, t.seq_len, t.batch_size, device, dtype)
    val = {}
    for other, oindex in indexes.items():
        vstream = oindex.stream("val")
        n = len(vstream) if max_eval_tokens is None else min(len(vstream), max_eval_tokens)
        vt, vc = stream_loss(model, vstream.read(0, n), t.seq_len, t.batch_size, device, dtype)
        val[other] = vt / vc if vc else math.nan
    del model
    return ArmResult(
        name=arm,
        path=path,
        train_docs=index.docs("train"),
        train_tokens=index.tokens("train"),
        tokens_seen=res.tokens,
        final_train_loss=float(np.mean(res.train_losses[-max(1, t.log_every) :])),
        heldout=EvalResult(held.name, held.docs, count, held.n_bytes, total / max(count, 1)),
        val_losses=val,
        curve=[(e["tokens"], e["loss"]) for e in res.evals if e["set"] == HELDOUT],
        seed=t.seed,
    )


def free_memory() -> None:
    """Hand cached GPU memory back between arms."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
