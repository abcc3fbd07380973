"""`curate train | eval | generate | ablate | tokenize`. Nothing here imports torch until a command runs."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from curate.train import require_torch


def register_cli(sub: Any) -> None:
    p = sub.add_parser("train", help="train a small LLaMA on a curated output")
    p.add_argument("config", help="a training config file, or a bundled one (tiny-cpu, gpu-100m)")
    p.add_argument("--data", nargs="+", help="override data.path: a curated output, Parquet, JSONL or text")
    p.add_argument("--out", help="override the run directory (default runs/<name>)")
    _add_set(p)
    p.add_argument("--no-resume", action="store_true", help="start over even if the run directory has a checkpoint")
    p.add_argument(
        "--until-step", type=int, help="stop (with a checkpoint) after this step; the schedule still ends at the budget"
    )
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="loss, perplexity and bits per byte of a trained model on text or Parquet")
    p.add_argument("run", help="a run directory (or its ckpt.pt)")
    p.add_argument("data", nargs="+", help="curated outputs, Parquet, JSONL or text files to evaluate on")
    p.add_argument("--split", choices=("all", "val", "train"), default="all", help="documents to use (default all)")
    p.add_argument("--max-tokens", type=int, default=None, help="stop after this many tokens per set")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON rather than a table")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("generate", help="sample text from a trained model")
    p.add_argument("run", help="a run directory (or its ckpt.pt)")
    p.add_argument("--prompt", default="", help="text to continue (default: start of a document)")
    p.add_argument("-n", "--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    p.add_argument("--top-k", type=int, default=50, help="0 turns it off")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling; 1 turns it off")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-cache", action="store_true", help="recompute every position (slow; for checking)")
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("ablate", help="train the same model on two or more curated outputs and compare")
    p.add_argument("config", help="a training config (its budget, model and seed are shared by every arm)")
    p.add_argument("outputs", nargs="+", help="curated outputs to compare")
    p.add_argument("--names", help="comma-separated arm names (default: the outputs' directory names)")
    p.add_argument(
        "--heldout", nargs="+", help="common held-out set (text, JSONL or Parquet); default: the arms' pooled val split"
    )
    p.add_argument(
        "--heldout-split",
        choices=("all", "val"),
        default="all",
        help="val: only the validation documents of --heldout (e.g. a curated output the arms share documents with)",
    )
    p.add_argument("--out", help="ablation directory (default runs/ablate-<config name>)")
    p.add_argument("--max-eval-tokens", type=int, default=2_000_000, help="cap on tokens per evaluation set")
    p.add_argument(
        "--seeds",
        type=_seed_list,
        help="train every arm once per seed, e.g. 0,1,2 (model init and data order); the table shows the spread",
    )
    _add_set(p)
    p.set_defaults(fn=cmd_ablate)

    p = sub.add_parser(
        "tokenize",
        help="pack a curated output into token shards: curate's own, or Megatron-LM, datatrove/nanotron or litdata",
        description=(
            "Tokenize every non-empty document into [BOS] tokens EOS: the tokenizer's EOS always follows a document; "
            "--bos also puts a BOS before it. --format curate (default) writes the in-box trainer's shards with a "
            "train/val split; megatron, datatrove and litdata write those trainers' own formats (no split, sharded "
            "by --shard-tokens, tokens.json listing shards and counts, <unit>.docs.parquet every document's token "
            "count). Reruns skip input files already done with the same settings."
        ),
    )
    p.add_argument("data", nargs="+", help="a curated output, Parquet, JSONL or text")
    p.add_argument("--out", required=True, help="token shard directory")
    p.add_argument("--tokenizer", help="a local tokenizer.json (default: train byte-level BPE into OUT)")
    p.add_argument(
        "--format",
        choices=("curate", "megatron", "datatrove", "litdata"),
        default="curate",
        help="curate: the in-box trainer's .bin shards (default); megatron: Megatron-LM indexed dataset (.bin + .idx, "
        "one document per sequence); datatrove: .ds + .ds.index + .ds.metadata (nanotron's datatrove loader); "
        "litdata: optimized chunks for litdata.StreamingDataset, one item per document",
    )
    p.add_argument(
        "--bos",
        action="store_true",
        help="put a BOS token before each document (EOS always follows it): the tokenizer's begin-of-text token, "
        "or its EOS token where it has none (GPT-2's layout). Not with --format curate",
    )
    p.add_argument("--bos-token", metavar="TOKEN", help="the BOS token to put before each document (implies --bos)")
    p.add_argument(
        "--shuffle-seed",
        type=int,
        default=None,
        metavar="N",
        help="shuffle the documents of each input file, and the files' order, with seed N (default: input order). "
        "Not with --format curate",
    )
    p.add_argument(
        "--shard-tokens",
        type=int,
        default=None,
        metavar="N",
        help="at most N tokens per shard (whole documents; default 2^28 for megatron and datatrove, 2^25 for "
        "litdata). Not with --format curate, which writes one shard per input file",
    )
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument(
        "--val-fraction", type=float, default=None, help="held-out share, --format curate only (default 0.01)"
    )
    p.add_argument("--text-column", default="text")
    p.add_argument("--parallel", choices=("auto", "ray", "local"), default="auto")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.set_defaults(fn=cmd_tokenize)


def _seed_list(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; argparse turns the ValueError into a usage error."""
    seeds = [int(s) for s in text.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(text)
    return seeds


def _add_set(p: argparse.ArgumentParser) -> None:
    from curate.cli.args import add_set_argument

    add_set_argument(p, "train.max_steps=200")


def cmd_train(args: argparse.Namespace) -> int:
    require_torch()
    from curate.train.config import load_config
    from curate.train.loop import train

    cfg = load_config(args.config, args.overrides, args.data, args.out)
    res = train(cfg, until_step=args.until_step, resume=not args.no_resume)
    val = res.last_eval("val")
    print(
        f"{cfg.name}: {res.steps} steps, {res.tokens:,} tokens, {res.params:,} parameters, "
        + (f"final train loss {res.train_losses[-1]:.4f}" if res.train_losses else "nothing trained")
        + (f", val loss {val:.4f}" if val is not None else "")
        + f", {res.tokens_per_s:,.0f} tokens/s"
        + (f", MFU {100 * res.mfu:.1f}%" if res.mfu is not None else "")
    )
    print(f"run: {res.run_dir}  (checkpoint ckpt.pt, metrics metrics.jsonl)")
    return 0


def _trained_model(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], Any]:
    """The model, tokenizer and checkpoint of the run `args.run`, loaded on `args.device`, and that device."""
    from curate.train.loop import model_from_checkpoint, resolve_device

    device = resolve_device(args.device)
    model, tok, ck = model_from_checkpoint(args.run, device)
    return model, tok, ck, device


