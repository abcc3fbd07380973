"""Blocks -> the classifier's inputs: features(), a block's own text statistics, its owner tag and ancestor bits,
the size, link density and punctuation of the containers around it, its position, its neighbours and the page's
totals; context(), what the first pass's scores say about the block's surroundings, for the second pass.
"""

from __future__ import annotations

import numpy as np

from curate_filters.extraction.fast.markup import BITS, N_BITS, TAG_GROUPS
from curate_filters.extraction.fast.tree import Blocks

_TERMINAL = frozenset(".!?…。！？\"”»“'):;")
_BULLETS = frozenset("•·-–—*►▶»>|✓✔→")
N_LEVELS = 3  # container levels above the owner with their own columns
_LEVEL_COLS = ("log_chars", "link_density", "log_blocks", "share", "punct_share", "p_share", "long_share")


def _bits(values: list[int], n: int) -> np.ndarray:
    """(len(values), n) 0/1 columns of Python-int bit masks (n <= 128)."""
    raw = np.frombuffer(b"".join(v.to_bytes(16, "little") for v in values), np.uint8).reshape(len(values), 16)
    return np.unpackbits(raw, axis=1, count=n, bitorder="little").astype(np.float32)


# character classes counted per block: one table lookup per character and one bincount for the whole page
_COUNTED = {" ": 1, "\n": 2, ".": 3, ",": 4, "|": 5, "»": 5, "·": 5, "•": 5, ":": 6, **dict.fromkeys("0123456789", 7)}
_CLASS = np.zeros(max(map(ord, _COUNTED)) + 2, np.int64)
for _ch, _k in _COUNTED.items():
    _CLASS[ord(_ch)] = _k
_N_CLASSES = 8


def _text_stats(texts: list[str]) -> np.ndarray:
    """(blocks, 12): chars, words, newlines, ends in punctuation, '.', ',', separators, ':', digits, upper first,
    copyright sign, bullet first."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), np.int64, n)
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    classes = _CLASS[np.minimum(codes, len(_CLASS) - 1)]
    block = np.repeat(np.arange(n, dtype=np.int64), lengths)
    counts = np.bincount(block * _N_CLASSES + classes, minlength=n * _N_CLASSES).reshape(n, _N_CLASSES)
    term, bullets = _TERMINAL, _BULLETS
    flags = np.array([(t[-1] in term, t[0].isupper(), "©" in t, t[0] in bullets) for t in texts], np.float32)
    out = np.empty((n, 12), np.float32)
    out[:, 0] = lengths
    out[:, 1] = counts[:, 1] + counts[:, 2] + 1
    out[:, 2] = counts[:, 2]
    out[:, 3] = flags[:, 0]
    out[:, 4:8] = counts[:, 3:7]
    out[:, 8] = counts[:, 7]
    out[:, 9:12] = flags[:, 1:4]
    return out


def features(b: Blocks) -> np.ndarray:
    """(blocks, len(feature_names())) float32 matrix for the classifier."""
    n = len(b)
    if n == 0:
        return np.zeros((0, len(feature_names())), np.float32)
    st = _text_stats(b.texts)
    chars, ends = st[:, 0], st[:, 3]
    link = np.array(b.link_chars, np.float32)
    ld = link / chars
    is_p = np.array([k == 0 for k in b.kinds], np.float32)

    # container totals over each subtree (a run of blocks): prefix sums of per-block quantities
    quantities = np.stack([chars, link, np.ones(n, np.float32), chars * ends, chars * is_p, chars * (chars >= 100)], 1)
    prefix = np.vstack([np.zeros((1, quantities.shape[1]), np.float32), np.cumsum(quantities, 0)])
    c_parent = np.array(b.c_parent, np.int64)
    cols = _level_columns(b, chars, quantities, prefix, c_parent)
    page_t = prefix[-1]
    total = max(float(page_t[0]), 1.0)

    masks = _bits(b.masks, N_BITS)
    # trafilatura's cascade: the first step whose element holds real text is the one it would use
    cand = masks[:, N_BITS - 5 :]
    cand_chars = chars @ cand
    chosen = next((k for k in range(5) if cand_chars[k] >= 100), -1)
    in_chosen = cand[:, chosen] if chosen >= 0 else np.zeros(n, np.float32)
    kinds = np.zeros((n, len(TAG_GROUPS)), np.float32)
    kinds[np.arange(n), b.kinds] = 1.0

    own = _own_columns(b, st, ld, (prefix[:-1, 0]) / total, in_chosen, c_parent)
    nb = np.stack([np.log1p(chars), ld, ends], 1)
    zero = np.zeros((1, 3), np.float32)
    page = np.array(
        [np.log1p(total), page_t[1] / total, np.log1p(n), float(chosen >= 0), page_t[3] / total, page_t[4] / total],
        np.float32,
    )
    return np.hstack(
        [
            own,
            kinds,
            masks,
            np.stack(cols, 1),
            np.broadcast_to(page, (n, len(page))),
            np.vstack([zero, nb[:-1]]),
            np.vstack([nb[1:], zero]),
        ]
    ).astype(np.float32)


def _own_columns(
    b: Blocks, st: np.ndarray, ld: np.ndarray, char_position: np.ndarray, in_chosen: np.ndarray, c_parent: np.ndarray
) -> np.ndarray:
    """The block's own columns (the first 21 of feature_names()), from its text statistics (_text_stats), its link
    density, the share of the page's characters before it and whether it lies in the cascade's chosen element."""
    n = len(b)
    chars, words, newlines, ends = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    parent = c_parent[np.array(b.owners, np.int64)]
    same = (parent[1:] == parent[:-1]).astype(np.float32)
    return np.stack(
        [
            np.log1p(chars),
            np.log1p(words),
            newlines,
            ld,
            np.log1p(np.array(b.n_links, np.float32)),
            ends,
            st[:, 4] / words,
            st[:, 5] / words,
            np.log1p(st[:, 6]),
            st[:, 7] / words,
            st[:, 8] / chars,
            st[:, 9],
            st[:, 10],
            st[:, 11],
            chars / words,
            np.arange(n, dtype=np.float32) / max(n - 1, 1),
            char_position,
            in_chosen,
            np.array(b.pre, np.float32),
            np.concatenate([[0.0], same]),
            np.concatenate([same, [0.0]]),
        ],
        1,
    )


def _level_columns(
    b: Blocks, chars: np.ndarray, quantities: np.ndarray, prefix: np.ndarray, c_parent: np.ndarray
) -> list[np.ndarray]:
    """_LEVEL_COLS of the block's owner and of the N_LEVELS containers above it, from the containers' totals over
    their runs of blocks (prefix sums of `quantities`); above the top container, the block's own."""
    lo = np.array(b.c_lo, np.int64)
    hi = np.array(b.c_hi, np.int64)
    totals = prefix[hi] - prefix[lo]  # (containers, 6)
    level = np.array(b.owners, np.int64)
    cols = []
    for _ in range(N_LEVELS + 1):
        valid = level >= 0
        t = totals[np.where(valid, level, 0)]
        t[~valid] = quantities[~valid]
        cc = np.maximum(t[:, 0], 1)
        cols += [
            np.log1p(t[:, 0]),
            t[:, 1] / cc,
            np.log1p(t[:, 2]),
            chars / cc,
            t[:, 3] / cc,
            t[:, 4] / cc,
            t[:, 5] / cc,
        ]
        level = np.where(valid, c_parent[np.where(valid, level, 0)], -1)
    return cols


