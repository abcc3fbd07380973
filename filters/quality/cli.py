"""`curate classifier train | eval`: the command line of quality.classifier (inputs, options, the printed report)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from curate.errors import ConfigError
from curate_filters.quality.classifier import (
    PRESETS,
    DocSet,
    FastTextOptions,
    evaluate,
    load_model,
    read_docs,
    rejected_files,
    train_classifier,
)


def format_report(report: dict[str, Any]) -> str:
    """A held-out report as text: counts, metrics, and the deciles with example texts."""
    lines = []
    docs = report.get("docs", {})
    if "train" in docs:
        tr, he = docs["train"], docs["heldout"]
        lines.append(
            f"train: {tr['positive']:,} positive + {tr['negative']:,} negative; "
            f"held out: {he['positive']:,} + {he['negative']:,}"
        )
    held = report.get("heldout", report)
    m = held.get("metrics")
    if not m:
        lines.append("no held-out documents: nothing evaluated")
        return "\n".join(lines)
    lines.append(
        f"held-out at {m['threshold']}: precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
        f"F1 {m['f1']:.3f}  accuracy {m['accuracy']:.3f}  ROC-AUC {m['roc_auc']:.4f}"
    )
    lines.append(f"{'decile':>6} {'docs':>6} {'scores':>17} {'positive':>9}  examples")
    for d in held.get("deciles", []):
        ex = " | ".join(f"{e['score']:.3f} {'+' if e['positive'] else '-'} {e['text'][:70]}" for e in d["examples"])
        rng = f"{d['min_score']:.3f}-{d['max_score']:.3f}"
        lines.append(f"{d['decile']:>6} {d['docs']:>6} {rng:>17} {d['positive_share']:>9.2f}  {ex}")
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------------------------------


def register_cli(sub: Any) -> None:
    p = sub.add_parser("classifier", help="train or evaluate a fastText quality classifier")
    csub = p.add_subparsers(dest="classifier_command", metavar="COMMAND")
    csub.required = True

    t = csub.add_parser("train", help="train a fastText classifier on positives vs negatives; held-out report")
    _add_inputs(t)
    t.add_argument("--out", required=True, help="the model file to write (e.g. models/quality.bin)")
    t.add_argument("--preset", choices=sorted(PRESETS), help="published settings (dclm: bigrams, dim 100, 5 epochs)")
    t.add_argument("--word-ngrams", type=int, help="wordNgrams (default 1; dclm 2)")
    t.add_argument("--dim", type=int, help="vector dimension (default 100)")
    t.add_argument("--epoch", type=int, help="epochs (default 5)")
    t.add_argument("--lr", type=float, help="learning rate (default 0.1)")
    t.add_argument("--min-count", type=int, help="minimum word count (default 1)")
    t.add_argument("--bucket", type=int, help="n-gram hash buckets (default 2,000,000: 800 MB at dim 100)")
    t.add_argument("--threads", type=int, default=1, help="training threads (1: reproducible)")
    t.add_argument("--seed", type=int, default=0, help="seed of fastText and of the split, balance and shuffle")
    t.add_argument("--balance", choices=("downsample", "none"), default="downsample", help="equal classes or not")
    t.add_argument("--max-per-class", type=int, help="at most this many training documents per class")
    t.add_argument("--val-fraction", type=float, default=0.1, help="held-out share (hash of id); default 0.1")
    t.add_argument("--heldout-positive", nargs="+", help="explicit held-out positives (no hash split then)")
    t.add_argument("--heldout-negative", nargs="+", help="explicit held-out negatives")
    t.set_defaults(fn=cmd_train)

    e = csub.add_parser("eval", help="held-out report of a fastText classifier on positives vs negatives")
    e.add_argument("model", help="a fastText model file")
    _add_inputs(e)
    e.set_defaults(fn=cmd_eval)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--positive", nargs="+", default=[], help="high-quality documents: text/JSONL/Parquet, globs, outputs"
    )
    p.add_argument("--negative", nargs="+", default=[], help="low-quality documents (same forms)")
    p.add_argument("--rejected", nargs="+", default=[], help="curate outputs whose rejected documents are negatives")
    p.add_argument("--rejected-stage", nargs="+", help="only the documents these stage ids rejected")
    p.add_argument("--positive-label", default="hq", help="label of positives (default hq, as DCLM)")
    p.add_argument("--negative-label", default="cc", help="label of negatives (default cc, as DCLM)")
    p.add_argument("--text-column", default="text", help="text column of JSONL/Parquet inputs")
    p.add_argument(
        "--txt-words", type=int, help="cut plain-text files (a book) into documents of >= N words at blank lines"
    )
    p.add_argument("--examples", type=int, default=2, help="example texts per score decile in the report")
    p.add_argument("--report", help="write the report as JSON here (train: default MODEL.report.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _inputs(args: argparse.Namespace) -> tuple[DocSet, DocSet]:
    if not args.positive:
        raise ConfigError("give --positive documents (files, globs or curate outputs)")
    pos = read_docs(args.positive, args.text_column, args.txt_words)
    neg_paths = list(args.negative)
    for out in args.rejected:
        neg_paths += rejected_files(out, args.rejected_stage)
    if not neg_paths:
        raise ConfigError("give --negative documents or --rejected curate outputs")
    neg = read_docs(neg_paths, args.text_column, args.txt_words)
    return pos, neg


def _emit(report: dict[str, Any], args: argparse.Namespace, default_path: str | None) -> None:
    path = args.report or default_path
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=_json_default)
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
    else:
        print(format_report(report))
        if path:
            print(f"report: {path}")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _options(args: argparse.Namespace) -> FastTextOptions:
    values: dict[str, Any] = dict(PRESETS.get(args.preset or "", {}))
    for name in ("word_ngrams", "dim", "epoch", "lr", "min_count", "bucket"):
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    return FastTextOptions(**values, threads=args.threads, seed=args.seed)


def cmd_train(args: argparse.Namespace) -> int:
    pos, neg = _inputs(args)
    heldout = None
    if args.heldout_positive or args.heldout_negative:
        if not (args.heldout_positive and args.heldout_negative):
            raise ConfigError("give both --heldout-positive and --heldout-negative, or neither")
        heldout = (
            read_docs(args.heldout_positive, args.text_column, args.txt_words),
            read_docs(args.heldout_negative, args.text_column, args.txt_words),
        )
    report = train_classifier(
        pos,
        neg,
        args.out,
        _options(args),
        pos_label=args.positive_label,
        neg_label=args.negative_label,
        balance=args.balance,
        max_per_class=args.max_per_class,
        val_fraction=args.val_fraction,
        heldout=heldout,
        examples=args.examples,
    )
    print(f"model: {args.out}  ({report.seconds:.1f}s)")
    _emit(report.to_json(), args, f"{args.out}.report.json")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    pos, neg = _inputs(args)
    model = load_model(args.model)
    report = {"model": args.model, **evaluate(model, pos, neg, args.positive_label, args.examples)}
    _emit(report, args, None)
    return 0
