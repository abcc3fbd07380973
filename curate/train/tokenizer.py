"""Byte-level BPE tokenizers (GPT-2, Radford et al. 2019) trained with HF `tokenizers` on curated text, or loaded
from a local tokenizer.json. Nothing is downloaded."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from curate.errors import ConfigError, InputError, require

log = logging.getLogger("curate.train")

EOS = "<|endoftext|>"
# Names other tokenizers give their end-of-document token, tried in order when loading a file.
EOS_CANDIDATES = (EOS, "</s>", "<eos>", "<|end_of_text|>", "[EOS]")


def _tokenizers():  # noqa: ANN202 - the module, imported lazily
    return require("tokenizers", "tokenizers", "train", what="the trainer")


class Tokenizer:
    """A loaded HF tokenizer plus the id of its end-of-document token."""

    def __init__(self, tok: object, eos_token: str | None = None) -> None:
        self.tok = tok
        names = (eos_token,) if eos_token else EOS_CANDIDATES
        ids = [tok.token_to_id(n) for n in names]  # type: ignore[attr-defined]
        found = [(n, i) for n, i in zip(names, ids) if i is not None]
        if not found:
            raise ConfigError(
                f"the tokenizer has no end-of-document token (looked for {', '.join(names)})",
                hint="set tokenizer.eos_token to the name of its end-of-text token",
            )
        self.eos_token, self.eos_id = found[0]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], eos_token: str | None = None) -> Tokenizer:
        """Load a local tokenizer.json."""
        if not os.path.isfile(path):
            raise InputError(f"tokenizer file '{path}' does not exist", hint="give a local tokenizer.json")
        try:
            tok = _tokenizers().Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise InputError(f"cannot load tokenizer '{path}': {e}") from e
        return cls(tok, eos_token)

    @classmethod
    def from_str(cls, json_text: str, eos_token: str | None = None) -> Tokenizer:
        return cls(_tokenizers().Tokenizer.from_str(json_text), eos_token)

    def to_str(self) -> str:
        return self.tok.to_str()  # type: ignore[attr-defined]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write tokenizer.json atomically."""
        tmp = f"{path}.tmp-{os.getpid()}"
        Path(tmp).write_text(self.to_str(), encoding="utf-8")
        os.replace(tmp, path)

    @property
    def fingerprint(self) -> str:
        """sha256 of the serialised tokenizer: token shards record it so that a different tokenizer rebuilds them."""
        return hashlib.sha256(self.to_str().encode()).hexdigest()

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size(with_added_tokens=True))  # type: ignore[attr-defined]

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (Rust threads do the work)."""
        fast = getattr(self.tok, "encode_batch_fast", None)  # no offsets: faster where available
        encs = (fast or self.tok.encode_batch)(texts, add_special_tokens=False)  # type: ignore[attr-defined]
        return [e.ids for e in encs]

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        """The packed stream of a list of documents: each one's tokens followed by EOS (empty texts skipped)."""
        texts = [t for t in texts if t]
        encs = self.encode_batch(texts) if texts else []
        out = np.empty(sum(len(ids) for ids in encs) + len(encs), dtype=np.int64)
        pos = 0
        for ids in encs:
            out[pos : pos + len(ids)] = ids
            out[pos + len(ids)] = self.eos_id
            pos += len(ids) + 1
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)  # type: ignore[attr-defined]


@lru_cache(maxsize=4)
def _loaded(path: str, stamp: tuple[int, int]) -> Tokenizer:
    # keyed by (size, mtime) too, so that a tokenizer.json rewritten in place is loaded again
    return Tokenizer.from_file(path)


def cached(path: str) -> Tokenizer:
    """The tokenizer.json at `path`, loaded once per process (per version of the file)."""
    try:
        st = os.stat(path)
    except OSError:
        raise InputError(f"tokenizer file '{path}' does not exist", hint="give a local tokenizer.json") from None
    return _loaded(os.path.abspath(path), (st.st_size, st.st_mtime_ns))


def count_tokens(texts: list[str], path: str) -> np.ndarray:
    """Tokens of each text (int64) under the tokenizer.json at `path`, special tokens not counted: the length of
    `Tokenizer.encode(text)`, which is what `curate tokenize` writes for a document before its EOS (and BOS)."""
    tok = cached(path)
    out = np.zeros(len(texts), np.int64)
    some = [i for i, t in enumerate(texts) if t]
    if some:
        out[some] = [len(ids) for ids in tok.encode_batch([texts[i] for i in some])]
    return out


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE tokenizer with EOS as its one special token (GPT-2's scheme)."""
    tk = _tokenizers()
    if vocab_size < 257 + 1:
        raise ConfigError(f"tokenizer.vocab_size {vocab_size} is too small: byte-level BPE needs at least 258")
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: nothing is unknown
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(tok, EOS)


def capped(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    """The texts until max_chars characters have gone by (the last one whole)."""
    seen = 0
    for t in texts:
        if seen >= max_chars:
            return
        seen += len(t)
        yield t
