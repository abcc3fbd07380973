"""The small LLaMA trainer: tokenizer, token shards, model, training loop, evaluation, generation and ablations.

Importing this package does not import torch; the modules that need it call require_torch() first."""

from __future__ import annotations

from curate.errors import require


def require_torch() -> None:
    """Raise MissingDependency (exit 2 with a hint) when torch is not installed."""
    # torch is not in the extra, so that a user picks its CPU or CUDA build rather than getting CUDA by default
    hint = "pip install torch (e.g. pip install torch==2.13.0), then pip install 'curate[train]'"
    require("torch", "torch", "train", what="the trainer", hint=hint)
