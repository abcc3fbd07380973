"""Loss, perplexity and bits per byte of a trained model on any text, JSONL or Parquet set (or a curated output)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from curate.train.data import input_files, is_val, iter_docs
from curate.train.loop import autocast
from curate.train.tokenizer import Tokenizer


@dataclass
class EvalResult:
    """Mean next-token loss (nats) over `tokens` predicted tokens of `docs` documents holding `bytes` UTF-8 bytes."""

    name: str
    docs: int
    tokens: int
    bytes: int
    loss: float

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bits_per_byte(self) -> float:
        """Tokenizer-independent: total bits over total bytes, so models with different tokenizers compare."""
        return self.loss * self.tokens / math.log(2) / max(self.bytes, 1)


def load_eval_tokens(
    tok: Tokenizer,
    paths: str | list[str],
    *,
    split: str = "all",
    val_fraction: float = 0.0,
    text_column: str = "text",
    max_tokens: int | None = None,
) -> tuple[np.ndarray, int, int]:
    """The packed stream (EOS after each document) of whole documents up to max_tokens; with docs and bytes."""
    parts: list[np.ndarray] = []
    n_tokens = n_docs = n_bytes = 0
    for f in input_files(paths):
        for ids, texts in iter_docs(f, text_column):
            keep = [
                t for i, t in zip(ids, texts) if t and (split == "all" or is_val(i, val_fraction) == (split == "val"))
            ]
            for text in keep:
                if max_tokens is not None and n_tokens >= max_tokens:
                    return cat_tokens(parts), n_docs, n_bytes
                arr = tok.encode_docs([text])
                parts.append(arr)
                n_tokens += len(arr)
                n_docs += 1
                n_bytes += len(text.encode("utf-8")) + 1  # the EOS stands for one byte: a document end
    return cat_tokens(parts), n_docs, n_bytes


def cat_tokens(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def stream_loss(
    model: torch.nn.Module,
    tokens: np.ndarray,
    seq_len: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[float, int]:
    """Summed next-token loss (nats) and the number of predicted tokens, over consecutive windows of seq_len
    (the last one shorter), so every token after the first is predicted exactly once."""
    device = torch.device(device)
    model.eval()
    n = len(tokens) - 1
    if n < 1:
        return 0.0, 0
    starts = list(range(0, n, seq_len))
    full = [s for s in starts if s + seq_len <= n]
    tail = [s for s in starts if s + seq_len > n]
    total, count = 0.0, 0
    for i in range(0, len(full), batch_size):
        rows = np.stack([tokens[s : s + seq_len + 1] for s in full[i : i + batch_size]])
        total, count = _add(model, rows, device, dtype, total, count)
    for s in tail:
        total, count = _add(model, tokens[None, s:], device, dtype, total, count)
    return total, count


def _add(
    model: torch.nn.Module, rows: np.ndarray, device: torch.device, dtype: torch.dtype, total: float, count: int
) -> tuple[float, int]:
    x = torch.from_numpy(np.ascontiguousarray(rows)).to(device)
    with autocast(device, dtype):
        _, loss = model(x[:, :-1], x[:, 1:])
    k = x[:, 1:].numel()
    return total + float(loss) * k, count + k


def evaluate(
    model: torch.nn.Module,
    tok: Tokenizer,
    paths: str | list[str],
    *,
    name: str | None = None,
    seq_len: int,
    split: str = "all",
    val_fraction: float = 0.0,
    text_column: str = "text",
    max_tokens: int | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> EvalResult:
    """Evaluate `model` on the documents of `paths`."""
    tokens, docs, n_bytes = load_eval_tokens(
        tok, paths, split=split, val_fraction=val_fraction, text_column=text_column, max_tokens=max_tokens
    )
    total, count = stream_loss(model, tokens, seq_len, batch_size, device, dtype)
    label = name or (paths if isinstance(paths, str) else ", ".join(paths))
    return EvalResult(label, docs, count, n_bytes, total / max(count, 1))
