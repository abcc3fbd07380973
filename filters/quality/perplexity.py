"""Perplexity under the project's own language model: CCNet (Wenzek et al. 2020) scored each document with a KenLM
model of Wikipedia and bucketed head/middle/tail by per-language perplexity percentiles; here the reference model is
a small LLaMA trained by `curate train` on reference text, and the buckets come from `score_buckets`."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError, CurateError, StageError
from curate.stage import Mapper, StageColumns
from curate_filters.heuristics.common import texts
from curate_filters.sampling.common import check_column_name, set_column


class Perplexity(Mapper):
    """Perplexity of each document under a small LLaMA trained by `curate train` (the reference model CCNet built
    with KenLM on Wikipedia): exp of the mean next-token loss over the document's tokens, each window of the model's
    context predicted after an end-of-document token. Adds `column` (float64; null for a document without tokens).

    Bucket it CCNet's way with `score_buckets` (`{column: perplexity, percentiles: [30, 60], labels: [head, middle,
    tail], by_language: true}`). On CPU it runs in the fused tasks; `resources: {num_gpus: 1}` puts it in an actor
    pool on GPUs (bf16 autocast there)."""

    name = "perplexity"
    reasons = ()
    # A run directory of `curate train` (or its ckpt.pt): weights and tokenizer both come from the checkpoint.
    model: str
    column: str = "perplexity"
    # Score at most this many leading tokens of a document (null: all of them); cost grows with it.
    max_tokens: int | None = 1024
    # Windows (of the model's context length) per forward pass.
    batch_size: int = 16
    # auto: CUDA when torch sees a GPU, else CPU.
    device: str = "auto"
    # torch threads per worker on CPU (Ray runs one worker per core: more threads oversubscribe).
    threads: int = 1

    def __post_init__(self) -> None:
        check_column_name(self.column, "column")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"perplexity: max_tokens must be at least 1 (or null), not {self.max_tokens}")
        if self.batch_size < 1 or self.threads < 1:
            raise ConfigError("perplexity: batch_size and threads must be at least 1")

    def columns(self) -> StageColumns:
        return super().columns()._replace(output={self.column: pa.float64()})  # the column is named in YAML

    def preflight(self) -> None:
        # torch, and a checkpoint where `model` points; reading the checkpoint waits for the workers
        from curate.train import require_torch

        require_torch()
        from curate.train.checkpoint import CHECKPOINT

        path = os.path.join(self.model, CHECKPOINT) if os.path.isdir(self.model) else self.model
        if not os.path.exists(path):
            raise StageError(
                f"perplexity: no checkpoint at '{path}'", hint="give a run directory made by `curate train`"
            )

    def setup(self) -> None:
        from curate.train import require_torch

        require_torch()
        import torch

        from curate.train.loop import model_from_checkpoint, resolve_device, resolve_dtype

        try:
            self._device = resolve_device(self.device)
            if self._device.type == "cpu":
                torch.set_num_threads(self.threads)
            self._model, self._tok, _ = model_from_checkpoint(self.model, self._device)
        except CurateError as e:
            raise StageError(f"perplexity: {e.message}", hint=e.hint) from e
        self._dtype = resolve_dtype("auto", self._device)
        self._context = int(self._model.cfg.max_seq_len)

    def map_batch(self, batch: pa.Table) -> pa.Table:
        if not hasattr(self, "_model"):
            self.setup()
        nll, count = self.losses(texts(batch))
        with np.errstate(divide="ignore", invalid="ignore"):
            ppl = np.exp(np.minimum(nll / count, 700.0))
        return set_column(batch, self.column, pa.array(ppl, pa.float64(), mask=count == 0))

    def _encode(self, docs: list[str]) -> list[list[int]]:
        """Token ids of each document, at most max_tokens of them. Only a prefix of a long document is tokenized
        (the time goes into tokenizing): about 16 characters per token, cut just before a space that follows a
        non-space, where a word-splitting pre-tokenizer (byte-level BPE's) ends a piece in the whole text too, so
        the prefix's tokens are the whole text's first tokens. Too few of them: the whole text is tokenized."""
        if not docs:
            return []
        if self.max_tokens is None:
            return [list(ids) for ids in self._tok.encode_batch(docs)]
        heads = [_prefix(t, 16 * self.max_tokens) for t in docs]
        out = [list(ids) for ids in self._tok.encode_batch(heads)]
        short = [i for i, ids in enumerate(out) if len(heads[i]) < len(docs[i]) and len(ids) < self.max_tokens]
        if short:
            for i, ids in zip(short, self._tok.encode_batch([docs[i] for i in short])):
                out[i] = list(ids)
        return [ids[: self.max_tokens] for ids in out]

    def losses(self, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Summed next-token loss (nats) and the number of predicted tokens of each document."""
        import torch
        import torch.nn.functional as F

        from curate.train.loop import autocast

        eos = self._tok.eos_id
        windows: list[tuple[int, list[int]]] = []  # (document, tokens: inputs + the last target)
        step = self._context
        for d, ids in enumerate(self._encode(docs)):
            seq = [eos, *ids]  # a document follows an end-of-document token, as in the packed training stream
            for start in range(0, len(seq) - 1, step):
                windows.append((d, seq[start : start + step + 1]))
        nll = np.zeros(len(docs), np.float64)
        count = np.zeros(len(docs), np.int64)
        windows.sort(key=lambda w: -len(w[1]))  # similar lengths together: less padding
        with torch.inference_mode():
            for i in range(0, len(windows), self.batch_size):
                part = windows[i : i + self.batch_size]
                width = len(part[0][1]) - 1
                x = torch.zeros((len(part), width), dtype=torch.long)
                y = torch.full((len(part), width), -1, dtype=torch.long)  # -1: padding, ignored
                for r, (_, seq) in enumerate(part):
                    n = len(seq) - 1
                    x[r, :n] = torch.tensor(seq[:-1])
                    y[r, :n] = torch.tensor(seq[1:])
                x, y = x.to(self._device), y.to(self._device)
                with autocast(self._device, self._dtype):
                    logits, _ = self._model(x)  # (B, T, V); right padding cannot reach earlier positions (causal)
                flat = logits.float().reshape(-1, logits.size(-1))  # (B*T, V): contiguous, unlike (B, V, T)
                loss = F.cross_entropy(flat, y.reshape(-1), ignore_index=-1, reduction="none").view(y.shape)  # (B, T)
                sums = loss.sum(dim=1).double().cpu().numpy()
                for r, (d, seq) in enumerate(part):
                    nll[d] += sums[r]
                    count[d] += len(seq) - 1
        return nll, count


def _prefix(text: str, chars: int) -> str:
    """`text` up to the last space at or before `chars` that follows a non-space; the whole text if none."""
    if len(text) <= chars:
        return text
    k = text.rfind(" ", 0, chars + 1)
    while k > 0 and text[k - 1].isspace():
        k = text.rfind(" ", 0, k)
    return text[:k] if k > 0 else text
