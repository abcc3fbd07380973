"""The report's figures, drawn with matplotlib (Agg, no display) and returned as PNG bytes.

matplotlib is optional (`pip install 'curate[report]'`): `available()` says whether it is there, and the report
says so in words when it is not.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

KEPT_COLOUR = "#2b7bb9"
REJECTED_COLOUR = "#d9534f"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def funnel(stages: list[dict[str, Any]]) -> bytes:
    """Documents, words and bytes left after each stage (the input first, at the top), three panels side by
    side: each bar is what the stage handed on."""
    plt = _plt()
    names = [s["id"] for s in stages]
    fig, axes = plt.subplots(1, 3, figsize=(11, 0.42 * len(names) + 1.2), sharey=True)
    y = np.arange(len(names))
    panels = ((axes[0], "kept", "documents"), (axes[1], "words_out", "words"), (axes[2], "bytes_out", "bytes"))
    for ax, key, label in panels:
        values = [s.get(key, 0) for s in stages]
        top = max(values) if values and max(values) > 0 else 1
        ax.barh(y, values, color=KEPT_COLOUR)
        for yi, v in zip(y, values):
            ax.text(v + top * 0.01, yi, _short(v), va="center", fontsize=8)
        ax.set_xlim(0, top * 1.3)
        ax.set_title(f"{label} after each stage")
        ax.set_xticks([])
        ax.spines["bottom"].set_visible(False)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()  # the axes share y: once inverts all three
    fig.tight_layout()
    return _png(fig)


def _short(v: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= 10 * size:
            return f"{v / size:,.1f}{unit}"
    return f"{int(v):,}"


def rejections(stages: list[dict[str, Any]]) -> bytes:
    """Documents rejected per stage, one stacked bar per stage split by reason."""
    plt = _plt()
    rows = [s for s in stages if s.get("rejected")]
    fig, ax = plt.subplots(figsize=(10, 0.45 * max(1, len(rows)) + 1.4))
    reasons = sorted({r for s in rows for r in s["reasons"]}, key=lambda r: -sum(s["reasons"].get(r, 0) for s in rows))
    cmap = plt.get_cmap("tab20")  # 20 distinguishable colours; reasons beyond that repeat them
    colours = {r: cmap(i % 20) for i, r in enumerate(reasons)}
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for r in reasons:
        values = np.array([s["reasons"].get(r, 0) for s in rows], dtype=float)
        ax.barh(y, values, left=left, color=colours[r], label=r)
        left += values
    for yi, total in zip(y, left):
        ax.text(total, yi, f" {int(total):,}", va="center", fontsize=8)
    ax.set_yticks(y, [s["id"] for s in rows])
    ax.invert_yaxis()
    ax.set_xlabel("documents rejected")
    if reasons:
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    fig.tight_layout()
    return _png(fig)


def stage_time(stages: list[dict[str, Any]]) -> bytes:
    """Milliseconds per document of each stage (CPU seconds of the stage over the documents it got)."""
    plt = _plt()
    rows = [s for s in stages if s["id"] != "input"]
    fig, ax = plt.subplots(figsize=(10, 0.38 * max(1, len(rows)) + 1.0))
    values = [s.get("ms_per_doc", 0.0) for s in rows]
    y = np.arange(len(rows))
    ax.barh(y, values, color="#8e6bbf")
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:.3g} ms", va="center", fontsize=8)
    ax.set_yticks(y, [s["id"] for s in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms per document")
    fig.tight_layout()
    return _png(fig)


def categories(counts: dict[str, tuple[int, int]], title: str, top: int = 20) -> bytes:
    """Bars of (kept, rejected) counts per category (languages), the `top` largest."""
    plt = _plt()
    items = sorted(counts.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:top]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x = np.arange(len(items))
    kept = [v[0] for _, v in items]
    rej = [v[1] for _, v in items]
    ax.bar(x, kept, color=KEPT_COLOUR, label="kept")
    ax.bar(x, rej, bottom=kept, color=REJECTED_COLOUR, label="rejected by a later stage")
    ax.set_xticks(x, [k for k, _ in items], rotation=45 if len(items) > 8 else 0)
    ax.set_ylabel("documents")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def histogram(
    kept: np.ndarray,
    rejected: np.ndarray,
    title: str,
    xlabel: str,
    lines: list[tuple[str, float]] | None = None,
    log_x: bool = False,
    bins: int = 40,
) -> bytes:
    """Kept and rejected values as stacked histograms, with a dashed line at each (label, threshold)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.0))
    both = np.concatenate([kept, rejected]) if len(kept) + len(rejected) else np.zeros(0)
    both = both[np.isfinite(both)]
    if log_x:
        both = both[both > 0]
    if len(both):
        lo, hi = float(both.min()), float(both.max())
        for _, v in lines or []:
            lo, hi = min(lo, v), max(hi, v)
        if log_x:
            edges = np.logspace(np.log10(max(lo, 1e-9)), np.log10(max(hi, lo * 1.01, 1e-9)), bins + 1)
            ax.set_xscale("log")
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        data = [v[np.isfinite(v) & ((v > 0) if log_x else True)] for v in (kept, rejected)]
        ax.hist(data, bins=edges, stacked=True, color=[KEPT_COLOUR, REJECTED_COLOUR], label=["kept", "rejected"])
    for i, (label, v) in enumerate(lines or []):
        ax.axvline(v, color="black", linestyle="--", linewidth=1)
        ax.text(v, ax.get_ylim()[1] * (0.92 - 0.1 * i), f" {label} = {v:g}", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    fig.tight_layout()
    return _png(fig)


def cluster_sizes(sizes: np.ndarray) -> bytes:
    """How many duplicate clusters have each size (log-log)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.0))
    values, counts = np.unique(sizes, return_counts=True)
    ax.scatter(values, counts, color=KEPT_COLOUR, s=14)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("documents in the cluster (the kept one and its duplicates)")
    ax.set_ylabel("clusters")
    ax.set_title("duplicate cluster sizes")
    fig.tight_layout()
    return _png(fig)
