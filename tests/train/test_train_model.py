"""The LLaMA model against independent computations: RoPE, attention, RMSNorm, sizes, KV-cache generation, FLOPs."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from curate.train.flops import flops_per_token, matmul_params, peak_flops  # noqa: E402
from curate.train.model import (  # noqa: E402
    Attention,
    KVCache,
    LLaMA,
    ModelConfig,
    RMSNorm,
    apply_rope,
    rope_table,
    sample_next,
)


def tiny(**kw: object) -> ModelConfig:
    base = dict(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, multiple_of=16, max_seq_len=64)
    return ModelConfig(**{**base, **kw})


def rope_reference_complex(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """LLaMA's original formulation: view pairs as complex numbers and multiply by e^(i m theta_j)."""
    B, T, H, D = x.shape
    freqs = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    angles = torch.outer(torch.arange(T, dtype=torch.float64), freqs)
    rot = torch.polar(torch.ones_like(angles), angles)  # (T, D/2) complex
    xc = torch.view_as_complex(x.double().reshape(B, T, H, D // 2, 2))
    return torch.view_as_real(xc * rot[None, :, None, :]).reshape(B, T, H, D)


def rope_reference_matrix(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """RoFormer eq. 15: a block-diagonal rotation matrix R_m applied to each position's vector."""
    B, T, H, D = x.shape
    out = torch.empty(B, T, H, D, dtype=torch.float64)
    for m in range(T):
        R = torch.zeros(D, D, dtype=torch.float64)
        for i in range(D // 2):
            a = m * theta ** (-2 * i / D)
            R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
                [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
            )
        out[:, m] = x[:, m].double() @ R.T
    return out


def test_rope_matches_complex_and_matrix_references():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3, 8)
    cos, sin = rope_table(8, 9)
    got = apply_rope(x, cos, sin).double()
    assert torch.allclose(got, rope_reference_complex(x), atol=1e-5)
    assert torch.allclose(got, rope_reference_matrix(x), atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    cos, sin = rope_table(16, 40)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q, cos[m : m + 1], sin[m : m + 1])
        kn = apply_rope(k, cos[n : n + 1], sin[n : n + 1])
        return float((qm * kn).sum())

    assert score(5, 2) == pytest.approx(score(30, 27), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def attention_reference(att: Attention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Straightforward causal attention: explicit scores, mask, softmax; each KV head repeated for its query group."""
    B, T, _ = x.shape
    H, KV, hd = att.n_heads, att.n_kv, att.head_dim
    q = rope_reference_complex(att.wq(x).view(B, T, H, hd)).float()
    k = rope_reference_complex(att.wk(x).view(B, T, KV, hd)).float()
    v = att.wv(x).view(B, T, KV, hd)
    out = torch.empty(B, T, H, hd)
    for h in range(H):
        g = h // (H // KV)  # the key/value head of query head h
        scores = q[:, :, h] @ k[:, :, g].transpose(1, 2) / math.sqrt(hd)  # (B, T, T)
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        out[:, :, h] = scores.softmax(-1) @ v[:, :, g]
    return att.wo(out.reshape(B, T, H * hd))


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_attention_matches_reference(n_kv_heads):
    torch.manual_seed(0)
    cfg = tiny(n_kv_heads=n_kv_heads)
    att = Attention(cfg, 0)
    x = torch.randn(2, 11, cfg.dim)
    cos, sin = rope_table(cfg.head_dim, 11)
    with torch.no_grad():
        assert torch.allclose(att(x, cos, sin), attention_reference(att, x, cos, sin), atol=1e-5)


def test_attention_is_causal():
    torch.manual_seed(0)
    model = LLaMA(tiny()).eval()
    idx = torch.randint(0, 97, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 97
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:], atol=1e-3)


def test_rmsnorm_matches_formula():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    x = torch.randn(3, 5, 16)
    want = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert torch.allclose(norm(x), want, atol=1e-6)


def test_llama_7b_sizes():
    cfg = ModelConfig(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, tie_embeddings=False, max_seq_len=2048)
    assert cfg.hidden_dim == 11008  # the published LLaMA-7B feed-forward width
    with torch.device("meta"):
        model = LLaMA(cfg)
    assert model.num_params() == 6_738_415_616  # LLaMA-7B's parameter count


def test_tied_and_untied_embeddings():
    tied, untied = LLaMA(tiny(tie_embeddings=True)), LLaMA(tiny(tie_embeddings=False))
    assert tied.output.weight is tied.tok_embeddings.weight
    assert untied.output.weight is not untied.tok_embeddings.weight
    assert untied.num_params() - tied.num_params() == 97 * 32
    assert untied.num_params(embedding=False) == tied.num_params()


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="not a multiple of n_kv_heads"):
        LLaMA(tiny(n_kv_heads=3))
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        LLaMA(tiny(dim=30))


def test_kv_cache_logits_match_full_forward():
    torch.manual_seed(0)
    model = LLaMA(tiny()).double().eval()
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full, _ = model(idx)
        cache = KVCache(model.cfg, 2, 20, idx.device, torch.float64)
        parts = [model(idx[:, :7], cache=cache, start=0)[0]]  # prefill
        parts.append(model(idx[:, 7:12], cache=cache, start=7)[0])  # a chunk with a past: explicit mask
        parts += [model(idx[:, t : t + 1], cache=cache, start=t)[0] for t in range(12, 20)]  # one at a time
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-10)


def test_generate_with_and_without_cache_agree():
    torch.manual_seed(0)
    model = LLaMA(tiny()).double()
    prompt = torch.randint(0, 97, (2, 5))
    greedy_a = model.generate(prompt, 25, temperature=0, use_cache=True)
    greedy_b = model.generate(prompt, 25, temperature=0, use_cache=False)
    assert torch.equal(greedy_a, greedy_b)
    assert greedy_a.shape == (2, 30) and torch.equal(greedy_a[:, :5], prompt)
    sample = [
        model.generate(
            prompt, 25, temperature=1.0, top_k=20, top_p=0.9, use_cache=c, generator=torch.Generator().manual_seed(3)
        )
        for c in (True, False)
    ]
    assert torch.equal(sample[0], sample[1])
    assert not torch.equal(sample[0], greedy_a)  # sampling at temperature 1 does not reproduce greedy decoding


def test_generate_stops_rows_at_eos():
    torch.manual_seed(0)
    model = LLaMA(tiny()).double()
    prompt = torch.randint(0, 97, (1, 3))
    first = model.generate(prompt, 1, temperature=0)[0, -1].item()  # make the greedy next token the EOS
    out = model.generate(prompt, 10, temperature=0, eos_id=first)
    assert out.shape == (1, 4) and out[0, -1].item() == first


def test_sampling_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert sample_next(logits, temperature=0).item() == 0
    g = torch.Generator().manual_seed(0)
    topk1 = {sample_next(logits, 1.0, top_k=1, generator=g).item() for _ in range(50)}
    assert topk1 == {0}
    nucleus = {sample_next(logits, 1.0, top_p=0.7, generator=g).item() for _ in range(300)}
    assert nucleus == {0, 1}  # 0.5 < 0.7 needs a second token; 0.5 + 0.3 reaches it, so 2 and 3 are cut
    topk2 = {sample_next(logits, 1.0, top_k=3, generator=g).item() for _ in range(500)}
    assert topk2 == {0, 1, 2}


def test_flops_per_token_hand_count():
    # dim 32, 2 layers, 4 heads of 8, 2 KV heads, SwiGLU hidden: 2/3 * 128 = 85 -> 96 (multiple of 16), vocab 97
    cfg = tiny()
    assert cfg.hidden_dim == 96
    attention = 32 * 32 + 2 * 32 * 16 + 32 * 32  # wq, wk + wv (2 heads x 8), wo
    ffn = 3 * 32 * 96
    assert matmul_params(cfg) == 2 * (attention + ffn) + 32 * 97
    linear = sum(m.weight.numel() for m in LLaMA(cfg).modules() if isinstance(m, torch.nn.Linear))
    assert matmul_params(cfg) == linear  # every linear layer, the tied output head once
    assert flops_per_token(cfg, 64) == 6 * matmul_params(cfg) + 12 * 2 * 4 * 8 * 64


def test_peak_flops_table():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("NVIDIA L40S") == 362e12 and peak_flops("NVIDIA L4") == 121e12
    assert peak_flops("Some Future GPU") is None
