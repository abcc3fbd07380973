"""Training configs: YAML -> validated TrainConfig. Errors name the file and line, as pipeline files do."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from curate.config.yamlcheck import LocatedYaml, check_params, plain
from curate.config.yamlutil import check_keys, find_file, read_text, required_name, top_mapping
from curate.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(kw_only=True)
class DataConfig:
    """What to train on (the `data:` section)."""

    # A curated output directory (its kept shards), or Parquet / JSONL / text files, dirs or globs.
    path: str | list[str] | None = None
    # Where the token shards go; default RUN/tokens.
    tokens: str | None = None
    # Share of documents held out for validation, chosen by a hash of the document id.
    val_fraction: float = 0.01
    text_column: str = "text"
    # Tokenize on Ray ("auto": when the input is large), or in this process.
    parallel: Literal["auto", "ray", "local"] = "auto"
    # Ray cluster address for parallel tokenization (default: RAY_ADDRESS, else a local Ray).
    address: str | None = None


@dataclass(kw_only=True)
class TokenizerConfig:
    """The tokenizer (the `tokenizer:` section): a local file, or byte-level BPE trained on the training split."""

    path: str | None = None
    vocab_size: int = 8192
    # Characters of training text the BPE trainer reads (from the start of the training split).
    max_train_chars: int = 50_000_000
    min_frequency: int = 2
    # End-of-document token of a loaded tokenizer; default: the first of <|endoftext|>, </s>, <eos>, ...
    eos_token: str | None = None


@dataclass(kw_only=True)
class LoopConfig:
    """Optimisation and bookkeeping (the `train:` section)."""

    seq_len: int = 256
    # Sequences per micro-batch; a step is batch_size * grad_accum sequences.
    batch_size: int = 16
    grad_accum: int = 1
    # The budget: steps, or tokens (rounded up to whole steps). Give one.
    max_steps: int | None = None
    max_tokens: int | None = None
    lr: float = 3e-4
    # Where cosine decay ends; default lr / 10 (Chinchilla, Hoffmann et al. 2022).
    min_lr: float | None = None
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    # Clip the global gradient norm to this; 0 turns clipping off.
    grad_clip: float = 1.0
    # Steps between validation losses (0: only at the end), and batches each one reads.
    eval_every: int = 100
    eval_batches: int = 20
    log_every: int = 10
    # Steps between checkpoints (0: only at the end).
    checkpoint_every: int = 500
    # "auto": cuda when available, else cpu.
    device: str = "auto"
    # "auto": bfloat16 autocast on a GPU that has it, float32 elsewhere.
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    compile: bool = False
    seed: int = 1337
    # CPU threads for torch (default: torch's choice).
    threads: int | None = None
    # Peak FLOP/s for MFU; default from the GPU's name (see curate.train.flops).
    peak_flops: float | None = None

    @property
    def min_lr_value(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.batch_size * self.grad_accum

    @property
    def steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        assert self.max_tokens is not None  # checked at load
        return math.ceil(self.max_tokens / self.tokens_per_step)


@dataclass(kw_only=True)
class TrainConfig:
    """A whole training run."""

    name: str
    file: str = "<config>"
    # Run directory: checkpoint, tokenizer, token shards, metrics. Default runs/<name>.
    out: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: Any = None  # a curate.train.model.ModelConfig (imported lazily: it needs torch)
    train: LoopConfig = field(default_factory=LoopConfig)

    @property
    def run_dir(self) -> str:
        return self.out or f"runs/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        d = {k: plain(dataclasses.asdict(v)) for k, v in self.sections().items()}
        return {"name": self.name, "out": self.run_dir, **d}

    def sections(self) -> dict[str, Any]:
        return {"data": self.data, "tokenizer": self.tokenizer, "model": self.model, "train": self.train}


_TOP_KEYS = ("name", "description", "out", "data", "tokenizer", "model", "train")


def bundled_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def find_config(name_or_path: str) -> Path:
    bundled = (CONFIG_DIR / f"{name_or_path}.yaml", CONFIG_DIR / name_or_path)
    return find_file(name_or_path, bundled, bundled_names, "training config", "config")


def load_config(
    name_or_path: str,
    overrides: list[str] | None = None,
    data: str | list[str] | None = None,
    out: str | None = None,
) -> TrainConfig:
    """Read, override (`--set train.lr=1e-3`) and validate a training config."""
    path = find_config(name_or_path)
    return parse_config(read_text(path, "training config"), str(path), overrides, data, out)


def parse_config(
    text: str,
    file: str = "<config>",
    overrides: list[str] | None = None,
    data: str | list[str] | None = None,
    out: str | None = None,
) -> TrainConfig:
    from curate.train.model import ModelConfig

    doc, raw = top_mapping(
        file, text, overrides, "a training config is a mapping with name, data, tokenizer, model and train"
    )
    check_keys(raw, doc, _TOP_KEYS)
    name = required_name(raw, doc)
    if out is not None:
        raw["out"] = out
    if raw.get("out") is not None and not isinstance(raw["out"], str):
        raise ConfigError(f"{doc.where('out')}: 'out' must be a path")
    sections: dict[str, Any] = {}
    for key, cls in (
        ("data", DataConfig),
        ("tokenizer", TokenizerConfig),
        ("model", ModelConfig),
        ("train", LoopConfig),
    ):
        sections[key] = cls(**check_params(cls, raw.get(key), doc, (key,), key))
    if data is not None:
        sections["data"].path = data
    cfg = TrainConfig(name=name, file=file, out=raw.get("out"), **sections)
    _check_values(cfg, doc)
    return cfg


def _check_values(cfg: TrainConfig, doc: LocatedYaml) -> None:
    t, d = cfg.train, cfg.data

    def fail(section: str, key: str, message: str) -> None:
        raise ConfigError(f"{doc.where(section, key)}: {section}.{key}: {message}")

    if (t.max_steps is None) == (t.max_tokens is None):
        fail("train", "max_steps", "give exactly one budget, max_steps or max_tokens")
    for key in ("seq_len", "batch_size", "grad_accum", "log_every"):
        if getattr(t, key) < 1:
            fail("train", key, "must be at least 1")
    if t.steps < 1:
        fail("train", "max_steps" if t.max_steps is not None else "max_tokens", "the budget must be at least one step")
    for key in ("warmup_steps", "eval_every", "eval_batches", "checkpoint_every"):
        if getattr(t, key) < 0:
            fail("train", key, "must not be negative")
    if t.lr <= 0 or t.min_lr_value < 0 or t.min_lr_value > t.lr:
        fail("train", "lr", f"need lr > 0 and 0 <= min_lr <= lr (got lr={t.lr}, min_lr={t.min_lr_value})")
    if len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
        fail("train", "betas", "two numbers in [0, 1), e.g. [0.9, 0.95]")
    if not 0 <= d.val_fraction < 1:
        fail("data", "val_fraction", "must be in [0, 1)")
    if cfg.model.vocab_size:
        fail("model", "vocab_size", "comes from the tokenizer; set tokenizer.vocab_size instead")
    probe = dataclasses.replace(cfg.model, vocab_size=1, max_seq_len=max(cfg.model.max_seq_len, t.seq_len))
    try:
        probe.check()
    except ValueError as e:
        raise ConfigError(f"{doc.where('model')}: model: {e}") from None


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
