"""The trainer on real public-domain prose (../shared/corpus): BPE compression and a short training run."""

from __future__ import annotations

import pytest
from train_util import tiny_yaml, write_output

pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from curate.train.config import parse_config  # noqa: E402
from curate.train.loop import train  # noqa: E402
from curate.train.tokenizer import train_bpe  # noqa: E402


def paragraphs(corpus, min_chars: int = 200) -> list[str]:
    text = (corpus / "prose-tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return [p for p in text.split("\n\n") if len(p) >= min_chars]


def test_bpe_on_shakespeare_compresses_and_roundtrips(corpus):
    text = (corpus / "prose-tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    tok = train_bpe([text[i : i + 10_000] for i in range(0, len(text), 10_000)], vocab_size=2048)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(text.encode()) / len(ids) > 2.5  # 2k merges on verse: ~2.9 bytes per token (bytes alone: 1.0)


def test_tiny_model_learns_shakespeare(corpus, tmp_path):
    out = write_output(tmp_path / "out", paragraphs(corpus))
    cfg = parse_config(tiny_yaml(tmp_path / "run", out, max_steps=60, seq_len=64, eval_every=30), "c.yaml")
    res = train(cfg)
    vals = [e["loss"] for e in res.evals if e["set"] == "val"]
    assert vals[-1] < vals[0] - 1.5, vals  # from ~log(300) = 5.7 towards character-level structure