def feature_names() -> list[str]:
    """The columns of features(), in order (the model file records them, so a mismatch is caught on loading)."""
    names = (
        "log_chars log_words newlines link_density log_links ends_punct dots_per_word commas_per_word log_separators "
        "colons_per_word digit_ratio upper_first copyright bullet_first chars_per_word position char_position "
        "in_chosen pre same_parent_prev same_parent_next"
    ).split()
    names += ["tag_" + "_".join(g) for g in TAG_GROUPS]
    names += ["bit_" + x for x in BITS]
    for lv in range(N_LEVELS + 1):
        names += [f"c{lv}_{c}" for c in _LEVEL_COLS]
    names += "page_log_chars page_link_density page_log_blocks page_has_candidate page_punct_share page_p_share".split()
    names += "prev_log_chars prev_link_density prev_ends next_log_chars next_link_density next_ends".split()
    return names


def context(b: Blocks, p: np.ndarray) -> np.ndarray:
    """(blocks, len(context_names())): what the first pass thinks of a block's surroundings, for the second pass
    (main text comes in runs: a block between kept blocks, in a container of kept blocks, is likely kept)."""
    n = len(b)
    if n == 0:
        return np.zeros((0, len(context_names())), np.float32)
    p = p.astype(np.float32)
    chars = np.fromiter((len(t) for t in b.texts), np.float32, n)
    pad = np.concatenate([np.zeros(8, np.float32), p, np.zeros(8, np.float32)])
    csum = np.concatenate([[0.0], np.cumsum(pad)])
    idx = np.arange(n) + 8
    cols = [p, pad[idx - 1], pad[idx - 2], pad[idx + 1], pad[idx + 2]]
    for w in (3, 8):
        cols.append((csum[idx + w + 1] - csum[idx - w]) / (2 * w + 1))
    # char-weighted mean of p over the subtree of the owner and of the containers above it
    prefix = np.concatenate([[0.0], np.cumsum(chars * p)]).astype(np.float32)
    cprefix = np.concatenate([[0.0], np.cumsum(chars)]).astype(np.float32)
    lo = np.array(b.c_lo, np.int64)
    hi = np.array(b.c_hi, np.int64)
    mean_c = (prefix[hi] - prefix[lo]) / np.maximum(cprefix[hi] - cprefix[lo], 1)
    c_parent = np.array(b.c_parent, np.int64)
    level = np.array(b.owners, np.int64)
    for _ in range(N_LEVELS + 1):
        valid = level >= 0
        safe = np.where(valid, level, 0)
        cols.append(np.where(valid, mean_c[safe], p))
        level = np.where(valid, c_parent[safe], -1)
    total = max(float(chars.sum()), 1.0)
    kept = p >= 0.5
    strong = np.flatnonzero(p >= 0.7)
    if len(strong):
        pos = np.arange(n)
        k = np.searchsorted(strong, pos)
        after = np.where(k < len(strong), strong[np.minimum(k, len(strong) - 1)] - pos, 10)
        before = np.where(k > 0, pos - strong[np.maximum(k - 1, 0)], 10)
        dist = np.minimum(np.minimum(after, np.where(p >= 0.7, 0, before)), 10).astype(np.float32)
    else:
        dist = np.full(n, 10.0, np.float32)
    page = [float(p.max()), float((chars * p).sum()) / total, float(chars[kept].sum()) / total]
    return np.hstack([np.stack(cols + [dist], 1), np.broadcast_to(np.array(page, np.float32), (n, 3))]).astype(
        np.float32
    )


def context_names() -> list[str]:
    """The columns of context()."""
    names = "p p_prev1 p_prev2 p_next1 p_next2 p_window3 p_window8".split()
    names += [f"c{lv}_mean_p" for lv in range(N_LEVELS + 1)]
    return names + ["dist_strong", "page_max_p", "page_mean_p", "page_kept_share"]
