"""An ablation's results: per arm (and seed) what it trained on and how it scores (ArmResult), averaged over seeds,
and written out as OUT/ablation.json, the Markdown table ablation.md, ablation.svg and, with matplotlib, ablation.png
(curate.train.ablate runs the arms)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.train.config import TrainConfig
from curate.train.eval import EvalResult
from curate.train.shards import TokenStream

log = logging.getLogger("curate.train")


@dataclass
class ArmResult:
    """One arm of the ablation: what it trained on and how it scores."""

    name: str
    path: str
    train_docs: int
    train_tokens: int
    tokens_seen: int
    final_train_loss: float
    heldout: EvalResult
    val_losses: dict[str, float]  # loss on each arm's validation split, by arm name
    curve: list[tuple[int, float]]  # (tokens seen, held-out loss) at each periodic evaluation
    seed: int | None = None  # train.seed of this run (model init and data order)

    @property
    def epochs(self) -> float:
        return self.tokens_seen / max(self.train_tokens, 1)


def by_arm(results: list[ArmResult]) -> dict[str, list[ArmResult]]:
    """The runs of each arm (one per seed), arms in their first-seen order."""
    groups: dict[str, list[ArmResult]] = {}
    for r in results:
        groups.setdefault(r.name, []).append(r)
    return groups


@dataclass
class HeldOut:
    """The common held-out set every arm is scored on: its tokens and where they came from."""

    name: str
    tokens: np.ndarray
    docs: int
    n_bytes: int
    stream: TokenStream  # the same tokens as a file, for the periodic evaluations during training


UNTRAINED = "no training tokens (the curated output kept no documents, or too few): not trained"


def untrained_lines(untrained: dict[str, str]) -> list[str]:
    """The lines under the table for arms that had nothing to train on."""
    return [f"arm {arm} ({path}): {UNTRAINED}" for arm, path in untrained.items()]


def write_report(
    cfg: TrainConfig, results: list[ArmResult], held: HeldOut, out_dir: str, untrained: dict[str, str] | None = None
) -> None:
    """OUT/ablation.json, ablation.md (the table), ablation.svg and, with matplotlib, ablation.png.

    With several seeds: one row per arm (mean, std and min-max of the held-out loss), the per-seed runs in
    ablation.json's "runs", and the plots show each arm's mean curve. `untrained` ({arm: path}) are the arms with
    no training tokens: in ablation.json's "untrained" and under the table."""
    groups = by_arm(results)
    multi = any(len(g) > 1 for g in groups.values())
    report: dict[str, Any] = {
        "config": cfg.to_dict(),
        "heldout": {"source": held.name, "docs": held.docs, "tokens": len(held.tokens), "bytes": held.n_bytes},
    }
    if multi:
        report["seeds"] = [r.seed for r in next(iter(groups.values()))]
        report["arms"] = [_seeds_json(g) for g in groups.values()]
        report["runs"] = [_arm_json(r) for r in results]
    else:
        report["arms"] = [_arm_json(r) for r in results]
    untrained = untrained or {}
    report["untrained"] = [
        {"name": arm, "path": path, "train_docs": 0, "train_tokens": 0, "why": UNTRAINED}
        for arm, path in untrained.items()
    ]
    with open(os.path.join(out_dir, "ablation.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    table = format_seeds_table(results, held.name) if multi else format_table(results, held.name)
    if untrained:
        table += "\n\n" + "\n".join(untrained_lines(untrained))
    with open(os.path.join(out_dir, "ablation.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    curves = [mean_run(g) for g in groups.values()] if multi else results
    title = held.name + (" (mean over seeds)" if multi else "")
    plot_svg(curves, os.path.join(out_dir, "ablation.svg"), title)
    plot(curves, os.path.join(out_dir, "ablation.png"), title)


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof 1; 0 for one value), min and max."""
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }


def mean_run(runs: list[ArmResult]) -> ArmResult:
    """One arm's runs averaged: losses and the curve (at the evaluation points all runs share) are means."""
    first = runs[0]
    points = [dict(r.curve) for r in runs]
    xs = [x for x, _ in first.curve if all(x in p for p in points)]
    held = dataclasses.replace(first.heldout, loss=float(np.mean([r.heldout.loss for r in runs])))
    return dataclasses.replace(
        first,
        final_train_loss=float(np.mean([r.final_train_loss for r in runs])),
        heldout=held,
        val_losses={k: float(np.mean([r.val_losses[k] for r in runs])) for k in first.val_losses},
        curve=[(x, float(np.mean([p[x] for p in points]))) for x in xs],
        seed=None,
    )


def _data_json(r: ArmResult) -> dict[str, Any]:
    """What an arm trained on: the same for each of its seeds."""
    return {
        "name": r.name,
        "path": r.path,
        "train_docs": r.train_docs,
        "train_tokens": r.train_tokens,
        "tokens_seen": r.tokens_seen,
        "epochs": r.epochs,
    }


def _seeds_json(runs: list[ArmResult]) -> dict[str, Any]:
    held = spread([x.heldout.loss for x in runs])
    mean = mean_run(runs)
    return {
        **_data_json(runs[0]),
        "seeds": [x.seed for x in runs],
        "heldout_loss_per_seed": {str(x.seed): x.heldout.loss for x in runs},
        "heldout_loss": held["mean"],
        "heldout_loss_std": held["std"],
        "heldout_loss_min": held["min"],
        "heldout_loss_max": held["max"],
        "heldout_bits_per_byte": float(np.mean([x.heldout.bits_per_byte for x in runs])),
        "final_train_loss": mean.final_train_loss,
        "val_losses": mean.val_losses,
        "curve": mean.curve,
    }


def _arm_json(r: ArmResult) -> dict[str, Any]:
    return {
        **_data_json(r),
        "final_train_loss": r.final_train_loss,
        "heldout_loss": r.heldout.loss,
        "heldout_perplexity": r.heldout.perplexity,
        "heldout_bits_per_byte": r.heldout.bits_per_byte,
        "val_losses": r.val_losses,
        "curve": r.curve,
        "seed": r.seed,
    }


def format_table(results: list[ArmResult], heldout_name: str) -> str:
    """The side-by-side comparison as a Markdown table (held-out first, then each arm's own validation split)."""
    names = [r.name for r in results]
    head = ["arm", "train docs", "train tokens", "epochs", "train loss", "held-out loss", "ppl", "bits/byte"]
    head += [f"val loss on {n}" for n in names]
    rows = []
    for r in results:
        rows.append(
            [
                r.name,
                f"{r.train_docs:,}",
                f"{r.train_tokens:,}",
                f"{r.epochs:.2f}",
                f"{r.final_train_loss:.3f}",
                f"{r.heldout.loss:.3f}",
                f"{r.heldout.perplexity:.1f}",
                f"{r.heldout.bits_per_byte:.3f}",
            ]
            + [f"{r.val_losses[n]:.3f}" for n in names]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    h = results[0].heldout
    budget = results[0].tokens_seen
    lines.append("")
    lines.append(
        f"held-out set: {heldout_name} ({h.docs:,} docs, {h.tokens:,} tokens); budget {budget:,} tokens per arm"
    )
    return "\n".join(lines)


def format_seeds_table(results: list[ArmResult], heldout_name: str) -> str:
    """One row per arm over its seeds: held-out loss as mean, std, min-max and each seed's value; then the mean
    loss of each arm's models on every arm's validation split."""
    groups = by_arm(results)
    seeds = [r.seed for r in next(iter(groups.values()))]
    head = ["arm", "train docs", "train tokens", "epochs", "train loss", "held-out loss", "min-max"]
    head += [f"seed {s}" for s in seeds] + ["bits/byte"]
    rows = []
    for name, runs in groups.items():
        r, h = runs[0], spread([x.heldout.loss for x in runs])
        rows.append(
            [
                name,
                f"{r.train_docs:,}",
                f"{r.train_tokens:,}",
                f"{r.epochs:.2f}",
                f"{np.mean([x.final_train_loss for x in runs]):.3f}",
                f"{h['mean']:.3f} ± {h['std']:.3f}",
                f"{h['min']:.3f}-{h['max']:.3f}",
            ]
            + [f"{x.heldout.loss:.3f}" for x in runs]
            + [f"{np.mean([x.heldout.bits_per_byte for x in runs]):.3f}"]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    h0, budget = results[0].heldout, results[0].tokens_seen
    lines.append("")
    lines.append(
        f"held-out set: {heldout_name} ({h0.docs:,} docs, {h0.tokens:,} tokens); budget {budget:,} tokens per arm; "
        f"{len(seeds)} seeds (model init and data order; one shared tokenizer); ± is the sample std over seeds"
    )
    names = list(groups)
    lines += ["", "Mean validation loss of each arm's models (rows) on each arm's own validation split (columns):", ""]
    lines.append("| model \\ val split | " + " | ".join(names) + " |")
    lines.append("|" + "|".join("---" for _ in range(len(names) + 1)) + "|")
    for name, runs in groups.items():
        m = mean_run(runs)
        lines.append(f"| {name} | " + " | ".join(f"{m.val_losses[n]:.3f}" for n in names) + " |")
    return "\n".join(lines)


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def plot_svg(results: list[ArmResult], path: str, heldout_name: str) -> str | None:
    """Held-out loss against tokens seen, one line per arm, as a dependency-free SVG (always written)."""
    points = [(x, y) for r in results for x, y in r.curve]
    if not points:
        return None
    w, h, left, right, top, bottom = 560, 360, 70, 20, 30, 50
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-3)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (h - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="18" text-anchor="middle">held-out loss: {_escape(heldout_name)[:70]}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">tokens seen</text>',
        f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">loss (nats/token)</text>',
    ]
    for i in range(5):  # axis ticks
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{sx(xv):.1f}" y="{h - bottom + 14}" text-anchor="middle">{xv:,.0f}</text>')
        parts.append(f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.2f}</text>')
    for k, r in enumerate(results):
        if not r.curve:
            continue
        colour = _COLOURS[k % len(_COLOURS)]
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in r.curve)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
        parts.append(f'<text x="{w - right - 4}" y="{top + 14 * (k + 1)}" text-anchor="end" fill="{colour}">'
                     f"{_escape(r.name)}</text>")  # fmt: skip
    parts.append("</svg>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts) + "\n")
    return path


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plot(results: list[ArmResult], path: str, heldout_name: str) -> str | None:
    """Held-out loss against tokens seen, one line per arm, as a PNG; skipped (with a message) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        log.info("matplotlib is not installed: no PNG (pip install matplotlib); the plot is in ablation.svg")
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        if r.curve:
            xs, ys = zip(*r.curve)
            ax.plot(xs, ys, marker="o", markersize=3, label=r.name)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title(f"held-out: {heldout_name}"[:80], fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
