"""Helpers for the trainer tests (tests/train/, and the perplexity stage's in tests/filters/quality/): tiny curated
outputs written with pyarrow, and a tiny training config."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bird", "a child", "the king", "our teacher"]
VERBS = ["sees", "likes", "finds", "carries", "paints", "follows", "hears", "wants"]
OBJECTS = ["the red ball", "a green hat", "the small boat", "a long letter", "the quiet river", "an apple"]
ENDINGS = ["in the morning.", "after dinner.", "near the house.", "every day.", "with great care.", "again."]


def sentences(n: int, seed: int = 0) -> list[str]:
    """Documents of a few sentences from a small grammar: enough structure for a tiny model to learn quickly."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        k = rng.randint(2, 6)
        docs.append(
            " ".join(
                f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ENDINGS)}"
                for _ in range(k)
            )
        )
    return docs


def junk(n: int, seed: int = 1) -> list[str]:
    """Boilerplate-like documents (menus, cookie banners, digits) that a quality filter would remove."""
    rng = random.Random(seed)
    words = ["Home", "Login", "Cart", "Menu", "Accept cookies", "Share", "|", ">>", "404", "Contact us", "(c) 2024"]
    return [
        " ".join(rng.choice(words) for _ in range(rng.randint(5, 30))) + f" {rng.randint(0, 99999)}" for _ in range(n)
    ]


def gpt2_layout_tokenizer(path: Path, texts: list[str], vocab_size: int = 500) -> Path:
    """Train a byte-level BPE in GPT-2's layout (ByteLevel pre-tokenizer and decoder, <|endoftext|> its one special)
    on `texts` and save it to `path` as tokenizer.json (nothing downloaded); returns path."""
    import tokenizers as tk

    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.save(str(path))
    return path


def write_output(out: Path, texts: list[str], shards: int = 2, id_prefix: str = "doc") -> Path:
    """A finished curate output: OUT/data/part-*.parquet, manifest.json and _SUCCESS."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    ids = [f"{id_prefix}-{i}" for i in range(len(texts))]
    table = pa.table(
        {
            "id": ids,
            "text": texts,
            "url": [f"https://example.com/{i}" for i in ids],
            "source": ["test"] * len(texts),
        }
    )
    per = -(-len(texts) // shards)
    entries = []
    for k in range(shards):
        piece = table.slice(k * per, per)
        rel = f"data/part-{k:05d}.parquet"
        pq.write_table(piece, out / rel)
        entries.append({"path": rel, "rows": piece.num_rows, "kind": "kept", "stage": None})
    (out / "manifest.json").write_text(json.dumps({"pipeline": "test", "shards": entries}))
    (out / "_SUCCESS").write_text("")
    return out


def tiny_yaml(run: Path, data: Path | None = None, **train: object) -> str:
    """A 2-layer, 32-wide model config for CPU tests; keyword arguments override the train: section."""
    t = {
        "seq_len": 32,
        "batch_size": 8,
        "max_steps": 30,
        "lr": 3e-3,
        "warmup_steps": 5,
        "eval_every": 10,
        "eval_batches": 2,
        "log_every": 5,
        "checkpoint_every": 10,
        "device": "cpu",
        "dtype": "float32",
        "seed": 0,
        # one thread: tiny ops are all synchronisation at two, and slow badly when other processes share the CPUs
        "threads": 1,
        **train,
    }
    body = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in t.items())
    data_line = f"  path: {json.dumps(str(data))}\n" if data else ""
    return (
        f"name: tiny-test\nout: {json.dumps(str(run))}\n"
        f"data:\n{data_line}  val_fraction: 0.1\n  parallel: local\n"
        "tokenizer:\n  vocab_size: 300\n"
        "model:\n  dim: 32\n  n_layers: 2\n  n_heads: 4\n  n_kv_heads: 2\n  multiple_of: 16\n  max_seq_len: 32\n"
        f"train:\n{body}\n"
    )


def ablate_args(root: Path, n: int, **train: object) -> list[str]:
    """`curate ablate` of two arms written under root: raw (n clean documents and n junk ones) and filtered (the
    clean ones, with the same ids: a filtered subset of raw), tiny_yaml's config (keyword arguments override its
    train: section), the report in root/abl."""
    clean = sentences(n, seed=3)
    raw = write_output(root / "raw", clean + junk(n), id_prefix="d")
    filtered = write_output(root / "filtered", clean, id_prefix="d")
    cfg = root / "c.yaml"
    cfg.write_text(tiny_yaml(root / "unused", **train))
    return ["ablate", str(cfg), str(raw), str(filtered), "--out", str(root / "abl")]
