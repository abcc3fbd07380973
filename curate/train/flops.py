"""Model FLOPs per token and GPU peaks, for model FLOPs utilisation (MFU, PaLM: Chowdhery et al. 2022, app. B)."""

from __future__ import annotations

from typing import Any

# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendors' data sheets. Matched in order as substrings
# of torch.cuda.get_device_name(), so the more specific names come first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("GB200", 2.5e15),
    ("B200", 2.25e15),
    ("B100", 1.75e15),
    ("GH200", 989e12),
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H800", 989e12),
    ("H20", 148e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
)


def matmul_params(cfg: Any) -> int:
    """Weights that take part in a matmul per token: every linear layer including the output head.

    The input embedding is a lookup, not a matmul, so an untied table is left out; a tied one is counted once,
    as the output head."""
    hd = cfg.head_dim
    attention = cfg.dim * cfg.n_heads * hd + 2 * cfg.dim * cfg.kv_heads * hd + cfg.n_heads * hd * cfg.dim
    ffn = 3 * cfg.dim * cfg.hidden_dim
    return cfg.n_layers * (attention + ffn) + cfg.dim * cfg.vocab_size


def flops_per_token(cfg: Any, seq_len: int) -> int:
    """Training FLOPs per token, 6N + 12 L H Q T (PaLM app. B): forward and backward of the matmuls, plus attention
    scores and weighted values over the full T x T square (causal masking is not credited, as in PaLM)."""
    return 6 * matmul_params(cfg) + 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * seq_len


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by name, or None when it is not in the table."""
    for pattern, flops in PEAK_BF16_FLOPS:
        if pattern.lower() in device_name.lower():
            return flops
    return None