def cmd_eval(args: argparse.Namespace) -> int:
    require_torch()
    from curate.train.eval import evaluate
    from curate.train.loop import resolve_dtype

    model, tok, ck, device = _trained_model(args)
    seq_len = ck["config"]["train"]["seq_len"]
    val_fraction = ck["config"]["data"]["val_fraction"]
    dtype = resolve_dtype("auto", device)
    rows = []
    for path in args.data:
        r = evaluate(
            model,
            tok,
            path,
            seq_len=seq_len,
            split=args.split,
            val_fraction=val_fraction,
            max_tokens=args.max_tokens,
            batch_size=args.batch_size,
            device=device,
            dtype=dtype,
        )
        rows.append(r)
    if args.json:
        out = [
            {
                "data": r.name,
                "docs": r.docs,
                "tokens": r.tokens,
                "loss": r.loss,
                "perplexity": r.perplexity,
                "bits_per_byte": r.bits_per_byte,
            }
            for r in rows
        ]
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'data':<40}{'docs':>9}{'tokens':>12}{'loss':>9}{'ppl':>10}{'bits/byte':>11}")
    for r in rows:
        name = r.name if len(r.name) <= 38 else "..." + r.name[-35:]
        print(f"{name:<40}{r.docs:>9,}{r.tokens:>12,}{r.loss:>9.4f}{r.perplexity:>10.2f}{r.bits_per_byte:>11.4f}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    require_torch()
    import torch

    from curate.errors import ConfigError

    model, tok, _, device = _trained_model(args)
    ids = tok.encode(args.prompt) if args.prompt else [tok.eos_id]  # EOS: "a new document starts here"
    room = model.cfg.max_seq_len - len(ids)
    if room < 1:
        raise ConfigError(f"the prompt is {len(ids)} tokens; the model's context is {model.cfg.max_seq_len}")
    if args.max_new_tokens > room:
        args.max_new_tokens = room
    gen = torch.Generator(device=device).manual_seed(args.seed)
    idx = torch.tensor([ids] * args.num_samples, dtype=torch.long, device=device)
    out = model.generate(
        idx,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k or None,
        top_p=args.top_p if args.top_p < 1 else None,
        eos_id=tok.eos_id,
        use_cache=not args.no_cache,
        generator=gen,
    )
    start = 0 if args.prompt else 1
    for i, row in enumerate(out.tolist()):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        body = row[start:]
        if tok.eos_id in body[len(ids) - start :]:
            body = body[: len(ids) - start + body[len(ids) - start :].index(tok.eos_id)]
        print(tok.decode(body))
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    require_torch()
    from curate.train.ablate import ablate
    from curate.train.config import load_config

    cfg = load_config(args.config, args.overrides)
    out = args.out or os.path.join("runs", f"ablate-{cfg.name}")
    names = args.names.split(",") if args.names else None
    results = ablate(  # it writes OUT/ablation.md
        cfg,
        args.outputs,
        out,
        names=names,
        heldout=args.heldout,
        heldout_split=args.heldout_split,
        max_eval_tokens=args.max_eval_tokens,
        seeds=args.seeds,
    )
    del results  # the table as written, arms that had nothing to train on included
    with open(os.path.join(out, "ablation.md"), encoding="utf-8") as fh:
        print(fh.read().rstrip())
    print(f"ablation: {out}  (ablation.md, ablation.json, ablation.png if matplotlib is installed)")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from curate.errors import ConfigError, InputError
    from curate.train.data import input_files, iter_texts
    from curate.train.tokenizer import Tokenizer, train_bpe

    external = args.format != "curate"
    if external:
        if args.val_fraction is not None:
            raise ConfigError("--val-fraction applies to --format curate only (other formats have no split)")
    else:
        bad = [
            flag
            for flag, value in (
                ("--bos", args.bos or None),
                ("--bos-token", args.bos_token),
                ("--shuffle-seed", args.shuffle_seed),
                ("--shard-tokens", args.shard_tokens),
            )
            if value is not None
        ]
        if bad:
            raise ConfigError(
                f"{', '.join(bad)} {'applies' if len(bad) == 1 else 'apply'} to --format megatron, datatrove, litdata",
                hint="curate's own shards put EOS after each document, in input order, one shard per input file",
            )
        if os.path.exists(os.path.join(args.out, "tokens.json")):
            raise InputError(f"'{args.out}' holds token shards of another format", hint="use a new directory")
    val_fraction = 0.01 if args.val_fraction is None else args.val_fraction

    if args.tokenizer:
        tok = Tokenizer.from_file(args.tokenizer)
        tok_name = args.tokenizer
    else:
        own = os.path.join(args.out, "tokenizer.json")
        tok_name = own
        if os.path.exists(own):
            tok = Tokenizer.from_file(own)
        else:
            if external:
                texts = iter_texts(input_files(args.data), text_column=args.text_column)
            else:
                texts = iter_texts(input_files(args.data), "train", val_fraction, args.text_column)
            tok = train_bpe(texts, args.vocab_size)
            os.makedirs(args.out, exist_ok=True)
            tok.save(own)
    if external:
        from curate.train.formats import build_formatted

        m = build_formatted(
            args.data,
            tok,
            args.out,
            args.format,
            bos=(args.bos_token or "auto") if args.bos or args.bos_token else None,
            shard_tokens=args.shard_tokens,
            shuffle_seed=args.shuffle_seed,
            text_column=args.text_column,
            tokenizer_name=tok_name,
            parallel=args.parallel,
            address=args.address,
        )
        print(
            f"{args.out}: {args.format}, {m['tokens']:,} tokens ({m['text_tokens']:,} of text; {m['docs']:,} docs) in "
            f"{len(m['shards']):,} shards, {m['dtype']}, vocab {tok.vocab_size:,}; documents are {m['document']} "
            "(tokens.json)"
        )
        return 0

    from curate.train.shards import build_shards

    index = build_shards(
        args.data,
        tok,
        args.out,
        val_fraction=val_fraction,
        text_column=args.text_column,
        parallel=args.parallel,
        address=args.address,
    )
    docs = index.docs("train") + index.docs("val")
    text = index.tokens("train") + index.tokens("val") - docs  # each document is its tokens and one EOS
    print(
        f"{args.out}: {index.tokens('train'):,} train tokens ({index.docs('train'):,} docs), "
        f"{index.tokens('val'):,} val tokens ({index.docs('val'):,} docs), {text:,} tokens of text, "
        f"vocab {tok.vocab_size:,}"
    )
    return 0
